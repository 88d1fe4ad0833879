//go:build integration

package packaging_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/google/uuid"

	"github.com/cryophile/cryophile/internal/s3test"
	"github.com/cryophile/cryophile/internal/s3test/glacier"
)

// docBlock is one fenced code block of a markdown file.
type docBlock struct {
	info string // the info string: "sh", "sh settings", "json", ...
	body string
}

// fencedBlocks returns the ```-fenced blocks of markdown text, in order.
func fencedBlocks(t *testing.T, text string) []docBlock {
	t.Helper()
	var blocks []docBlock
	var cur *docBlock
	var body strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &docBlock{info: strings.TrimSpace(strings.TrimPrefix(line, "```"))}
			body.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.body = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	if cur != nil {
		t.Fatalf("unterminated ``` block (%s)", cur.info)
	}
	return blocks
}

// recoveryScript turns docs/RECOVERY.md into the script a reader pasting
// its blocks would run: the ```sh settings block replaced by settings, then
// every block whose info string is one of infos, in order.
func recoveryScript(t *testing.T, doc, settings string, infos ...string) string {
	t.Helper()
	var script strings.Builder
	nSettings, nSteps := 0, 0
	for _, b := range fencedBlocks(t, doc) {
		switch {
		case b.info == "sh settings":
			nSettings++
			script.WriteString("# settings (the test's, in place of the page's)\n" + settings + "\n")
		case slices.Contains(infos, b.info):
			nSteps++
			script.WriteString(b.body + "\n")
		}
	}
	if nSettings != 1 {
		t.Fatalf("docs/RECOVERY.md has %d ```sh settings blocks, want 1", nSettings)
	}
	if nSteps == 0 {
		t.Fatalf("docs/RECOVERY.md has no ``` block of %q", infos)
	}
	return script.String()
}

// runScript runs a bash script in dir with env and returns its output.
func runScript(t *testing.T, dir, name, script string, env []string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	writeFile(t, file, script)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", file)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	t.Logf("%s output:\n%s", name, out)
	if err != nil {
		t.Fatalf("%s: %v (script %s)", name, err, file)
	}
	return string(out)
}

// TestRecoveryDoc backs up a stream with cryophile-backup and uploads it
// with cryophile-freeze to a local S3 server whose Glacier proxy refuses
// to serve archived objects until they are restored, then follows
// docs/RECOVERY.md with the aws CLI, jq, sha256sum, gpg and zstd only (no
// cryophile binary, no cryophile library) and compares the stream it
// recovers with the original.
func TestRecoveryDoc(t *testing.T) {
	for _, tool := range []string{"aws", "jq", "sha256sum", "gpg", "zstd", "bash"} {
		need(t, tool)
	}
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "RECOVERY.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cat chunk.* | gpg --decrypt | zstd -d > stream", "cat chunk.* | gpg --decrypt | $decompress > stream"} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Fatalf("docs/RECOVERY.md does not contain %q", want)
		}
	}

	// Restores take a few seconds, so step 4 has to poll.
	env := s3test.StartWith(t, glacier.Options{Delays: map[string]time.Duration{
		// Bulk (the tier the doc uses) long enough that step 4 must poll
		// even when the aws CLI is slow to issue step 3's requests on a
		// busy machine (3 s was not, in a CI run).
		glacier.TierBulk: 12 * time.Second, glacier.TierStandard: 2 * time.Second, glacier.TierExpedited: time.Second,
	}})
	bin := buildBinaries(t, "backup", "freeze")
	work := t.TempDir()

	// A key pair made with gpg; the recovery imports the secret key into
	// a GNUPGHOME of its own.
	cert, secret := makeKey(t, work)

	// 3.5 MiB, half random, half compressible: four 1 MiB fragments or so.
	data := make([]byte, 3<<20+512<<10)
	rand.Read(data[:len(data)/2])
	for i := len(data) / 2; i < len(data); i++ {
		data[i] = byte(i % 251)
	}
	input := filepath.Join(work, "input")
	writeFile(t, input, string(data))

	vault, spoolDir := uuid.NewString(), filepath.Join(work, "spool")
	if err := os.Mkdir(spoolDir, 0o750); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(work, "cryophile.toml")
	writeFile(t, config, fmt.Sprintf(`spool = %q
[[vault]]
id = %q
url = "s3://%s/kp"
storage_class = "GLACIER"
endpoint = %q
path_style = true
region = %q
`, spoolDir, vault, env.Bucket, env.Endpoint, env.Region))
	home := t.TempDir()
	awsEnv := []string{
		"AWS_ACCESS_KEY_ID=" + env.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + env.SecretKey,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	cryoEnv := append([]string{"HOME=" + home, "CRYOPHILE_CONFIG=", "CRYOPHILE_SPOOL="}, awsEnv...)

	// Every aws CLI at hand: Debian's (2.9, which ignores AWS_ENDPOINT_URL)
	// and whichever comes first on PATH.
	var clis []string
	for _, c := range []string{need(t, "aws"), "/usr/bin/aws"} {
		if _, err := os.Stat(c); err == nil && !slices.Contains(clis, c) {
			clis = append(clis, c)
		}
	}
	for i, cli := range clis {
		t.Run(fmt.Sprintf("aws%d", i+1), func(t *testing.T) {
			t.Logf("aws CLI %s", cli)
			recoverWith(t, env, cli, bin, work, config, vault, cert, secret, data, input, string(doc), cryoEnv, awsEnv)
		})
	}
}

