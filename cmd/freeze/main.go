// Command cryophile-freeze uploads the archives that cryophile-backup
// publishes into the spool's freeze/ queue to their vaults: each fragment as
// soon as it is published, verified, receipted and only then deleted
// locally; the manifest last (see package freeze).
//
// It runs as a systemd Type=notify daemon: READY=1 once it holds the spool
// lock, watches freeze/ and has scanned it; STATUS= with the queue depth;
// WATCHDOG=1 from its main loop when the unit has WatchdogSec=; STOPPING=1
// on SIGTERM or SIGINT, after which it abandons the uploads in flight
// (nothing half-committed: no receipt, no deletion) and exits 0. With
// --once it uploads what is present and exits.
//
// S3 credentials come from the AWS SDK's standard chain (environment,
// AWS_SHARED_CREDENTIALS_FILE or ~/.aws, a vault's profile, web identity,
// instance role). The systemd unit passes a credentials file in with
// LoadCredential= and points AWS_SHARED_CREDENTIALS_FILE at it.
//
// Exit status: 0 success (and a daemon stopped by a signal); 64 usage or
// configuration error, or an archive in freeze/ for a vault that is not
// configured (--once); 65 data error: the vault holds other bytes under an
// archive's key, or an archive is broken and was quarantined (--once);
// 69 vault unavailable: a permanent vault error (access denied, no such
// bucket, invalid storage class) or, with --once, transient errors that
// did not go away, or, with --status, no status file (freeze never ran on
// this spool); 74 I/O error; 75 another cryophile-freeze holds the spool,
// or --once was interrupted.
//
// It keeps a status file, SPOOL/freeze.status.json (see package freeze),
// which --status prints, and with --metrics-textfile FILE the same figures
// as Prometheus metrics for node_exporter's textfile collector.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"
	ucli "github.com/urfave/cli/v2"

	"github.com/cryophile/cryophile/freeze"
	"github.com/cryophile/cryophile/internal/cli"
	idaemon "github.com/cryophile/cryophile/internal/daemon"
	"github.com/cryophile/cryophile/internal/vault"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
)

const prog = "cryophile-freeze"

func main() { os.Exit(run(os.Args)) }

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := cli.NewApp(prog, "upload the spool's freeze/ queue to the vaults", flags(),
		func(c *ucli.Context) error { return freezeCmd(ctx, c) })
	return cli.Run(ctx, app, args, classify, cli.Classify)
}

func flags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "once", Usage: "upload what is in freeze/ now, then exit (non-zero if anything failed)"},
		&ucli.IntFlag{Name: "concurrency", Usage: "uploads at once, 1 to 64 (default: config freeze.concurrency, else 4)"},
		&ucli.StringFlag{Name: "metrics-textfile", Usage: "keep Prometheus metrics in `FILE` (for node_exporter's textfile collector)"},
		&ucli.BoolFlag{Name: "status", Usage: "print the daemon's status (SPOOL/freeze.status.json) and whether it is running, then exit"},
		&ucli.BoolFlag{Name: "json", Usage: "with --status: print the status file as it is"},
	}
}

// classify maps freeze's errors to exit statuses; cli.Classify does the
// rest.
func classify(err error) int {
	switch {
	case errors.Is(err, freeze.ErrConflict), errors.Is(err, freeze.ErrBroken):
		return cli.ExitData
	case errors.Is(err, storage.ErrPermanent), errors.Is(err, freeze.ErrUnavailable):
		return cli.ExitUnavailable
	case errors.Is(err, freeze.ErrUnknownVault):
		return cli.ExitUsage
	case errors.Is(err, spool.ErrLocked):
		return cli.ExitTemp
	}
	return 0
}

// notify sends a state to systemd; it does nothing outside a Type=notify
// unit (no $NOTIFY_SOCKET).
func notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		cli.Warn(prog, fmt.Sprintf("sd_notify: %v", err))
	}
}

func freezeCmd(ctx context.Context, c *ucli.Context) error {
	if err := cli.SetupLogging(c); err != nil {
		return err
	}
	if c.Args().Present() {
		return cli.Usagef("unexpected argument %q", c.Args().First())
	}
	cfg, err := cli.LoadConfig(c)
	if err != nil {
		return err
	}
	if c.Bool("status") {
		return statusCmd(c, cli.SpoolDir(c, cfg))
	}
	if c.Bool("json") {
		return cli.Usagef("--json goes with --status")
	}
	metrics, err := cli.MetricsTextfile(c)
	if err != nil {
		return err
	}
	concurrency, err := cli.Concurrency(c, cfg.Freeze.Concurrency)
	if err != nil {
		return err
	}
	sp, err := cli.OpenSpool(c, cfg)
	if err != nil {
		return err
	}
	o := freeze.Options{
		Spool:       sp,
		Concurrency: concurrency,
		Rescan:      cfg.Freeze.Rescan.Duration,
		OnStatus:    func(s freeze.Status) { notify("STATUS=" + s.String()) },
		Version:     cli.Version,
		MetricsFile: metrics,
	}
	vopts := vault.Options{
		PartSize:           int64(cfg.Freeze.PartSize),
		MultipartThreshold: int64(cfg.Freeze.MultipartThreshold),
	}
	for i := range cfg.Vaults {
		v := &cfg.Vaults[i]
		o.Vaults = append(o.Vaults, freeze.Vault{
			ID:            v.ID,
			Class:         v.StorageClass,
			ManifestClass: v.ManifestClass,
			Open:          func(ctx context.Context) (storage.Store, error) { return vault.Open(ctx, v, vopts) },
		})
	}
	if len(o.Vaults) == 0 {
		where := cfg.File()
		if where == "" {
			where = "the built-in configuration"
		}
		cli.Warn(prog, fmt.Sprintf("%s configures no vault: nothing in freeze/ can be uploaded", where))
	}

	if c.Bool("once") {
		f, err := freeze.New(o)
		if err != nil {
			return cli.WithCode(cli.ExitUsage, err)
		}
		return summarize(f.Once(ctx))
	}

	o.OnReady = func() { notify("READY=1") }
	if d, err := daemon.SdWatchdogEnabled(false); err == nil && d > 0 {
		// Three pings per period: one late tick is not a restart.
		o.Heartbeat = d / 3
		o.OnHeartbeat = func() { notify("WATCHDOG=1") }
	}
	f, err := freeze.New(o)
	if err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			notify("STOPPING=1")
		case <-stopped:
		}
	}()
	err = f.Run(ctx)
	close(stopped)
	return err
}

// summarize prints every failure of a --once run on its own line and
// returns one error with the exit status of the most serious.
func summarize(err error) error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) < 2 {
		return err
	}
	errs := joined.Unwrap()
	for _, e := range errs {
		fmt.Fprintf(os.Stderr, "%s: error: %v\n", prog, e)
	}
	return cli.WithCode(cli.Code(err, classify, cli.Classify), fmt.Errorf("%d failures (above); what failed is still in the spool", len(errs)))
}

// statusCmd is --status: the status file freeze keeps in the spool.
func statusCmd(c *ucli.Context, spoolDir string) error {
	sp, err := spool.Open(spoolDir)
	if err != nil {
		return cli.WithCode(cli.ExitIO, err)
	}
	return cli.ShowStatus(os.Stdout, prog, freeze.StatusPath(sp),
		func() (bool, error) { return freeze.Running(sp) },
		func(st *idaemon.Status) (string, error) {
			var q freeze.Status
			err := json.Unmarshal(st.Queue, &q)
			return q.String(), err
		}, c.Bool("json"))
}
