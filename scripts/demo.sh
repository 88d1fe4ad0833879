#!/usr/bin/env bash
# make demo: a whole round trip on a throwaway installation, explained step
# by step. Builds nothing itself (make demo builds first); leaves nothing
# running and nothing behind but what it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
scripts/deps.sh >/dev/null
work=$(mktemp -d /tmp/cryophile-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. a throwaway OpenPGP key (gpg --quick-gen-key: ed25519 + cv25519) in $work/gnupg"
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'demo <demo@example.org>' default default never 2>/dev/null
gpg --batch --armor --export demo@example.org > "$work/recipient.asc"
gpg --batch --pinentry-mode loopback --passphrase '' --armor --export-secret-keys demo@example.org > "$work/secret.asc"
chmod 600 "$work/secret.asc"
gpg --batch --list-keys --keyid-format long demo@example.org | sed 's/^/   /'

vault=0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00
step "2. a config with one file:// vault (archive class GLACIER, restores take 2 s), spool $work/spool"
mkdir "$work/spool" "$work/vault"
cat > "$work/cryophile.toml" <<TOML
spool = "$work/spool"

[backup]
fragment_size = "8MiB"
recipients = ["$work/recipient.asc"]

[[vault]]
id = "$vault"
url = "file://$work/vault"
storage_class = "GLACIER"
restore_delay = "2s"

[freeze]
rescan = "10s"

[thaw]
tier = "Expedited"
poll_interval = "1s"
TOML
sed 's/^/   /' "$work/cryophile.toml"
export CRYOPHILE_CONFIG=$work/cryophile.toml

step "3. start the daemons: cryophile-freeze and cryophile-thaw (logs in $work/*.log)"
"$BIN/cryophile-freeze" > "$work/freeze.log" 2>&1 & pids+=($!)
"$BIN/cryophile-thaw" > "$work/thaw.log" 2>&1 & pids+=($!)
echo "   freeze pid ${pids[0]}, thaw pid ${pids[1]}"

step "4. back up a tar of /usr/share/doc (cryophile-backup --stdin-from-command -- tar ...)"
tar cf - -C /usr/share doc 2>/dev/null | sha256sum | cut -d' ' -f1 > "$work/want"
id=$("$BIN/cryophile-backup" --vault $vault --prefix demo/usr-share-doc --label "make demo" \
	--stdin-from-command -- tar cf - -C /usr/share doc)
ulid=${id##*/}
echo "   backup ID: $id"

step "5. cryophile-freeze uploads each fragment, verifies it, deletes the local copy, manifest last"
key=demo/usr-share-doc/$ulid
for _ in $(seq 600); do
	[ -f "$work/vault/$key/manifest.json" ] && [ ! -d "$work/spool/freeze/$id" ] && break
	sleep 0.1
done
[ -f "$work/vault/$key/manifest.json" ] || { echo "   freeze did not finish; its log:" >&2; cat "$work/freeze.log" >&2; exit 1; }
echo "   in the vault under $key: $(ls "$work/vault/$key" | wc -l) objects; left in the spool's freeze/: $(find "$work/spool/freeze" -type f -not -path '*/.*' | wc -l) files"
"$BIN/cryophile-thaw" list --vault $vault --prefix demo | sed 's/^/   /'
sed 's/^/   /' "$work/vault/$key/manifest.json" | head -16
echo "   ..."

step "6. the fragments are ONE OpenPGP message: cat chunk.* | gpg --decrypt | zstd -d"
cat "$work/vault/$key"/chunk.* | gpg --batch --quiet --decrypt 2>/dev/null | zstd -q -d | sha256sum | cut -d' ' -f1 > "$work/got-gpg"
cmp -s "$work/want" "$work/got-gpg" && echo "   gpg + zstd give the stream back: sha256 $(cat "$work/want")"

step "7. cryophile-restore files a request; thaw restores the GLACIER objects, downloads, verifies; restore streams"
"$BIN/cryophile-restore" --vault $vault --prefix demo/usr-share-doc --ulid "$ulid" --key "$work/secret.asc" \
	| sha256sum | cut -d' ' -f1 > "$work/got"
if cmp -s "$work/want" "$work/got"; then
	echo "   restored stream matches: sha256 $(cat "$work/got")"
	echo "   fragments left in restore/: $(find "$work/spool/restore" -type f -name 'chunk.*' -not -path '*/.*' | wc -l) (each deleted once consumed)"
	for _ in $(seq 100); do
		[ -z "$(find "$work/spool/thaw" "$work/spool/restore" -type f -not -name '.*lock')" ] && break
		sleep 0.1
	done
	echo "   files left in thaw/ and restore/ once thaw is done: $(find "$work/spool/thaw" "$work/spool/restore" -type f | wc -l)"
	find "$work/spool/thaw" "$work/spool/restore" -type f | sed 's/^/     /'
else
	echo "   MISMATCH: want $(cat "$work/want"), got $(cat "$work/got")" >&2
	exit 1
fi

step "8. stop the daemons (SIGTERM)"
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do wait "$p" && echo "   pid $p exited 0"; done
pids=()
step "done: nothing left running; $work removed"
