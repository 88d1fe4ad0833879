// Package cli holds what the four cryophile commands share: the exit codes
// of DESIGN.md, the mapping of errors to them, the common flags
// (--config, --spool, -v, -q, --version), logging, passphrase input and the
// progress line.
//
// Output rules, for every command: everything for humans goes to stderr,
// prefixed with the program name, lowercase, no trailing period:
//
//	cryophile-backup: error: prefix "../etc": invalid archive name: ".." path component
//	cryophile-backup: hint: a prefix is a relative path such as host/pool/dataset
//
// stdout carries only the data the command exists to produce: the backup
// ID for cryophile-backup, plaintext for cryophile-restore.
package cli
