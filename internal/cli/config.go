package cli

import (
	"errors"
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
)

// LoadConfig finds and loads the configuration: --config, else
// $CRYOPHILE_CONFIG, else the user's and the system's file, else defaults.
// Errors have exit status 64.
func LoadConfig(c *ucli.Context) (*config.Config, error) {
	cfg, _, err := config.Find(c.String("config"))
	if err != nil {
		return nil, WithCode(ExitUsage, err)
	}
	return cfg, nil
}

// SpoolDir returns the spool directory: --spool, else the config's spool
// (which config.Find already overrode with $CRYOPHILE_SPOOL).
func SpoolDir(c *ucli.Context, cfg *config.Config) string {
	if s := c.String("spool"); s != "" {
		return s
	}
	return cfg.Spool
}

// Warn prints a warning on stderr the cryophile way.
func Warn(prog, msg string) { fmt.Fprintf(os.Stderr, "%s: warning: %s\n", prog, msg) }

// StdoutIsTerminal reports whether stdout is a terminal.
func StdoutIsTerminal() bool { return term.IsTerminal(int(os.Stdout.Fd())) }

// Classify maps the sentinel errors of cryophile's packages to exit
// statuses.
func Classify(err error) int {
	switch {
	case errors.Is(err, config.ErrConfig), errors.Is(err, config.ErrUnknownVault),
		errors.Is(err, archive.ErrInvalidID), errors.Is(err, archive.ErrNoSecretKey),
		errors.Is(err, spool.ErrExist):
		return ExitUsage
	case errors.Is(err, archive.ErrCorrupt), errors.Is(err, archive.ErrUnknownFormat),
		errors.Is(err, archive.ErrNotRecipient), errors.Is(err, archive.ErrBadPassphrase),
		errors.Is(err, storage.ErrChecksum):
		return ExitData
	case errors.Is(err, storage.ErrPermanent):
		return ExitUnavailable
	case errors.Is(err, spool.ErrLocked):
		return ExitTemp
	case errors.Is(err, spool.ErrSpool):
		return ExitIO
	}
	return 0
}

// OpenSpool opens the spool directory SpoolDir names; a missing or unusable
// spool is an I/O error (exit status 74) naming it.
func OpenSpool(c *ucli.Context, cfg *config.Config) (*spool.Spool, error) {
	sp, err := spool.Open(SpoolDir(c, cfg))
	if err != nil {
		return nil, WithCode(ExitIO, err)
	}
	return sp, nil
}

// Concurrency returns --concurrency when given (1 to 64), else def, the
// config's value.
func Concurrency(c *ucli.Context, def int) (int, error) {
	if !c.IsSet("concurrency") {
		return def, nil
	}
	n := c.Int("concurrency")
	if n < 1 || n > 64 {
		return 0, Usagef("--concurrency %d: want 1 to 64", n)
	}
	return n, nil
}
