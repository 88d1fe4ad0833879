// Package config is cryophile's configuration: one TOML file shared by
// cryophile-backup, -freeze, -thaw and -restore.
//
// Find locates and loads it the way every command does (--config FILE,
// $CRYOPHILE_CONFIG, ~/.config/cryophile/cryophile.toml,
// /etc/cryophile/cryophile.toml, else Default()) and applies
// $CRYOPHILE_SPOOL; the commands apply their flags on top. Load is strict:
// a syntax error, an unknown key, a value of the wrong type and an invalid
// value are all errors that name the file, the line and the key, because a
// typo in a backup tool's configuration must not silently fall back to a
// default. Every such error wraps ErrConfig, which the commands map to exit
// status 64.
//
// The keys are those of DESIGN.md ("Configuration"): top-level spool, the
// tables [budget], [backup], [freeze], [thaw] and [thaw.prices], and one
// [[vault]] table per storage location. The spool budget lives in its own
// [budget] table because the top-level key spool is the directory (a TOML
// key cannot be both a string and a table). example.toml documents every
// key with its default; it is installed as /etc/cryophile/cryophile.toml.
//
// Sizes (Size, ParseSize) are binary: "256M" is 256 MiB. Durations
// (Duration) are Go duration strings: "5m".
package config
