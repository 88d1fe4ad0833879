#!/usr/bin/env bash
# scripts/reliability.sh [short|long]: the reliability and security suite
# (internal/reliability, see its doc.go). Installs toxiproxy v2.12.0 with
# `go install` when missing (it is not in go.mod), then runs the suite and
# prints its table; the last line is "N passed, M failed".
#   short (make integration): ≤ 4 minutes on 2 cores
#   long  (make reliability): more seeded runs, the daemons' kill loops with
#         -count 5, each fuzzer for CRYOPHILE_RELIABILITY_FUZZTIME (30s), the
#         20 GiB archive through a 3 GiB spool budget
set -euo pipefail
cd "$(dirname "$0")/.."
form=${1:-short}
GO=${GO:-go}
gobin=$($GO env GOBIN)
[ -n "$gobin" ] || gobin=$($GO env GOPATH)/bin
export PATH="$gobin:$PATH"

toxiproxy_version=v2.12.0
# go install leaves the version string at "git": ask the binary's build info.
if ! $GO version -m "$(command -v toxiproxy-server || echo /nonexistent)" 2>/dev/null |
	grep -q "github.com/Shopify/toxiproxy/v2[[:space:]]*$toxiproxy_version"; then
	echo "reliability: installing toxiproxy $toxiproxy_version (go install)" >&2
	$GO install "github.com/Shopify/toxiproxy/v2/cmd/server@$toxiproxy_version"
	$GO install "github.com/Shopify/toxiproxy/v2/cmd/cli@$toxiproxy_version"
	mv -f "$gobin/server" "$gobin/toxiproxy-server"
	mv -f "$gobin/cli" "$gobin/toxiproxy-cli"
fi

report=$(mktemp)
trap 'rm -f "$report"' EXIT
timeout=10m
if [ "$form" = long ]; then
	export CRYOPHILE_RELIABILITY=long
	timeout=40m
fi
status=0
CRYOPHILE_INTEGRATION=1 CRYOPHILE_RELIABILITY_REPORT="$report" \
	$GO test -tags reliability -count=1 -timeout "$timeout" -v ./internal/reliability/ \
	| grep -E '^(=== RUN|--- (PASS|FAIL|SKIP)|    |reliability:|FAIL|ok|panic)' || status=$?
[ "${PIPESTATUS[0]}" = 0 ] || status=1
cat "$report" 2>/dev/null || true
exit $status
