# cryophile — see README.md. `make demo` and `make test` are the two set-up
# commands; everything they need is installed by scripts/deps.sh.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/cryophile/cryophile/internal/cli.Version=$(VERSION)
BINARIES := backup restore freeze thaw
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: all build test unit integration deps bench demo clean vet

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

test: deps vet unit integration

bench: build
	scripts/bench.sh

demo: build
	scripts/demo.sh

clean:
	rm -rf bin
	$(GO) clean -testcache
