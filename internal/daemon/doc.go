// Package daemon holds what cryophile's daemons (cryophile-thaw, and
// cryophile-freeze if it wants them) share and nothing outside needs:
// systemd notification (READY, STATUS, watchdog keep-alives), exponential
// backoff with jitter, a rate limiter for vault requests, and the status
// file each daemon keeps in the spool (StatusFile: SPOOL/NAME.status.json,
// replaced atomically, with an optional node_exporter textfile of
// metrics).
package daemon
