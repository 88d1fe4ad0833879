#!/usr/bin/env bash
# Installs what the tests need, idempotently: Debian packages (gpg, zstd,
# lz4, sq, GNU time, curl, awscli, systemd-analyze, strace) with apt-get,
# and the local S3 server with `go install` (scripts/s3-server.sh install).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have gpg || need+=(gnupg)
have zstd || need+=(zstd)
have lz4 || need+=(lz4)
have sq || need+=(sq)
[ -x /usr/bin/time ] || need+=(time)
have curl || need+=(curl)
[ -x /usr/bin/aws ] || need+=(awscli)
have systemd-analyze || need+=(systemd)
have strace || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}" >&2
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -x scripts/s3-server.sh ]; then
	scripts/s3-server.sh install
fi