// recoverWith backs data up into a new archive of the vault, then follows
// docs/RECOVERY.md with the aws CLI cli and compares what it recovers.
func recoverWith(t *testing.T, env *s3test.Env, cli, bin, work, config, vault, cert, secret string, data []byte, input, doc string, cryoEnv, awsEnv []string) {
	id := strings.TrimSpace(run(t, work, cryoEnv, filepath.Join(bin, "cryophile-backup"), "--config", config,
		"--vault", vault, "--prefix", "host1/data", "--recipient", cert, "--size", "1M", "--input", input))
	ulid := id[strings.LastIndex(id, "/")+1:]
	if want := vault + "/host1/data/" + ulid; id != want || len(ulid) != 26 {
		t.Fatalf("backup ID %q, want %s with a ULID", id, want)
	}
	run(t, work, cryoEnv, filepath.Join(bin, "cryophile-freeze"), "--config", config, "--once")
	archive := "kp/host1/data/" + ulid

	// The fragments really are archived: the recovery has to restore them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := env.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String(archive + "/chunk.000001")})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidObjectState" {
		t.Fatalf("GET of an archived fragment before any restore: %v, want InvalidObjectState", err)
	}

	settings := fmt.Sprintf(`BUCKET=%s
ARCHIVE=%s
SECRET_KEY=%s
TIER=Bulk
DAYS=1
POLL=1
export AWS_REGION=%s
`, env.Bucket, archive, secret, env.Region)
	recovery := t.TempDir()
	recoveryHome := filepath.Join(recovery, ".gnupg")
	if err := os.MkdirAll(recoveryHome, 0o700); err != nil {
		t.Fatal(err)
	}
	// The script runs no cryophile binary: bin is a temporary directory
	// that is not on PATH, and nothing else builds one. cli comes first.
	tools := t.TempDir()
	if err := os.Symlink(cli, filepath.Join(tools, "aws")); err != nil {
		t.Fatal(err)
	}
	scriptEnv := append(append(os.Environ(), awsEnv...), "GNUPGHOME="+recoveryHome, "AWS_ENDPOINT_URL="+env.Endpoint,
		"PATH="+tools+string(os.PathListSeparator)+os.Getenv("PATH"))
	script := recoveryScript(t, doc, settings, "sh")
	if n := strings.Count(script, "\n"); n < 40 {
		t.Fatalf("the steps of docs/RECOVERY.md are %d lines: not all there?", n)
	}
	out := runScript(t, recovery, "recovery.sh", script, scriptEnv)
	got, err := os.ReadFile(filepath.Join(recovery, "stream"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("recovered stream: %d bytes that differ from the original %d", len(got), len(data))
	}
	if !strings.Contains(out, "still being restored") {
		t.Errorf("step 4 never waited for a restore; the test does not exercise the polling")
	}

	// The curl block, on a fragment restored by now: its download must be
	// the same bytes as the aws CLI's.
	viaCLI := readFile(t, filepath.Join(recovery, "chunk.000001"))
	if err := os.Remove(filepath.Join(recovery, "chunk.000001")); err != nil {
		t.Fatal(err)
	}
	out = runScript(t, recovery, "recovery-curl.sh", recoveryScript(t, doc, settings+"set -euo pipefail\n", "sh curl"), scriptEnv)
	if got := readFile(t, filepath.Join(recovery, "chunk.000001")); got != viaCLI {
		t.Errorf("curl downloaded %d bytes of chunk.000001, the aws CLI %d different ones", len(got), len(viaCLI))
	}
	for _, want := range []string{"<Key>" + archive + "/manifest.json</Key>", `ongoing-request="false"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the curl block's output has no %s", want)
		}
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// makeKey makes an OpenPGP key pair with gpg (ed25519 primary, cv25519
// encryption subkey, no passphrase) and exports it into dir as cert.pgp
// and secret.pgp.
func makeKey(t *testing.T, dir string) (cert, secret string) {
	t.Helper()
	need(t, "gpg")
	keyHome, err := os.MkdirTemp(dir, "keyring")
	if err != nil {
		t.Fatal(err)
	}
	gpgEnv := []string{"GNUPGHOME=" + keyHome}
	run(t, dir, gpgEnv, "gpg", "--batch", "--passphrase", "", "--quick-gen-key", "cryophile test <test@example.org>", "ed25519", "cert", "never")
	fpr := ""
	for _, line := range strings.Split(run(t, dir, gpgEnv, "gpg", "--batch", "--with-colons", "--list-keys"), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		t.Fatal("no fingerprint in gpg --list-keys")
	}
	run(t, dir, gpgEnv, "gpg", "--batch", "--passphrase", "", "--quick-add-key", fpr, "cv25519", "encr", "never")
	cert, secret = filepath.Join(dir, "cert.pgp"), filepath.Join(dir, "secret.pgp")
	writeFile(t, cert, run(t, dir, gpgEnv, "gpg", "--batch", "--export", fpr))
	writeFile(t, secret, run(t, dir, gpgEnv, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", fpr))
	return cert, secret
}
