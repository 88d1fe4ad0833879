// Command cryophile-thaw brings archives back from their vaults into the
// spool's restore/ queue for cryophile-restore (see package thaw for the
// protocol), lists the archives of a vault, and estimates what a restore
// costs and how long it takes.
//
//	cryophile-thaw [--once] [--concurrency N] [--metrics-textfile FILE]
//	cryophile-thaw --status [--json]
//	cryophile-thaw list --vault V [--prefix P] [--json]
//	cryophile-thaw estimate --vault V [--prefix P] (--ulid U | --latest) [--tier T]
//
// As a daemon it is a systemd Type=notify service: READY=1 once it holds
// the spool's thaw lock, STATUS= with the fragments in progress,
// WATCHDOG=1 while its main loop turns (WatchdogSec=), STOPPING=1 on
// SIGTERM or SIGINT, after which it abandons the work in flight (partial
// downloads are kept and resumed on the next start) and exits 0. With
// --once it serves the requests present and exits.
//
// Exit status: 0 success (and a daemon stopped by a signal); 64 usage or
// configuration error; 65 data error (--once: an archive that does not
// exist, is incomplete, or has a corrupt fragment); 69 vault unavailable,
// or, with --status, no status file (thaw never ran on this spool); 74 I/O
// error; 75 another cryophile-thaw holds the spool, or interrupted.
//
// It keeps a status file, SPOOL/thaw.status.json (see package thaw),
// which --status prints, and with --metrics-textfile FILE the same figures
// as Prometheus metrics for node_exporter's textfile collector.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	ucli "github.com/urfave/cli/v2"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/internal/cli"
	"github.com/cryophile/cryophile/internal/daemon"
	"github.com/cryophile/cryophile/internal/vault"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
	"github.com/cryophile/cryophile/thaw"
)

const prog = "cryophile-thaw"

// onceAttempts is how many transient vault errors in a row make --once
// give up on a request (exit 69); the daemon never gives up.
const onceAttempts = 8

func main() { os.Exit(run(os.Args)) }

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := cli.NewApp(prog, "bring archives back from the vaults into the spool's restore/ queue", []ucli.Flag{
		&ucli.BoolFlag{Name: "once", Usage: "serve the requests in thaw/ now, then exit (non-zero if one failed)"},
		&ucli.IntFlag{Name: "concurrency", Usage: "downloads at once, 1 to 64 (default: config thaw.concurrency, else 4)"},
		&ucli.StringFlag{Name: "metrics-textfile", Usage: "keep Prometheus metrics in `FILE` (for node_exporter's textfile collector)"},
		&ucli.BoolFlag{Name: "status", Usage: "print the daemon's status (SPOOL/thaw.status.json) and whether it is running, then exit"},
		&ucli.BoolFlag{Name: "json", Usage: "with --status: print the status file as it is"},
	}, func(c *ucli.Context) error { return daemonCmd(ctx, c) })
	app.Commands = []*ucli.Command{
		{
			Name:  "list",
			Usage: "list the archives of a vault",
			Flags: append([]ucli.Flag{
				&ucli.StringFlag{Name: "vault", Usage: "vault `UUID`", Required: true},
				&ucli.StringFlag{Name: "prefix", Usage: "only archives with this prefix `PATH` or below it"},
				&ucli.BoolFlag{Name: "json", Usage: "print JSON"},
			}, cli.CommonFlags()...),
			Action: func(c *ucli.Context) error { return listCmd(ctx, c) },
		},
		{
			Name:  "estimate",
			Usage: "estimate the restore requests, wait and cost of restoring an archive",
			Flags: append([]ucli.Flag{
				&ucli.StringFlag{Name: "vault", Usage: "vault `UUID`", Required: true},
				&ucli.StringFlag{Name: "prefix", Usage: "the archive's prefix `PATH`"},
				&ucli.StringFlag{Name: "ulid", Usage: "the archive's `ULID`"},
				&ucli.BoolFlag{Name: "latest", Usage: "the newest complete archive of the vault and prefix"},
				&ucli.StringFlag{Name: "tier", Usage: "restore tier: bulk, standard or expedited (default: config thaw.tier)"},
				&ucli.BoolFlag{Name: "json", Usage: "print JSON"},
			}, cli.CommonFlags()...),
			Action: func(c *ucli.Context) error { return estimateCmd(ctx, c) },
		},
	}
	return cli.Run(ctx, app, args, classify, cli.Classify)
}

