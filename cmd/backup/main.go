// Command cryophile-backup reads a stream (stdin, --input FILE or the output
// of --stdin-from-command), compresses it, encrypts it to OpenPGP
// certificates, cuts it into fragments, publishes them into the spool's
// freeze/ queue as each is complete, publishes the manifest last and prints
// the backup ID on stdout.
//
// Exit status: 0 success; 64 usage or configuration error; 65 data error;
// 74 I/O error (input, spool, producer command failed); 75 interrupted.
// On any failure nothing is published: no manifest, no fragment is left in
// freeze/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/internal/cli"
	"github.com/cryophile/cryophile/spool"
)

const prog = "cryophile-backup"

func main() { os.Exit(run(os.Args)) }

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	app := cli.NewApp(prog, "compress, encrypt and queue a stream for the vault", flags(),
		func(c *ucli.Context) error { return backup(ctx, c) })
	app.ArgsUsage = "[--stdin-from-command -- CMD ARGS...]"
	return cli.Run(ctx, app, args, cli.Classify)
}

func flags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "vault", Usage: "vault `UUID` (one of the config's [[vault]] ids)", Required: true},
		&ucli.StringFlag{Name: "prefix", Usage: "grouping `PATH` such as host/pool/dataset ([A-Za-z0-9/!_.*'()-])"},
		&ucli.StringFlag{Name: "timestamp", Usage: "archive time, `RFC3339` (e.g. the snapshot's time; default now)"},
		&ucli.StringFlag{Name: "ulid", Usage: "use this `ULID` instead of a new one; refused if it exists in the spool"},
		&ucli.StringSliceFlag{Name: "recipient", Aliases: []string{"r"}, Usage: "OpenPGP certificate `FILE` to encrypt to (repeatable; default: config backup.recipients)"},
		&ucli.StringFlag{Name: "compression", Usage: "zstd, lz4 or none (default: config, else zstd)"},
		&ucli.BoolFlag{Name: "aead", Usage: "RFC 9580 SEIPDv2 AES-256-GCM: ~7x faster, readable by cryophile-restore and sq >= 1.0 but NOT by GnuPG"},
		&ucli.StringFlag{Name: "size", Usage: "fragment `SIZE`, 1M to 5T (e.g. 256M, 1G; default: config, else 1G)"},
		&ucli.StringFlag{Name: "label", Usage: "free-text `LABEL` recorded in the manifest"},
		&ucli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "read `FILE` (or FIFO) instead of stdin"},
		&ucli.BoolFlag{Name: "stdin-from-command", Usage: "run the command after -- and read its stdout; publish nothing if it exits non-zero"},
		&ucli.StringFlag{Name: "spool-max", Usage: "wait while the spool holds more than `SIZE` (default: config budget.max_bytes, else no limit)"},
		&ucli.BoolFlag{Name: "progress", Usage: "show progress on stderr even when it is not a terminal"},
	}
}

// options is everything backup needs, checked before a byte of input is read.
type options struct {
	spoolDir string
	id       archive.ID
	wopts    archive.WriterOptions
	budget   spool.Budget
	input    string
	command  []string
	progress bool
	quiet    bool
}

