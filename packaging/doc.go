// Package packaging holds no code: it is the home of the tests of what
// packaging/, systemd/ and docs/ ship. Run them with
//
//	CRYOPHILE_INTEGRATION=1 go test -tags integration ./packaging/
//
// deb_test.go builds the .deb twice (byte-identical) and installs it into a
// scratch root; systemd_test.go verifies the units and rates their
// hardening; recovery_test.go runs docs/RECOVERY.md's shell blocks against
// a local S3 server with Glacier behaviour.
package packaging
