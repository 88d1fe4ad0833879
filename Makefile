# cryophile — see README.md. `make demo` and `make test` are the two set-up
# commands; everything they need is installed by scripts/deps.sh.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/cryophile/cryophile/internal/cli.Version=$(VERSION)
BINARIES := backup restore freeze thaw
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: all build test unit integration deps bench demo clean vet reliability

all: build

build:
	@mkdir -p bin
	@for b in $(BINARIES); do \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/cryophile-$$b ./cmd/$$b || exit 1; \
	done

deps:
	scripts/deps.sh

vet:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./...

# Unit tests need no network and no server.
unit:
	$(GO) test -race ./...

# Integration and end-to-end tests: real gpg/zstd/lz4 binaries, real
# processes, the local S3 server. CRYOPHILE_INTEGRATION=1 turns a missing
# tool into a failure instead of a skip.
integration: build
	CRYOPHILE_INTEGRATION=1 $(GO) test -tags integration -count=1 -timeout 20m ./...
	scripts/reliability.sh short

# The reliability and security suite, long form (internal/reliability,
# scripts/reliability.sh): kill -9 loops, network/storage faults, restart
# storms, hostile input, tampering, load, every fuzzer for a fixed time.
reliability: build
	scripts/reliability.sh long

test: deps vet unit integration

bench: build
	scripts/bench.sh

demo: build
	scripts/demo.sh

clean:
	rm -rf bin
	$(GO) clean -testcache

# Packaging (packaging/, docs/, systemd/). `make deb` builds
# $(DIST)/cryophile_VERSION_ARCH.deb with nfpm, pinned and run with `go run`
# so it stays out of go.mod, from binaries of its own in $(DIST)/bin (bin/
# may be in use by tests). SOURCE_DATE_EPOCH is the last commit's time, so
# rebuilding the same tree gives the same bytes.
NFPM := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
MD2MAN := github.com/cpuguy83/go-md2man/v2@v2.0.7
DIST ?= dist
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# vX.Y.Z tags give X.Y.Z (X.Y.Z+N.gHASH after them); no tag gives
# 0~gitDATE.HASH, which sorts before any release.
DEB_VERSION ?= $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//; s/-/+/g' | grep . || \
	echo "0~git$$(git log -1 --date=format:%Y%m%d --format=%cd 2>/dev/null || echo 0).$$(git rev-parse --short=7 HEAD 2>/dev/null || echo none)")
DEB_ARCH ?= $(shell $(GO) env GOARCH)
MAN_SOURCES := $(wildcard docs/man/*.md)
MAN_PAGES := $(patsubst docs/man/%.md,$(DIST)/man/%,$(MAN_SOURCES))

.PHONY: man deb deb-test recovery-test systemd-test packaging-test

# Man pages (roff) from docs/man/*.md.
man: $(MAN_PAGES)

$(DIST)/man/%: docs/man/%.md
	@mkdir -p $(@D)
	$(GO) run $(MD2MAN) -in $< -out $@

deb: man
	@mkdir -p $(DIST)/bin
	@for b in $(BINARIES); do \
		CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' -o $(DIST)/bin/cryophile-$$b ./cmd/$$b || exit 1; \
	done
	@for m in $(MAN_PAGES); do gzip -9nc $$m > $$m.gz || exit 1; done
	rm -f $(DIST)/cryophile_*.deb
	DIST=$(DIST) DEB_VERSION='$(DEB_VERSION)' DEB_ARCH=$(DEB_ARCH) SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
		$(GO) run $(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DIST)/
	@ls $(DIST)/cryophile_*.deb

# The packaging tests alone (they also run in `make integration`).
deb-test:
	CRYOPHILE_INTEGRATION=1 $(GO) test -tags integration -count=1 -run 'TestDeb' -v ./packaging/

recovery-test:
	CRYOPHILE_INTEGRATION=1 $(GO) test -tags integration -count=1 -run 'TestRecoveryDoc' -v ./packaging/

systemd-test:
	CRYOPHILE_INTEGRATION=1 $(GO) test -tags integration -count=1 -run 'TestSystemd' -v ./packaging/

packaging-test:
	CRYOPHILE_INTEGRATION=1 $(GO) test -tags integration -count=1 -v ./packaging/
