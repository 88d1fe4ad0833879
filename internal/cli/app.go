package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
	ucli "github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// Version is the cryophile version, set at build time with
// -ldflags "-X github.com/cryophile/cryophile/internal/cli.Version=…".
var Version = "dev"

// CommonFlags are the flags every command takes.
func CommonFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "config", Usage: "configuration `FILE` (default: $CRYOPHILE_CONFIG, ~/.config/cryophile/cryophile.toml, /etc/cryophile/cryophile.toml)"},
		&ucli.StringFlag{Name: "spool", Usage: "spool `DIR` (default: $CRYOPHILE_SPOOL, the config's spool, /var/spool/cryophile)"},
		&ucli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log more"},
		&ucli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "log only errors"},
	}
}

// NewApp returns a urfave/cli app with cryophile's conventions: common
// flags, --version, errors returned (never printed or os.Exit'ed by the
// library) so Main can map them to exit statuses.
func NewApp(name, usage string, flags []ucli.Flag, action ucli.ActionFunc) *ucli.App {
	// urfave/cli gives --version the alias -v, which is our --verbose.
	ucli.VersionFlag = &ucli.BoolFlag{Name: "version", Usage: "print the version"}
	app := &ucli.App{
		Name:                   name,
		Usage:                  usage,
		Version:                Version,
		Flags:                  append(flags, CommonFlags()...),
		Action:                 action,
		HideHelpCommand:        true,
		UseShortOptionHandling: false,
		Writer:                 os.Stderr,
		ErrWriter:              os.Stderr,
		ExitErrHandler:         func(*ucli.Context, error) {},
		OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
			return &Error{Code: ExitUsage, Err: err, Hint: "see " + name + " --help"}
		},
	}
	return app
}

// Run runs app with args, maps the outcome to an exit status and prints the
// error, if any, the cryophile way.
func Run(ctx context.Context, app *ucli.App, args []string, classify ...Classifier) int {
	// The spool is shared by the cryophile group (spool.DirMode): what one
	// member creates, the daemons and other members must be able to
	// consume. Nothing cryophile writes outside the spool depends on the
	// umask (restore's --output is created 0600 explicitly).
	unix.Umask(0o007)
	err := app.RunContext(ctx, args)
	if err != nil && app.Action != nil {
		// Flag-parsing errors from urfave/cli are usage errors.
		if _, ok := err.(*Error); !ok && strings.Contains(err.Error(), "flag provided but not defined") {
			err = &Error{Code: ExitUsage, Err: err, Hint: "see " + app.Name + " --help"}
		}
	}
	return Report(app.Name, err, classify...)
}

// SetupLogging installs the default slog logger: to journald when stderr is
// the journal, else text on stderr. The level comes from -v/-q, else
// $CRYOPHILE_LOG (debug, info, warn, error), else info.
func SetupLogging(c *ucli.Context) error {
	level := slog.LevelInfo
	if s := os.Getenv("CRYOPHILE_LOG"); s != "" {
		if err := level.UnmarshalText([]byte(s)); err != nil {
			return Usagef("CRYOPHILE_LOG=%q: want debug, info, warn or error", s)
		}
	}
	switch {
	case c.Bool("verbose") && c.Bool("quiet"):
		return Usagef("--verbose and --quiet contradict each other")
	case c.Bool("verbose"):
		level = slog.LevelDebug
	case c.Bool("quiet"):
		level = slog.LevelError
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	if ok, _ := journal.StderrIsJournalStream(); ok && journal.Enabled() {
		// Under systemd: structured fields (ARCHIVE=, KEY=, FRAGMENT=…)
		// straight to journald, which stamps the time itself.
		h = newJournalHandler(level)
	}
	slog.SetDefault(slog.New(h).With("prog", c.App.Name))
	return nil
}

// Printer writes human messages on stderr with the program's prefix.
type Printer struct {
	Prog  string
	Quiet bool
	W     io.Writer // default os.Stderr
}

// Printf prints one message line unless quiet.
func (p *Printer) Printf(format string, a ...any) {
	if p.Quiet {
		return
	}
	w := p.W
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "%s: %s\n", p.Prog, fmt.Sprintf(format, a...))
}
