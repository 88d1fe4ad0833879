// Package reliability attacks the whole cryophile pipeline (the four
// binaries, a spool, a file:// or S3 vault) with crashes, network and storage
// faults, restart storms, hostile input, damaged ciphertext and load, and
// prints a table of what it checked.
//
// The tests carry the build tag `reliability` and run in two forms:
//
//	make integration   short form (≤ 4 minutes on 2 cores): go test -tags reliability ./internal/reliability/
//	make reliability   long form: CRYOPHILE_RELIABILITY=long, more seeded
//	                   runs per scenario, the 20 GiB archive through a 3 GiB
//	                   spool, plus the freeze/thaw kill -9 loops of cmd/freeze
//	                   and cmd/thaw re-run with -count and every fuzzer for a
//	                   fixed time (scripts/reliability.sh)
//
// Every scenario is seeded (CRYOPHILE_RELIABILITY_SEED overrides the seed)
// and records one row: scenario, runs, failures, bytes checked. TestMain
// prints the table and a last line "N passed, M failed" (scenarios), also
// written to $CRYOPHILE_RELIABILITY_REPORT when set.
//
// The network scenario drives Shopify's toxiproxy v2.12.0 over its HTTP API;
// scripts/reliability.sh installs it with `go install` (it is not in
// go.mod). Without the toxiproxy-server binary that scenario skips, or fails
// under CRYOPHILE_INTEGRATION=1. Scenarios that mount a tmpfs, and the one
// that runs the programs as other users (10 foreign owners), need root and
// skip otherwise; the daemons' strace check needs strace (scripts/deps.sh).
package reliability