// classify maps thaw's errors to exit statuses; cli.Classify does the rest.
func classify(err error) int {
	var fe *thaw.FailureError
	switch {
	case errors.As(err, &fe) && fe.Code == thaw.FailUnavailable:
		return cli.ExitUnavailable
	case errors.As(err, &fe):
		return cli.ExitData
	case errors.Is(err, config.ErrUnknownVault):
		return cli.ExitUsage
	case errors.Is(err, storage.ErrPermanent):
		return cli.ExitUnavailable
	case errors.Is(err, storage.ErrNotExist):
		return cli.ExitData
	case errors.Is(err, spool.ErrLocked):
		return cli.ExitTemp
	}
	return 0
}

// opener returns thaw.Options.OpenVault for cfg.
func opener(cfg *config.Config) func(ctx context.Context, id uuid.UUID) (storage.Store, error) {
	return func(ctx context.Context, id uuid.UUID) (storage.Store, error) {
		v, err := cfg.Vault(id.String())
		if err != nil {
			return nil, err
		}
		return vault.Open(ctx, v, vault.Options{})
	}
}

func daemonCmd(ctx context.Context, c *ucli.Context) error {
	if err := cli.SetupLogging(c); err != nil {
		return err
	}
	if c.Args().Present() {
		return cli.Usagef("unexpected argument %q (commands: list, estimate)", c.Args().First())
	}
	cfg, err := cli.LoadConfig(c)
	if err != nil {
		return err
	}
	if c.Bool("status") {
		return statusCmd(c, cli.SpoolDir(c, cfg))
	}
	if c.Bool("json") {
		return cli.Usagef("--json goes with --status (or a command: list, estimate)")
	}
	metrics, err := cli.MetricsTextfile(c)
	if err != nil {
		return err
	}
	concurrency, err := cli.Concurrency(c, cfg.Thaw.Concurrency)
	if err != nil {
		return err
	}
	sp, err := cli.OpenSpool(c, cfg)
	if err != nil {
		return err
	}
	lock, err := sp.LockDaemon(thaw.DaemonName)
	if err != nil {
		if errors.Is(err, spool.ErrLocked) {
			return cli.WithHint(cli.ExitTemp, "one cryophile-thaw per spool: systemctl status cryophile-thaw",
				fmt.Errorf("another cryophile-thaw is serving %s: %w", sp.Root(), err))
		}
		return cli.WithCode(cli.ExitIO, err)
	}
	defer lock.Close()
	n := daemon.Notifier{}
	o := thaw.Options{
		Spool:           sp,
		OpenVault:       opener(cfg),
		PollMax:         cfg.Thaw.PollInterval.Duration,
		Concurrency:     concurrency,
		RestoreMaxBytes: int64(cfg.Budget.RestoreMaxBytes),
		Reserve:         cfg.Budget.ReserveFor(int64(cfg.Backup.FragmentSize)),
		Prices:          cfg.Thaw.Prices,
		Status:          n.Status,
		Version:         cli.Version,
		MetricsFile:     metrics,
	}
	if c.Bool("once") {
		o.GiveUpAfter = onceAttempts
	}
	th, err := thaw.New(o)
	if err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	if c.Bool("once") {
		err := th.Once(ctx)
		if ctx.Err() != nil {
			return cli.WithCode(cli.ExitTemp, errors.New("interrupted; the requests stay in thaw/ and resume on the next start"))
		}
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go n.Watchdog(wctx, func() bool { return th.Alive(30 * time.Second) })
	n.Ready()
	slog.Info("serving", "spool", sp.Root(), "concurrency", concurrency)
	err = th.Run(ctx)
	n.Stopping()
	return err
}

// inherit copies the common flags given before a subcommand's name
// (cryophile-thaw --config F list) into the subcommand's context, which
// has flags of the same names (so cryophile-thaw list --config F works too)
// that would otherwise hide them.
func inherit(c *ucli.Context) {
	lineage := c.Lineage()
	if len(lineage) < 2 {
		return
	}
	parent := lineage[1]
	for _, name := range []string{"config", "spool"} {
		if !c.IsSet(name) && parent.IsSet(name) {
			_ = c.Set(name, parent.String(name))
		}
	}
	for _, name := range []string{"verbose", "quiet"} {
		if !c.IsSet(name) && parent.IsSet(name) {
			_ = c.Set(name, fmt.Sprint(parent.Bool(name)))
		}
	}
}

// store opens the vault named by --vault.
func store(ctx context.Context, c *ucli.Context) (*config.Config, uuid.UUID, storage.Store, error) {
	inherit(c)
	if err := cli.SetupLogging(c); err != nil {
		return nil, uuid.UUID{}, nil, err
	}
	cfg, err := cli.LoadConfig(c)
	if err != nil {
		return nil, uuid.UUID{}, nil, err
	}
	id, err := archive.ParseVault(c.String("vault"))
	if err != nil {
		return nil, id, nil, cli.WithCode(cli.ExitUsage, err)
	}
	if err := archive.ValidatePrefix(c.String("prefix")); err != nil {
		return nil, id, nil, cli.WithCode(cli.ExitUsage, err)
	}
	s, err := opener(cfg)(ctx, id)
	if err != nil {
		if errors.Is(err, config.ErrConfig) {
			return nil, id, nil, cli.WithCode(cli.ExitUsage, err)
		}
		return nil, id, nil, cli.WithCode(cli.ExitUnavailable, err)
	}
	return cfg, id, s, nil
}

func listCmd(ctx context.Context, c *ucli.Context) error {
	_, id, s, err := store(ctx, c)
	if err != nil {
		return err
	}
	entries, err := thaw.List(ctx, s, id, c.String("prefix"))
	if err != nil {
		return vaultError(err)
	}
	if c.Bool("json") {
		if entries == nil {
			entries = []thaw.Entry{}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tBACKUP ID\tBYTES\tFRAGMENTS\tCLASS\tSTATE")
	for _, e := range entries {
		state := "complete"
		if e.Incomplete {
			state = "incomplete (no manifest)"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\n", e.Time.Format(time.RFC3339), e.BackupID, e.Bytes, e.Fragments, e.Class, state)
	}
	return w.Flush()
}

func estimateCmd(ctx context.Context, c *ucli.Context) error {
	cfg, vid, s, err := store(ctx, c)
	if err != nil {
		return err
	}
	tier := cfg.Thaw.Tier
	if c.IsSet("tier") {
		if tier, err = thaw.ParseTier(c.String("tier")); err != nil {
			return cli.WithCode(cli.ExitUsage, err)
		}
	}
	prefix := c.String("prefix")
	id := archive.ID{Vault: vid, Prefix: prefix}
	switch u := c.String("ulid"); {
	case u != "" && c.Bool("latest"):
		return cli.Usagef("--ulid and --latest exclude each other")
	case u != "":
		if id.ULID, err = archive.ParseULID(u); err != nil {
			return cli.WithCode(cli.ExitUsage, err)
		}
	case c.Bool("latest"):
		entries, err := thaw.List(ctx, s, vid, prefix)
		if err != nil {
			return vaultError(err)
		}
		latest, ok := thaw.Latest(entries, prefix, time.Time{})
		if !ok {
			return cli.WithCode(cli.ExitData, fmt.Errorf("no complete archive of %s/%s in the vault", vid, prefix))
		}
		id = latest
	default:
		return cli.Usagef("say which archive: --ulid U or --latest")
	}
	e, err := thaw.EstimateID(ctx, s, id, tier, cfg.Thaw.Prices)
	if err != nil {
		return vaultError(err)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			BackupID string `json:"backup_id"`
			thaw.Estimate
		}{id.String(), e})
	}
	fmt.Printf("%s: %s\n", id, e)
	return nil
}

// statusCmd is --status: the daemon status file thaw keeps in the spool.
func statusCmd(c *ucli.Context, spoolDir string) error {
	sp, err := spool.Open(spoolDir)
	if err != nil {
		return cli.WithCode(cli.ExitIO, err)
	}
	return cli.ShowStatus(os.Stdout, prog, thaw.DaemonStatusPath(sp),
		func() (bool, error) { return thaw.Running(sp) },
		func(st *daemon.Status) (string, error) {
			var q thaw.Queue
			err := json.Unmarshal(st.Queue, &q)
			return q.String(), err
		}, c.Bool("json"))
}

// vaultError gives vault errors their exit status.
func vaultError(err error) error {
	switch {
	case errors.Is(err, storage.ErrNotExist):
		return cli.WithCode(cli.ExitData, err)
	case errors.Is(err, archive.ErrCorrupt), errors.Is(err, archive.ErrUnknownFormat):
		return cli.WithCode(cli.ExitData, err)
	case errors.Is(err, storage.ErrPermanent):
		return cli.WithCode(cli.ExitUnavailable, err)
	}
	return cli.WithCode(cli.ExitUnavailable, err)
}
