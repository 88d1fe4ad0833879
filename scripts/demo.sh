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
step "2. a config with one file:// vault, spool $work/spool"
mkdir "$work/spool"
cat > "$work/cryophile.toml" <<TOML
spool = "$work/spool"

[backup]
fragment_size = "8MiB"
recipients = ["$work/recipient.asc"]

[[vault]]
id = "$vault"
url = "file://$work/vault"
TOML
sed 's/^/   /' "$work/cryophile.toml"
export CRYOPHILE_CONFIG=$work/cryophile.toml

step "3. back up a tar of /usr/share/doc (cryophile-backup --stdin-from-command -- tar ...)"
tar cf - -C /usr/share doc 2>/dev/null | sha256sum | cut -d' ' -f1 > "$work/want"
id=$("$BIN/cryophile-backup" --vault $vault --prefix demo/usr-share-doc --label "make demo" \
	--stdin-from-command -- tar cf - -C /usr/share doc)
echo "   backup ID: $id"
echo "   published into freeze/: $(ls "$work/spool/freeze/$id" | wc -l) files (fragments + manifest.json)"
sed 's/^/   /' "$work/spool/freeze/$id/manifest.json" | head -20

step "4. the fragments are ONE OpenPGP message: cat chunk.* | gpg --decrypt | zstd -d"
cat "$work/spool/freeze/$id"/chunk.* | gpg --batch --quiet --decrypt 2>/dev/null | zstd -q -d | sha256sum | cut -d' ' -f1 > "$work/got-gpg"
cmp -s "$work/want" "$work/got-gpg" && echo "   gpg + zstd give the stream back: sha256 $(cat "$work/want")"

step "5. hand the archive to restore/ (stands in for cryophile-freeze + cryophile-thaw, which are not built yet)"
mkdir -p "$work/spool/restore/$(dirname "$id")"
mv "$work/spool/freeze/$id" "$work/spool/restore/$id"

step "6. cryophile-restore streams it back through decrypt and decompress"
"$BIN/cryophile-restore" --vault $vault --prefix demo/usr-share-doc --latest --key "$work/secret.asc" \
	| sha256sum | cut -d' ' -f1 > "$work/got"
if cmp -s "$work/want" "$work/got"; then
	echo "   restored stream matches: sha256 $(cat "$work/got")"
	echo "   fragments left in restore/: $(find "$work/spool/restore" -type f | wc -l) (each deleted once consumed)"
else
	echo "   MISMATCH: want $(cat "$work/want"), got $(cat "$work/got")" >&2
	exit 1
fi
step "done: nothing left running; $work removed"
