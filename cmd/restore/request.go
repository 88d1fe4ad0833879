package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/internal/cli"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/thaw"
)

// thawHint says how to start thaw.
const thawHint = "start it: systemctl start cryophile-thaw, or run cryophile-thaw --once (as the spool's owner)"

// parseTime accepts RFC 3339 or a date (midnight UTC).
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, cli.Usagef("--before %q: want RFC 3339 (2026-01-31T23:00:00Z) or a date (2026-01-31)", s)
}

// cancel withdraws the restore requests for id.
func cancel(c *ucli.Context, cfg *config.Config, p *cli.Printer, id archive.ID) error {
	sp, err := spool.Open(cli.SpoolDir(c, cfg))
	if err != nil {
		return cli.WithCode(cli.ExitIO, err)
	}
	n, err := thaw.Withdraw(sp, id)
	if err != nil {
		return cli.WithCode(cli.ExitIO, err)
	}
	running, _ := thaw.Running(sp)
	switch {
	case n == 0:
		p.Printf("no pending restore request for %s", id)
	case running:
		p.Printf("withdrew the restore request for %s; cryophile-thaw stops and removes what it staged", id)
	default:
		p.Printf("withdrew the restore request for %s", id)
	}
	if !running {
		// No thaw publishes into restore/ now: clean up ourselves. Its
		// partial downloads are removed when it next starts.
		if err := sp.RemoveRestored(id); err != nil {
			return cli.WithCode(cli.ExitIO, err)
		}
	}
	return nil
}

// choose resolves --latest / --before: from thaw's listing of the vault,
// or, when thaw is not running, from the archives complete in restore/.
func choose(ctx context.Context, p *cli.Printer, sp *spool.Spool, id archive.ID, before time.Time) (archive.ID, error) {
	running, _ := thaw.Running(sp)
	local, lerr := latest(sp, id, before)
	if !running && lerr == nil {
		p.Printf("cryophile-thaw is not running: choosing among the archives already in %s: %s", sp.Dir(spool.QueueRestore, archive.ID{}), local)
		return local, nil
	}
	r, err := thaw.NewListRequest(id.Vault, id.Prefix)
	if err != nil {
		return id, cli.WithCode(cli.ExitUsage, err)
	}
	if err := thaw.File(sp, r); err != nil {
		return id, cli.WithCode(cli.ExitIO, err)
	}
	reqPath := filepath.Join(sp.Dir(spool.QueueThaw, archive.ID{}), r.Name())
	p.Printf("asked cryophile-thaw for the archives of %s", vaultPrefix(id))
	hinted := false
	lastCheck := time.Time{}
	for {
		if _, err := os.Lstat(reqPath); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Since(lastCheck) > 2*time.Second {
			lastCheck = time.Now()
			if running, _ := thaw.Running(sp); !running && !hinted {
				hinted = true
				p.Printf("waiting for cryophile-thaw, which is not running; %s", thawHint)
			}
		}
		select {
		case <-ctx.Done():
			os.Remove(reqPath)
			return id, cli.WithCode(cli.ExitTemp, errors.New("interrupted while waiting for the vault's listing"))
		case <-time.After(100 * time.Millisecond):
		}
	}
	l, err := thaw.ReadListing(sp, id.Vault, id.Prefix)
	if err != nil {
		return id, cli.WithCode(cli.ExitIO, err)
	}
	if l.Failure != nil {
		return id, failureError(&thaw.FailureError{Failure: *l.Failure})
	}
	best, ok := thaw.Latest(l.Archives, id.Prefix, before)
	if lerr == nil && (!ok || local.ULID.Compare(best.ULID) > 0) {
		best, ok = local, true
	}
	if !ok {
		what := "no complete archive"
		if !before.IsZero() {
			what += " made before " + before.Format(time.RFC3339)
		}
		return id, cli.WithCode(cli.ExitData, fmt.Errorf("%s of %s in the vault", what, vaultPrefix(id)))
	}
	p.Printf("restoring %s", best)
	return best, nil
}

