package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/cryophile/cryophile/internal/daemon"
)

// ShowStatus is the daemons' --status: it prints the status file at path
// to w, for humans or, with asJSON, as it is, and says whether the daemon
// is running (running reports whether it holds its spool lock). queue
// formats the file's queue for humans. With no status file it returns an
// error with ExitUnavailable: the daemon never ran on this spool.
func ShowStatus(w io.Writer, prog, path string, running func() (bool, error), queue func(st *daemon.Status) (string, error), asJSON bool) error {
	up, err := running()
	if err != nil {
		return WithCode(ExitIO, fmt.Errorf("lock: %w", err))
	}
	if asJSON {
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return noStatus(prog, path, up)
		}
		if err != nil {
			return WithCode(ExitIO, err)
		}
		_, err = w.Write(b)
		return err
	}
	st, err := daemon.ReadStatus(path)
	if errors.Is(err, fs.ErrNotExist) {
		return noStatus(prog, path, up)
	}
	if err != nil {
		return WithCode(ExitData, err)
	}
	q, err := queue(st)
	if err != nil {
		return WithCode(ExitData, fmt.Errorf("%s: queue: %w", path, err))
	}
	ago := func(t time.Time) string {
		return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.RFC3339), time.Since(t).Round(time.Second))
	}
	switch {
	case up && !st.Stopped:
		fmt.Fprintf(w, "%s: running, pid %d, version %s, since %s\n", prog, st.PID, st.Version, ago(st.Started))
	case up:
		// The status file is the last instance's: the new one has not
		// written it yet.
		fmt.Fprintf(w, "%s: running (starting up); last run: pid %d, stopped %s\n", prog, st.PID, ago(st.Updated))
	case st.Stopped:
		fmt.Fprintf(w, "%s: not running; last run: pid %d, version %s, stopped %s\n", prog, st.PID, st.Version, ago(st.Updated))
	default:
		fmt.Fprintf(w, "%s: not running; pid %d did not stop cleanly (crashed or killed), last update %s\n", prog, st.PID, ago(st.Updated))
	}
	ready := "no"
	if st.Ready {
		ready = "yes"
	}
	fmt.Fprintf(w, "status file: %s, updated %s\nready: %s\nqueue: %s\n", path, ago(st.Updated), ready, q)
	if st.ErrorsTotal == 0 {
		fmt.Fprintln(w, "errors: none")
		return nil
	}
	fmt.Fprintf(w, "errors: %d since the start, the last %d:\n", st.ErrorsTotal, len(st.Errors))
	for _, e := range st.Errors {
		var about []string
		if e.Archive != "" {
			about = append(about, "archive "+e.Archive)
		}
		if e.Key != "" {
			about = append(about, "key "+e.Key)
		} else if e.Fragment != "" {
			about = append(about, "fragment "+e.Fragment)
		}
		if len(about) > 0 {
			about[len(about)-1] += ":"
		}
		fmt.Fprintf(w, "  %s %s\n", e.Time.Local().Format(time.RFC3339), strings.Join(append(about, e.Message), " "))
	}
	return nil
}

func noStatus(prog, path string, up bool) error {
	if up {
		return WithHint(ExitUnavailable, "an older "+prog+" that writes no status file, or one still starting: try again in a second",
			fmt.Errorf("%s is running but %s does not exist", prog, path))
	}
	return WithHint(ExitUnavailable, "start it: systemctl start "+prog,
		fmt.Errorf("%s never ran on this spool: %s does not exist", prog, path))
}

// MetricsTextfile returns the --metrics-textfile flag, checked: its
// directory must exist (it is node_exporter's, not ours to create).
func MetricsTextfile(c *ucli.Context) (string, error) {
	p := c.String("metrics-textfile")
	if p == "" {
		return "", nil
	}
	if !strings.HasSuffix(p, ".prom") {
		return "", Usagef("--metrics-textfile %s: the textfile collector reads only files named *.prom", p)
	}
	if fi, err := os.Stat(filepath.Dir(p)); err != nil || !fi.IsDir() {
		return "", Usagef("--metrics-textfile %s: %s is not a directory", p, filepath.Dir(p))
	}
	return p, nil
}
