// Package e2e holds end-to-end tests of the cryophile binaries: real
// processes, real signals, real gpg/zstd/lz4 for interoperability. They are
// built with the integration tag and run by `make test`:
//
//	CRYOPHILE_INTEGRATION=1 go test -tags integration ./internal/e2e/
package e2e