func parse(c *ucli.Context) (*options, error) {
	if err := cli.SetupLogging(c); err != nil {
		return nil, err
	}
	cfg, err := cli.LoadConfig(c)
	if err != nil {
		return nil, err
	}
	o := &options{spoolDir: cli.SpoolDir(c, cfg), progress: c.Bool("progress") || cli.StderrIsTerminal(), quiet: c.Bool("quiet")}

	// Names first: nothing may be read or created under a bad name.
	vault, err := archive.ParseVault(c.String("vault"))
	if err != nil {
		return nil, cli.WithCode(cli.ExitUsage, err)
	}
	if _, err := cfg.Vault(vault.String()); err != nil {
		return nil, cli.WithCode(cli.ExitUsage, err)
	}
	prefix := c.String("prefix")
	if err := archive.ValidatePrefix(prefix); err != nil {
		return nil, cli.WithHint(cli.ExitUsage, "a prefix is a relative path such as host/pool/dataset", err)
	}
	t := time.Now()
	if s := c.String("timestamp"); s != "" {
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			return nil, cli.Usagef("--timestamp %q: want RFC 3339, e.g. 2026-11-25T03:00:00Z", s)
		}
	}
	if s := c.String("ulid"); s != "" {
		if c.String("timestamp") != "" {
			return nil, cli.Usagef("--ulid and --timestamp exclude each other: a ULID carries its own time")
		}
		u, err := archive.ParseULID(s)
		if err != nil {
			return nil, cli.WithCode(cli.ExitUsage, err)
		}
		o.id = archive.ID{Vault: vault, Prefix: prefix, ULID: u}
	} else if o.id, err = archive.NewID(vault, prefix, t); err != nil {
		return nil, cli.WithCode(cli.ExitUsage, err)
	}

	w := &o.wopts
	w.ID = o.id
	w.Created = time.Now().UTC()
	w.Label = c.String("label")
	w.Host, _ = os.Hostname()
	w.Compression = firstNonEmpty(c.String("compression"), cfg.Backup.Compression, archive.CompressionZstd)
	switch w.Compression {
	case archive.CompressionZstd, archive.CompressionLZ4, archive.CompressionNone:
	default:
		return nil, cli.Usagef("--compression %q: want zstd, lz4 or none", w.Compression)
	}
	w.Level = cfg.Backup.Level
	w.AEAD = c.Bool("aead") || cfg.Backup.AEAD
	w.FragmentSize = int64(cfg.Backup.FragmentSize)
	if s := c.String("size"); s != "" {
		if w.FragmentSize, err = config.ParseSize(s); err != nil {
			return nil, cli.Usagef("--size %q: %v", s, err)
		}
	}
	if w.FragmentSize < archive.MinFragmentSize || w.FragmentSize > archive.MaxFragmentSize {
		return nil, cli.Usagef("fragment size %d: must be between 1 MiB and 5 TiB (the S3 object limit)", w.FragmentSize)
	}
	recipients := c.StringSlice("recipient")
	if len(recipients) == 0 {
		recipients = cfg.Backup.Recipients
	}
	if len(recipients) == 0 {
		return nil, cli.WithHint(cli.ExitUsage, "pass --recipient CERTFILE or set backup.recipients in the config",
			errors.New("no recipient certificate"))
	}
	if w.Recipients, err = archive.LoadRecipients(recipients...); err != nil {
		return nil, cli.WithCode(cli.ExitUsage, err)
	}
	for _, warning := range archive.RecipientWarnings(w.Recipients) {
		cli.Warn(prog, warning)
	}

	o.budget = spool.Budget{
		MaxBytes:     int64(cfg.Budget.MaxBytes),
		Reserve:      int64(cfg.Budget.Reserve),
		FragmentSize: w.FragmentSize,
	}
	if s := c.String("spool-max"); s != "" {
		if o.budget.MaxBytes, err = config.ParseSize(s); err != nil {
			return nil, cli.Usagef("--spool-max %q: %v", s, err)
		}
	}
	if o.budget.Reserve == 0 {
		o.budget.Reserve = spool.DefaultReserve(w.FragmentSize)
	}
	if o.budget.MaxBytes != 0 && o.budget.MaxBytes < 2*w.FragmentSize {
		return nil, cli.Usagef("spool budget %s is less than two fragments of %s: backup could never make progress",
			cli.Bytes(o.budget.MaxBytes), cli.Bytes(w.FragmentSize))
	}

	o.input = c.String("input")
	if c.Bool("stdin-from-command") {
		if o.input != "" {
			return nil, cli.Usagef("--input and --stdin-from-command exclude each other")
		}
		o.command = c.Args().Slice()
		if len(o.command) == 0 {
			return nil, cli.Usagef("--stdin-from-command needs a command after --, e.g. -- zfs send pool/fs@snap")
		}
	} else if c.Args().Present() {
		return nil, cli.Usagef("unexpected argument %q (a producer command needs --stdin-from-command --)", c.Args().First())
	}
	return o, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func backup(ctx context.Context, c *ucli.Context) error {
	o, err := parse(c)
	if err != nil {
		return err
	}
	sp, err := spool.Open(o.spoolDir)
	if err != nil {
		return cli.WithCode(cli.ExitIO, err)
	}
	p := &cli.Printer{Prog: prog, Quiet: o.quiet}
	// What a backup killed with SIGKILL left (staging, fragments without a
	// manifest) goes now, as README promises, not only at the next freeze
	// start: it counts against the spool budget this backup waits on.
	// Live writers hold their lock and are skipped.
	if _, err := sp.CleanupDeadWriters(); err != nil {
		cli.Warn(prog, fmt.Sprintf("clean up dead backups: %v", err))
	}
	o.budget.Notify = func(msg string) { p.Printf("%s", msg) }

	in, producer, err := openInput(o)
	if err != nil {
		return err
	}
	defer in.Close()

	out, err := sp.NewOutbox(ctx, o.id, o.budget)
	if err != nil {
		if errors.Is(err, spool.ErrExist) {
			return cli.WithCode(cli.ExitUsage, err)
		}
		return cli.WithCode(cli.ExitIO, err)
	}
	// abort undoes everything published so far; it is safe to call twice
	// and concurrently with the pipeline (the outbox serialises commits).
	var abortOnce sync.Once
	abort := func() {
		abortOnce.Do(func() {
			if producer != nil {
				producer.kill()
			}
			if err := out.Abort(); err != nil {
				cli.Warn(prog, fmt.Sprintf("clean up %s: %v", o.id, err))
			}
		})
	}

	done := make(chan error, 1)
	var w atomic.Pointer[archive.Writer]
	go func() { done <- pipeline(ctx, o, out, in, producer, &w) }()
	var progress *cli.Progress
	if o.progress && !o.quiet {
		progress = startProgress(w.Load, o.wopts.FragmentSize)
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		// The pipeline may be blocked reading a pipe that will never end;
		// undo what was published and leave without waiting for it.
		abort()
		progress.Stop()
		return cli.WithCode(cli.ExitTemp, fmt.Errorf("interrupted: backup %s abandoned, nothing published", o.id))
	}
	progress.Stop()
	if err == nil && ctx.Err() != nil {
		err = cli.WithCode(cli.ExitTemp, fmt.Errorf("interrupted: backup %s abandoned, nothing published", o.id))
	}
	if err != nil {
		abort()
		return err
	}
	fmt.Println(o.id.String())
	return nil
}

