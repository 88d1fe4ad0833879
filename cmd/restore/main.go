// Command cryophile-restore streams an archive back to plaintext: it files
// a restore request for cryophile-thaw into the spool's thaw/ queue
// (unless the archive is already complete in restore/), reads the
// fragments thaw publishes into restore/ (or a plain directory with
// --from), verifies each against the manifest's SHA-256 before its bytes
// enter the decryptor, decrypts, decompresses and writes the stream to
// stdout or --output, deleting each spool fragment once it is consumed
// (unless --keep). While it waits it shows thaw's progress (status.json)
// on stderr, and the estimate thaw made. Ctrl-C leaves the request filed:
// thaw keeps working and the same command resumes; --cancel withdraws it.
// --latest and --before ask thaw for the vault's listing (see package
// thaw); when thaw is not running, --latest chooses among the archives
// already complete in restore/ if there are any.
//
// Exit status: 0 success; 64 usage or configuration error (including a key
// file that holds no secret key); 65 data error (wrong passphrase, key not
// a recipient, corrupt, missing or truncated fragment, unknown manifest
// format, and as thaw reports it: an archive that does not exist, an
// incomplete archive, a fragment corrupt in the vault); 69 vault
// unavailable (as thaw reports it); 74 I/O error; 75 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oklog/ulid/v2"
	ucli "github.com/urfave/cli/v2"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/internal/cli"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/thaw"
)

const prog = "cryophile-restore"

func main() { os.Exit(run(os.Args)) }

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	app := cli.NewApp(prog, "stream an archive back to plaintext", flags(),
		func(c *ucli.Context) error { return restore(ctx, c) })
	return cli.Run(ctx, app, args, cli.Classify)
}

func flags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "vault", Usage: "vault `UUID`"},
		&ucli.StringFlag{Name: "prefix", Usage: "the archive's prefix `PATH`"},
		&ucli.StringFlag{Name: "ulid", Usage: "the archive's `ULID`"},
		&ucli.BoolFlag{Name: "latest", Usage: "the newest archive of the vault and prefix"},
		&ucli.StringFlag{Name: "before", Usage: "the newest archive of the vault and prefix made before `TIME` (RFC 3339 or 2006-01-02)"},
		&ucli.StringFlag{Name: "tier", Usage: "restore tier for thaw: bulk, standard or expedited (default: config thaw.tier, else bulk)"},
		&ucli.IntFlag{Name: "days", Usage: "keep restored copies in the vault for `N` days, 1 to 365 (default: config thaw.days, else 7)"},
		&ucli.BoolFlag{Name: "cancel", Usage: "withdraw the restore request for --vault/--prefix/--ulid; thaw removes what it staged"},
		&ucli.StringFlag{Name: "from", Usage: "restore from a plain `DIR` holding manifest.json and chunk.* (no spool, no thaw)"},
		&ucli.StringFlag{Name: "key", Aliases: []string{"k"}, Usage: "OpenPGP secret key `FILE` (armored or binary)"},
		&ucli.IntFlag{Name: "pass-fd", Value: -1, Usage: "read the key's passphrase from file descriptor `N` (default: ask on the terminal)"},
		&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write plaintext to `FILE` (created 0600, refused if it exists) instead of stdout"},
		&ucli.BoolFlag{Name: "keep", Usage: "keep the fragments in the spool after they are consumed"},
		&ucli.BoolFlag{Name: "progress", Usage: "show progress on stderr even when it is not a terminal"},
	}
}

