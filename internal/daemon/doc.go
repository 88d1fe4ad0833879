// Package daemon holds what cryophile's daemons (cryophile-thaw, and
// cryophile-freeze if it wants them) share and nothing outside needs:
// systemd notification (READY, STATUS, watchdog keep-alives), exponential
// backoff with jitter, and a rate limiter for vault requests.
package daemon
