#!/usr/bin/env bash
# make bench: our backup and restore side by side with the standard-tools
# pipeline, on the same input, in the same run:
#   backup:  zstd -1 -T2 | gpg --encrypt --compress-algo none | split -b 1G
#   restore: cat chunk.* | gpg --decrypt | zstd -d
# for the default (SEIPDv1, gpg-readable) mode and for --aead (SEIPDv2 GCM).
# Prints MB/s of input (plaintext), peak RSS (GNU time) and the ratios.
# BENCH_SIZE (MiB, default 1024) sets the input size: half a tar of
# /usr/share, half random bytes. Every measurement runs BENCH_RUNS times
# (default 3), interleaved with the others, and the best run counts: the
# machines are shared, and the best run is the one least disturbed.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
size_mib=${BENCH_SIZE:-1024}
work=$(mktemp -d /var/tmp/cryophile-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"

echo "bench: generating ${size_mib} MiB input (tar of /usr/share + random) in $work" >&2
half=$((size_mib / 2))
{ (tar cf - /usr/share 2>/dev/null || true) | head -c "${half}M"; head -c "$((size_mib - half))M" /dev/urandom; } > "$work/input"
bytes=$(stat -c %s "$work/input")

gpg --batch --quiet --passphrase '' --quick-gen-key 'bench <bench@example.org>' default default never 2>/dev/null
gpg --batch --armor --export bench@example.org > "$work/cert.asc"
gpg --batch --pinentry-mode loopback --passphrase '' --armor --export-secret-keys bench@example.org > "$work/secret.asc"
chmod 600 "$work/secret.asc"  # restore refuses a secret key others can read
vault=0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00
cat > "$work/cryophile.toml" <<TOML
spool = "$work/spool"
[[vault]]
id = "$vault"
url = "file://$work/vault"
TOML
mkdir "$work/spool"

# measure NAME CMD...: runs CMD under GNU time (input already in the page
# cache for everyone, dirty pages synced before), keeps the best seconds
# and the highest peak RSS seen.
declare -A secs rss
measure() {
	local name=$1; shift
	sync
	/usr/bin/time -f '%e %M' -o "$work/time" "$@"
	record "$name"
}
record() {
	local s kb
	read -r s kb < "$work/time"
	if [ -z "${secs[$1]:-}" ] || awk -v a="$s" -v b="${secs[$1]}" 'BEGIN { exit !(a < b) }'; then
		secs[$1]=$s
	fi
	if [ -z "${rss[$1]:-}" ] || [ "$kb" -gt "${rss[$1]}" ]; then
		rss[$1]=$kb
	fi
}
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", (s > 0 ? b / s / 1e6 : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }'; }

cat "$work/input" > /dev/null
runs=${BENCH_RUNS:-3}
for run in $(seq "$runs"); do
	echo "bench: run $run of $runs" >&2
	mkdir "$work/gpgsplit"
	measure gpg-backup bash -c "zstd -q -1 -T2 -c '$work/input' | gpg --batch --quiet --trust-model always --compress-algo none -r bench@example.org --encrypt | split -b 1G -a 6 -d --numeric-suffixes=1 - '$work/gpgsplit/chunk.'"
	measure gpg-restore bash -c "cat '$work'/gpgsplit/chunk.* | gpg --batch --quiet --decrypt | zstd -q -d > /dev/null"
	rm -rf "$work/gpgsplit"

	for mode in default aead; do
		flag=; [ $mode = aead ] && flag=--aead
		sync
		id=$(/usr/bin/time -f '%e %M' -o "$work/time" "$BIN/cryophile-backup" --config "$work/cryophile.toml" \
			--vault $vault --recipient "$work/cert.asc" --input "$work/input" $flag)
		record $mode-backup
		measure $mode-restore bash -c "'$BIN/cryophile-restore' --config '$work/cryophile.toml' --from '$work/spool/freeze/$id' --key '$work/secret.asc' > /dev/null"
		rm -rf "$work/spool/freeze/$vault"
	done
done

printf '\n%s MiB input (%s bytes), MB/s of plaintext (best of %s runs), peak RSS of the largest process\n' "$size_mib" "$bytes" "$runs"
printf '%-34s %8s %10s %8s %8s\n' "what" "MB/s" "RSS MiB" "ratio" "target"
row() { # name label target
	local name=$1 base=$2
	printf '%-34s %8s %10s %8s %8s\n' "$3" "$(mbps "${secs[$name]}")" "$((${rss[$name]} / 1024))" \
		"$( [ -n "$base" ] && ratio "${secs[$name]}" "${secs[$base]}" || echo -)" "${4:--}"
}
row gpg-backup "" "zstd -1 -T2 | gpg -e | split"
row default-backup gpg-backup "cryophile-backup (SEIPDv1)" ">=0.80"
row aead-backup gpg-backup "cryophile-backup --aead (GCM)" ">=1.20"
row gpg-restore "" "cat | gpg -d | zstd -d"
row default-restore gpg-restore "cryophile-restore (SEIPDv1)" ">=0.60"
row aead-restore gpg-restore "cryophile-restore --aead (GCM)" ">=1.20"
echo "ratio = our MB/s / the gpg pipeline's MB/s in this run; RSS target <= 64 MiB"