func restore(ctx context.Context, c *ucli.Context) (err error) {
	if err := cli.SetupLogging(c); err != nil {
		return err
	}
	cfg, err := cli.LoadConfig(c)
	if err != nil {
		return err
	}
	p := &cli.Printer{Prog: prog, Quiet: c.Bool("quiet")}
	from, keep := c.String("from"), c.Bool("keep")

	// Check every flag before touching the key, the spool or the output.
	var (
		id     archive.ID
		before time.Time
	)
	switch {
	case from != "":
		for _, f := range []string{"vault", "prefix", "ulid", "latest", "before", "tier", "days", "cancel"} {
			if c.IsSet(f) {
				return cli.Usagef("--from and --%s exclude each other", f)
			}
		}
	case c.String("vault") == "":
		return cli.Usagef("say what to restore: --vault V [--prefix P] (--ulid U | --latest | --before TIME), or --from DIR")
	default:
		vault, err := archive.ParseVault(c.String("vault"))
		if err != nil {
			return cli.WithCode(cli.ExitUsage, err)
		}
		if _, err := cfg.Vault(vault.String()); err != nil {
			return cli.WithCode(cli.ExitUsage, err)
		}
		id.Vault, id.Prefix = vault, c.String("prefix")
		if err := archive.ValidatePrefix(id.Prefix); err != nil {
			return cli.WithCode(cli.ExitUsage, err)
		}
		if c.IsSet("before") {
			if before, err = parseTime(c.String("before")); err != nil {
				return err
			}
		}
		switch u := c.String("ulid"); {
		case u != "" && (c.Bool("latest") || c.IsSet("before")):
			return cli.Usagef("--ulid excludes --latest and --before")
		case u != "":
			if id.ULID, err = archive.ParseULID(u); err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
		case c.Bool("cancel"):
			return cli.Usagef("--cancel needs the archive's --ulid")
		case !c.Bool("latest") && !c.IsSet("before"):
			return cli.Usagef("say which archive: --ulid U, --latest or --before TIME")
		}
	}
	tier, days := cfg.Thaw.Tier, cfg.Thaw.Days
	if c.IsSet("tier") {
		if tier, err = thaw.ParseTier(c.String("tier")); err != nil {
			return cli.WithCode(cli.ExitUsage, err)
		}
	}
	if tier == "" {
		tier = storage.TierBulk
	}
	if c.IsSet("days") {
		if days = c.Int("days"); days < 1 || days > 365 {
			return cli.Usagef("--days %d: want 1 to 365", days)
		}
	}
	if days == 0 {
		days = 7
	}
	if c.Bool("cancel") {
		return cancel(c, cfg, p, id)
	}
	if c.String("key") == "" {
		return cli.Usagef("--key FILE is required: the OpenPGP secret key to decrypt with")
	}
	output := c.String("output")
	if output == "" && cli.StdoutIsTerminal() {
		return cli.WithHint(cli.ExitUsage, "pipe it (| zfs receive …) or use --output FILE",
			errors.New("refusing to write plaintext to a terminal"))
	}

	keyFile := c.String("key")
	if err := checkKeyMode(keyFile); err != nil {
		return err
	}
	keys, err := archive.LoadSecretKeys(keyFile, cli.Passphrase(prog, keyFile, c.Int("pass-fd")))
	if err != nil {
		return keyError(err)
	}

	var (
		src archive.Source
		m   *archive.Manifest
		sp  *spool.Spool
	)
	if from != "" {
		if m, err = archive.ReadManifestFile(filepath.Join(from, archive.ManifestName)); err != nil {
			return dataError(err)
		}
		if err := archive.CheckDir(from, m); err != nil {
			return dataError(err)
		}
		src = archive.NewDirSource(from)
	} else {
		if sp, err = spool.Open(cli.SpoolDir(c, cfg)); err != nil {
			return cli.WithCode(cli.ExitIO, err)
		}
		if id.ULID == (ulid.ULID{}) {
			if id, err = choose(ctx, p, sp, id, before); err != nil {
				return err
			}
		}
		w, err := request(p, sp, id, tier, days)
		if err != nil {
			return err
		}
		wctx, stopWatch := context.WithCancelCause(ctx)
		defer stopWatch(nil)
		if w != nil {
			go w.watch(wctx, stopWatch)
		}
		m, err = waitManifest(wctx, p, sp, id)
		if err != nil {
			if cause := context.Cause(wctx); w != nil && ctx.Err() == nil && cause != nil {
				return w.failed(cause)
			}
			if ctx.Err() != nil && w != nil {
				return interrupted(id)
			}
			return err
		}
		rs := sp.RestoreSource(id, keep)
		if w != nil {
			w.haveManifest.Store(true)
			rs.Check = w.check
			_ = w.check() // the estimate, before the first fragment wait
		}
		src = rs
	}

	out, closeOut, err := openOutput(output)
	if err != nil {
		return err
	}
	defer func() { err = closeOut(err) }()

	r, err := archive.NewReader(ctx, src, m, keys)
	if err != nil {
		return dataError(err)
	}
	defer r.Close()
	var written atomic.Int64
	var progress *cli.Progress
	if (c.Bool("progress") || cli.StderrIsTerminal()) && !c.Bool("quiet") {
		progress = cli.StartProgress(os.Stderr, time.Second, func(elapsed time.Duration) string {
			n := written.Load()
			eta := "-"
			if n > 0 && m.PlaintextBytes > n {
				eta = (time.Duration(float64(elapsed) * float64(m.PlaintextBytes-n) / float64(n))).Round(time.Second).String()
			}
			return fmt.Sprintf("%s: %s of %s, %s, %d fragments, ETA %s", prog, cli.Bytes(n), cli.Bytes(m.PlaintextBytes),
				cli.Rate(n, elapsed), len(m.Fragments), eta)
		})
	}
	_, err = io.CopyBuffer(countingWriter{out, &written}, r, make([]byte, 1<<20))
	progress.Stop()
	if err != nil {
		if ctx.Err() != nil {
			if sp != nil {
				if reqs, _ := thaw.RestoreRequests(sp, id); len(reqs) > 0 {
					return interrupted(id)
				}
			}
			return cli.WithCode(cli.ExitTemp, fmt.Errorf("interrupted: restore of %s stopped; the fragments not yet consumed stay in the spool", m.BackupID))
		}
		return dataError(err)
	}
	if sp != nil && !keep {
		if err := sp.RemoveRestored(id); err != nil {
			cli.Warn(prog, err.Error())
		}
	}
	return nil
}