// completeInRestore reports whether restore/ already holds id's manifest
// and every fragment it lists.
func completeInRestore(sp *spool.Spool, id archive.ID) bool {
	dir := sp.Dir(spool.QueueRestore, id)
	m, err := archive.ReadManifestFile(filepath.Join(dir, archive.ManifestName))
	if err != nil {
		return false
	}
	for _, f := range m.Fragments {
		if fi, err := os.Lstat(filepath.Join(dir, f.Name)); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// request files a restore request for id, or finds the one a previous
// run left, unless the archive is complete in restore/ (then it returns
// nil: nothing to watch).
func request(p *cli.Printer, sp *spool.Spool, id archive.ID, tier string, days int) (*watcher, error) {
	if completeInRestore(sp, id) {
		return nil, nil
	}
	reqs, err := thaw.RestoreRequests(sp, id)
	if err != nil {
		return nil, cli.WithCode(cli.ExitIO, err)
	}
	if n := len(reqs); n > 0 {
		r := reqs[n-1]
		if !consumed(sp, id, r.ID) {
			p.Printf("resuming the restore request filed by %s at %s (tier %s, %d days)", r.RequestedBy, r.RequestedAt.Local().Format(time.RFC3339), r.Tier, r.Days)
			return &watcher{p: p, sp: sp, id: id, req: r.ID, tier: r.Tier, days: r.Days}, nil
		}
		// An interrupted restore consumed fragments of that request: a
		// new one brings them back (thaw drops the older request).
	}
	r, err := thaw.NewRestoreRequest(id, tier, days)
	if err != nil {
		return nil, cli.WithCode(cli.ExitUsage, err)
	}
	if err := thaw.File(sp, r); err != nil {
		return nil, cli.WithCode(cli.ExitIO, err)
	}
	p.Printf("filed restore request %s for %s (tier %s, %d days)", r.Name(), id, r.Tier, r.Days)
	return &watcher{p: p, sp: sp, id: id, req: r.ID, tier: r.Tier, days: r.Days}, nil
}

// consumed reports whether thaw's status for request reqID counts more
// published fragments than restore/ holds: a restore consumed some.
func consumed(sp *spool.Spool, id archive.ID, reqID string) bool {
	st, err := thaw.ReadStatus(sp, id)
	if err != nil || st.Request != reqID {
		return false
	}
	present := 0
	if dirs, err := sp.Archives(spool.QueueRestore); err == nil {
		for _, d := range dirs {
			if d.ID == id {
				present = len(d.Fragments)
			}
		}
	}
	return st.Fragments.Published > present
}

// interrupted is the error of a restore stopped by a signal while its
// request stays filed.
func interrupted(id archive.ID) error {
	return cli.WithHint(cli.ExitTemp,
		fmt.Sprintf("run the same command again to resume, or withdraw the request: cryophile-restore --cancel --vault %s --prefix %q --ulid %s", id.Vault, id.Prefix, id.ULID),
		fmt.Errorf("interrupted: the restore request for %s stays filed and cryophile-thaw keeps working on it", id))
}

// failureError maps a permanent failure thaw reported to an exit status.
func failureError(fe *thaw.FailureError) error {
	code := cli.ExitData
	if fe.Code == thaw.FailUnavailable {
		code = cli.ExitUnavailable
	}
	return cli.WithCode(code, fe)
}

// watcher follows thaw's status.json for one request: it prints progress
// and ends the waits when thaw reports a permanent failure.
type watcher struct {
	p            *cli.Printer
	sp           *spool.Spool
	id           archive.ID
	tier         string
	days         int
	haveManifest atomic.Bool // the manifest was read: set by run

	mu      sync.Mutex
	req     string // the request followed
	refiled int
	last    string
	lastAt  time.Time
	est     bool
	noted   bool
}

// maxRefile bounds how often one restore files its request again.
const maxRefile = 3

// request returns the ID of the request followed.
func (w *watcher) request() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.req
}

// status reads status.json if it answers our request.
func (w *watcher) status() *thaw.Status {
	st, err := thaw.ReadStatus(w.sp, w.id)
	if err != nil || st.Request != w.request() {
		return nil
	}
	return st
}

// follow checks that the request followed can still bring the archive.
// Thaw removes a request once it has published every fragment, and
// --cancel withdraws one. A restore that resumed a request which thaw had
// already finished for an earlier restore (that consumed and removed
// everything) would otherwise wait for ever for a manifest that never
// comes; so would one whose request was withdrawn. So: a newer request
// for the archive (another restore filed it; thaw drops the older) is
// followed; before the manifest came, a request that is finished or gone
// with no manifest in restore/ is filed again (at most maxRefile times);
// after it, a request gone unfinished is an ExitTemp error naming it.
func (w *watcher) follow() error {
	cur := w.request()
	st := w.status()
	if st != nil && st.Failure != nil {
		return nil // watch and check report it
	}
	manifest := w.haveManifest.Load()
	if !manifest {
		_, err := os.Lstat(filepath.Join(w.sp.Dir(spool.QueueRestore, w.id), archive.ManifestName))
		manifest = err == nil
	}
	// Finished, but the manifest is not here: an earlier restore took it.
	stale := st != nil && st.Complete && !manifest
	if !stale {
		reqs, err := thaw.RestoreRequests(w.sp, w.id)
		if err != nil {
			return nil // unreadable now: the next poll tries again
		}
		for _, r := range reqs {
			if r.ID == cur {
				return nil
			}
		}
		if st != nil && st.Complete {
			return nil // finished for us: the fragments are here
		}
		if n := len(reqs); n > 0 {
			w.mu.Lock()
			w.req = reqs[n-1].ID
			w.mu.Unlock()
			w.p.Printf("restore request %s for %s was superseded by %s: following it", cur, w.id, reqs[n-1].Name())
			return nil
		}
		if w.haveManifest.Load() {
			return cli.WithHint(cli.ExitTemp, "run the same command again",
				fmt.Errorf("the restore request %s for %s was withdrawn (cryophile-restore --cancel?) before thaw published every fragment", cur, w.id))
		}
		if manifest {
			return nil
		}
	}
	w.mu.Lock()
	n := w.refiled
	w.mu.Unlock()
	if n >= maxRefile {
		return cli.WithCode(cli.ExitTemp, fmt.Errorf("the restore request for %s ended %d times before its manifest reached %s", w.id, n+1, w.sp.Dir(spool.QueueRestore, w.id)))
	}
	r, err := thaw.NewRestoreRequest(w.id, w.tier, w.days)
	if err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	if err := thaw.File(w.sp, r); err != nil {
		return cli.WithCode(cli.ExitIO, err)
	}
	w.mu.Lock()
	w.req, w.refiled = r.ID, n+1
	w.mu.Unlock()
	w.p.Printf("restore request %s for %s ended before its manifest reached %s (thaw had finished it for an earlier restore, or it was withdrawn): filed %s", cur, w.id, w.sp.Dir(spool.QueueRestore, w.id), r.Name())
	return nil
}

// check is the RestoreSource hook: thaw's permanent failure, or the
// request's withdrawal, ends the wait for a fragment.
func (w *watcher) check() error {
	if err := w.follow(); err != nil {
		return err
	}
	st := w.status()
	if st == nil {
		return nil
	}
	w.show(st)
	if fe := st.Err(); fe != nil {
		var f *thaw.FailureError
		errors.As(fe, &f)
		return failureError(f)
	}
	return nil
}

// failed turns the cause that ended the manifest wait into the error.
func (w *watcher) failed(cause error) error {
	var f *thaw.FailureError
	if errors.As(cause, &f) {
		if f.Code == thaw.FailNotFound || f.Code == thaw.FailIncomplete {
			// Nothing but status.json is there: leave no litter.
			_ = w.sp.RemoveRestored(w.id)
		}
		return failureError(f)
	}
	return cause
}

// watch polls status.json until ctx is done, printing progress and the
// hint when thaw is not running, and cancels the waits (stop) on a
// permanent failure.
func (w *watcher) watch(ctx context.Context, stop context.CancelCauseFunc) {
	hinted := false
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	lastRun := time.Time{}
	lastFollow := time.Now()
	for {
		if st := w.status(); st != nil {
			w.show(st)
			if fe := st.Err(); fe != nil {
				stop(fe)
				return
			}
		}
		if !w.haveManifest.Load() && time.Since(lastFollow) >= time.Second {
			lastFollow = time.Now()
			if err := w.follow(); err != nil {
				stop(err)
				return
			}
		}
		if time.Since(lastRun) > 2*time.Second {
			lastRun = time.Now()
			if running, err := thaw.Running(w.sp); err == nil && !running && !hinted {
				hinted = true
				w.p.Printf("waiting for cryophile-thaw, which is not running; %s", thawHint)
			} else if running {
				hinted = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// show prints the estimate once and a progress line when it changed (at
// most every two seconds).
func (w *watcher) show(st *thaw.Status) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st.Estimate != nil && !w.est {
		w.est = true
		w.p.Printf("estimate: %s", st.Estimate)
	}
	if st.TierNote != "" && !w.noted {
		w.noted = true
		w.p.Printf("note: %s", st.TierNote)
	}
	c := st.Fragments
	if c.Total == 0 {
		return
	}
	line := fmt.Sprintf("thaw: %d of %d fragments ready, %d downloading, %d restoring, %d pending; tier %s",
		c.Published, c.Total, c.Downloading+c.Ready, c.Restoring, c.Pending, st.Tier)
	if st.TypicalWait != "" {
		line += fmt.Sprintf(" (typical wait %s for %s)", st.TypicalWait, st.Class)
	}
	line += fmt.Sprintf("; %s downloaded", cli.Bytes(st.Downloaded))
	if n := len(st.Errors); n > 0 {
		e := st.Errors[n-1]
		line += "; last error: "
		if e.Fragment != "" {
			line += e.Fragment + ": "
		}
		line += e.Message
	}
	key := fmt.Sprint(c, st.Errors)
	if key == w.last || (time.Since(w.lastAt) < 2*time.Second && c.Published != c.Total) {
		return
	}
	w.last, w.lastAt = key, time.Now()
	w.p.Printf("%s", line)
}

// vaultPrefix is VAULT/PREFIX (or VAULT) of id, for messages.
func vaultPrefix(id archive.ID) string {
	if id.Prefix == "" {
		return id.Vault.String()
	}
	return id.Vault.String() + "/" + id.Prefix
}