// pipeline copies the input through the archive writer into the outbox and
// publishes the manifest. It returns with nothing published on error; the
// caller aborts the outbox.
func pipeline(ctx context.Context, o *options, out *spool.Outbox, in io.Reader, producer *producer, wp *atomic.Pointer[archive.Writer]) error {
	w, err := archive.NewWriter(out, o.wopts)
	if err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	wp.Store(w)
	name := o.input
	if name == "" {
		name = "stdin"
	}
	if _, err := io.Copy(w, readerOnly{in}); err != nil {
		w.Abort()
		var re *readError
		if errors.As(err, &re) {
			if producer != nil {
				if perr := producer.wait(); perr != nil {
					return perr
				}
			}
			return cli.WithCode(cli.ExitIO, fmt.Errorf("read %s: %w; nothing published", name, re.err))
		}
		return err
	}
	if producer != nil {
		if err := producer.wait(); err != nil {
			w.Abort()
			return err
		}
	}
	if ctx.Err() != nil {
		w.Abort()
		return ctx.Err()
	}
	if err := w.Close(); err != nil {
		return err
	}
	m := w.Manifest()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := out.PublishManifest(m); err != nil {
		return cli.WithCode(cli.ExitIO, err)
	}
	return out.Close()
}

// readerOnly hides WriterTo/ReaderFrom so io.Copy uses a buffer, and marks
// read errors so they are told apart from write (spool) errors.
type readerOnly struct{ r io.Reader }

type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func (r readerOnly) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

func startProgress(w func() *archive.Writer, fragmentSize int64) *cli.Progress {
	return cli.StartProgress(os.Stderr, time.Second, func(elapsed time.Duration) string {
		wr := w()
		if wr == nil {
			return prog + ": starting"
		}
		in, out := wr.Stats()
		return fmt.Sprintf("%s: %s in, %s out, %s, fragment %d", prog, cli.Bytes(in), cli.Bytes(out),
			cli.Rate(in, elapsed), out/fragmentSize+1)
	})
}

// producer is the command run by --stdin-from-command.
type producer struct {
	cmd  *exec.Cmd
	argv string
}

func openInput(o *options) (io.ReadCloser, *producer, error) {
	switch {
	case o.input != "":
		f, err := os.Open(o.input)
		if err != nil {
			return nil, nil, cli.WithCode(cli.ExitIO, fmt.Errorf("input: %w", err))
		}
		if st, err := f.Stat(); err == nil && st.IsDir() {
			f.Close()
			return nil, nil, cli.Usagef("input %s is a directory", o.input)
		}
		return f, nil, nil
	case len(o.command) > 0:
		cmd := exec.Command(o.command[0], o.command[1:]...)
		cmd.Stdin = nil
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, cli.WithCode(cli.ExitIO, err)
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, cli.WithCode(cli.ExitUsage, fmt.Errorf("producer %q: %w", o.command[0], err))
		}
		return stdout, &producer{cmd: cmd, argv: strings.Join(o.command, " ")}, nil
	default:
		return io.NopCloser(os.Stdin), nil, nil
	}
}

func (p *producer) wait() error {
	err := p.cmd.Wait()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return cli.WithCode(cli.ExitIO, fmt.Errorf("producer %q failed (%v); nothing published", p.argv, ee.ProcessState))
	}
	return cli.WithCode(cli.ExitIO, fmt.Errorf("producer %q: %w; nothing published", p.argv, err))
}

func (p *producer) kill() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
}