// latest picks the newest archive of id's vault and prefix that thaw has
// published into restore/ (made before before, unless zero).
func latest(sp *spool.Spool, id archive.ID, before time.Time) (archive.ID, error) {
	dirs, err := sp.Archives(spool.QueueRestore)
	if err != nil {
		return id, cli.WithCode(cli.ExitIO, err)
	}
	var best *archive.ID
	for _, d := range dirs {
		if d.ID.Vault == id.Vault && d.ID.Prefix == id.Prefix && d.HasManifest &&
			(before.IsZero() || d.ID.Time().Before(before)) &&
			(best == nil || d.ID.ULID.Compare(best.ULID) > 0) {
			best = &d.ID
		}
	}
	if best == nil {
		return id, cli.WithCode(cli.ExitData, fmt.Errorf("no archive of %s in %s", archive.ID{Vault: id.Vault, Prefix: id.Prefix}.Dir(), sp.Dir(spool.QueueRestore, archive.ID{})))
	}
	return *best, nil
}

func waitManifest(ctx context.Context, p *cli.Printer, sp *spool.Spool, id archive.ID) (*archive.Manifest, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// Say why we wait if the manifest is not there at once.
		select {
		case <-wctx.Done():
		case <-time.After(time.Second):
			p.Printf("waiting for %s in %s (cryophile-thaw publishes it)", archive.ManifestName, sp.Dir(spool.QueueRestore, id))
		}
	}()
	m, err := sp.WaitManifest(wctx, spool.QueueRestore, id)
	if err != nil {
		if ctx.Err() != nil {
			return nil, cli.WithCode(cli.ExitTemp, fmt.Errorf("interrupted while waiting for the manifest of %s", id))
		}
		return nil, dataError(err)
	}
	if m.BackupID != id.String() {
		return nil, cli.WithCode(cli.ExitData, fmt.Errorf("%w: manifest in %s is for %s, not %s", archive.ErrCorrupt, sp.Dir(spool.QueueRestore, id), m.BackupID, id))
	}
	return m, nil
}

// openOutput opens stdout or a new 0600 file. close finishes it: on success
// it syncs and closes; on failure it removes the partial file, whose bytes
// are not authenticated.
func openOutput(path string) (io.Writer, func(error) error, error) {
	if path == "" {
		return os.Stdout, func(err error) error { return err }, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, nil, cli.Usagef("output %s exists; cryophile-restore never overwrites", path)
		}
		return nil, nil, cli.WithCode(cli.ExitIO, fmt.Errorf("output: %w", err))
	}
	return f, func(err error) error {
		if err == nil {
			if err = f.Sync(); err == nil {
				err = f.Close()
			}
			if err != nil {
				err = cli.WithCode(cli.ExitIO, fmt.Errorf("output %s: %w", path, err))
			}
		} else {
			f.Close()
		}
		if err != nil {
			os.Remove(path)
		}
		return err
	}, nil
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// checkKeyMode refuses a secret key file that its group or others may
// access, as ssh does: such a key has been exposed, or is about to be.
// Only regular files are checked (a key can come through /dev/fd/N);
// a file that cannot be stat'ed is left to LoadSecretKeys to report.
func checkKeyMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return cli.WithHint(cli.ExitUsage, fmt.Sprintf("chmod 600 %s", path),
		fmt.Errorf("key file %s: mode %04o lets group or others read the secret key; refusing it", path, fi.Mode().Perm()))
}

// keyError maps secret-key loading failures to exit statuses.
func keyError(err error) error {
	switch {
	case errors.Is(err, archive.ErrBadPassphrase):
		return cli.WithCode(cli.ExitData, err)
	case errors.Is(err, archive.ErrNoSecretKey):
		return cli.WithHint(cli.ExitUsage, "--key needs the SECRET key (gpg --export-secret-keys), not the certificate", err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
		return cli.WithCode(cli.ExitIO, err) // the key file could not be read
	}
	// Missing, unreadable or not a key at all: the wrong file was given.
	return cli.WithCode(cli.ExitUsage, err)
}

// dataError maps archive reading failures: a missing fragment is a data
// error like a corrupt one.
func dataError(err error) error {
	var e *cli.Error
	switch {
	case errors.As(err, &e):
		return err
	case errors.Is(err, archive.ErrCorrupt), errors.Is(err, archive.ErrUnknownFormat),
		errors.Is(err, archive.ErrNotRecipient), errors.Is(err, fs.ErrNotExist):
		return cli.WithCode(cli.ExitData, err)
	}
	return cli.WithCode(cli.ExitIO, err)
}
