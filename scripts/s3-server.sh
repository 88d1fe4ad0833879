#!/usr/bin/env bash
# The local S3 server for tests, CI and `make demo`: versitygw, pinned,
# installed from the Go module proxy, run on loopback with a posix data
# directory and fixed test credentials. Glacier behaviour comes from our
# proxy in front of it (internal/s3test/glacier, cmd/glacier-proxy).
#
#   scripts/s3-server.sh install              install versitygw (idempotent)
#   scripts/s3-server.sh start DATA_DIR PORT  start it on 127.0.0.1:PORT; prints env exports
#   scripts/s3-server.sh stop [PORT]          stop what start started
#   scripts/s3-server.sh path                 print the binary's path
#
# DATA_DIR must support user xattrs (ext4, tmpfs). State (pid file, log) goes
# to $CRYOPHILE_S3_STATE (default ${TMPDIR:-/tmp}/cryophile-s3-PORT).
set -euo pipefail

VERSION=v1.8.0
MODULE=github.com/versity/versitygw
GOBIN_DIR="${GOBIN:-$(go env GOPATH)/bin}"
BIN="$GOBIN_DIR/versitygw"
# Test credentials: fixed, meaningless outside this machine's loopback.
ACCESS_KEY=cryophile-test-access
SECRET_KEY=cryophile-test-secret-key-0123456789
REGION=us-east-1

say() { echo "s3-server: $*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# installed: is $BIN versitygw at $VERSION? `versitygw --version` says "git"
# for go-installed builds, so ask the binary's embedded build info instead.
installed() {
	[ -x "$BIN" ] && go version -m "$BIN" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$MODULE[[:space:]]+$VERSION[[:space:]]"
}

# building_elsewhere: is another `go install` of versitygw running (e.g. one
# started by hand in the background, logging to /tmp/vgw.log)? A second
# build would only compete for the same two cores.
building_elsewhere() {
	pgrep -f "go install $MODULE/cmd/versitygw@" >/dev/null 2>&1
}

cmd_install() {
	if installed; then
		return 0
	fi
	if building_elsewhere; then
		say "another go install of versitygw is running; waiting for it (up to 20 min)"
		local deadline=$((SECONDS + 1200))
		while building_elsewhere; do
			[ $SECONDS -lt $deadline ] || die "the other versitygw build did not finish in 20 min"
			sleep 2
		done
		if installed; then
			return 0
		fi
	fi
	say "installing $MODULE $VERSION into $GOBIN_DIR (a few minutes on a cold build cache)"
	mkdir -p "$GOBIN_DIR"
	GOBIN="$GOBIN_DIR" go install "$MODULE/cmd/versitygw@$VERSION"
	installed || die "$BIN is not $MODULE $VERSION after go install"
}

state_dir() { echo "${CRYOPHILE_S3_STATE:-${TMPDIR:-/tmp}/cryophile-s3-$1}"; }

# answers: does something speak HTTP on 127.0.0.1:$1? Any status will do: an
# unsigned request gets 403 from a live versitygw.
answers() {
	curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null
}

cmd_start() {
	[ $# -eq 2 ] || die "usage: $0 start DATA_DIR PORT"
	local data=$1 port=$2
	[[ $port =~ ^[0-9]+$ ]] || die "port $port: not a number"
	installed || die "versitygw $VERSION is not installed: run $0 install"
	mkdir -p "$data"
	local state
	state=$(state_dir "$port")
	mkdir -p "$state"
	if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
		die "already running on port $port (pid $(cat "$state/pid"))"
	fi
	if answers "$port"; then
		die "port $port is already in use"
	fi
	"$BIN" --access "$ACCESS_KEY" --secret "$SECRET_KEY" --region "$REGION" \
		--port "127.0.0.1:$port" --quiet posix "$data" >"$state/log" 2>&1 &
	local pid=$!
	echo "$pid" >"$state/pid"
	local deadline=$((SECONDS + 15))
	until answers "$port"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$state/pid"
			cat "$state/log" >&2
			die "versitygw exited at start-up (log above)"
		fi
		if [ $SECONDS -ge $deadline ]; then
			kill "$pid" 2>/dev/null || true
			rm -f "$state/pid"
			die "versitygw did not answer on 127.0.0.1:$port within 15 s (log: $state/log)"
		fi
		sleep 0.05
	done
	say "versitygw pid $pid on 127.0.0.1:$port, data $data, log $state/log"
	cat <<EOF
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=$REGION
export CRYOPHILE_S3_ENDPOINT=http://127.0.0.1:$port
EOF
}

cmd_stop() {
	local port=${1:-}
	local pidfile
	if [ -n "$port" ]; then
		pidfile="$(state_dir "$port")/pid"
	else
		# No port: stop the only server started from this state location.
		local files pattern
		pattern="$(state_dir '*')/pid"
		shopt -s nullglob
		# shellcheck disable=SC2206 # the pattern is meant to glob
		files=($pattern)
		shopt -u nullglob
		[ ${#files[@]} -gt 0 ] || {
			say "nothing to stop"
			return 0
		}
		[ ${#files[@]} -eq 1 ] || die "several servers running (${files[*]}): say which port"
		pidfile=${files[0]}
	fi
	[ -f "$pidfile" ] || {
		say "nothing to stop ($pidfile missing)"
		return 0
	}
	local pid
	pid=$(cat "$pidfile")
	if kill "$pid" 2>/dev/null; then
		local deadline=$((SECONDS + 10))
		while kill -0 "$pid" 2>/dev/null; do
			if [ $SECONDS -ge $deadline ]; then
				kill -9 "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.05
		done
	fi
	rm -f "$pidfile"
	say "stopped pid $pid"
}

case "${1:-}" in
install) cmd_install ;;
start)
	shift
	cmd_start "$@"
	;;
stop)
	shift
	cmd_stop "$@"
	;;
path) echo "$BIN" ;;
*) die "usage: $0 install | start DATA_DIR PORT | stop [PORT] | path" ;;
esac
