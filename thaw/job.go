package thaw

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/internal/daemon"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
)

// Fragment states inside a job.
const (
	stPending = iota
	stRestoring
	stReady
	stDownloading
	stPublished
	stQuarantined
)

// maxStatusErrors is how many errors status.json keeps.
const maxStatusErrors = 20

// job is the work on one restore request.
type job struct {
	t      *Thaw
	req    PendingRequest
	id     archive.ID
	key    string
	cancel context.CancelFunc
	done   chan struct{}
	// finished is set before the job removes its own request file, so
	// that a scan does not take the missing file for a withdrawal.
	finished atomic.Bool
	failure  *Failure

	dir        string // restore/.thaw/KEY: partial and verified downloads
	reqDir     string // dir/req-ID: publication markers of this request
	restoreDir string
	manifestOK bool // manifest published: never create restoreDir again for status
	lowSpace   bool // free space below Options.Reserve was reported

	m          *archive.Manifest
	store      storage.Store
	frags      []*frag
	st         Status
	downloaded atomic.Int64

	mu   sync.Mutex
	last Counts
}

// frag is one fragment's state; only the job's main goroutine touches it.
type frag struct {
	f           archive.Fragment
	state       int
	due         time.Time
	backoff     daemon.Backoff
	attempts    int
	rerequested bool
	// failures counts transient errors in a row (GiveUpAfter).
	failures int
}

// result is what a download goroutine reports.
type result struct {
	fr *frag
	// kind: "ok", "restore" (needs a restore first), "mismatch",
	// "missing", "error"
	kind string
	err  error
}

func (j *job) counts() Counts {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last
}

// stop interrupts the job and waits for it.
func (j *job) stop() {
	j.cancel()
	<-j.done
}

// withdraw removes everything a withdrawn request staged or published.
func (j *job) withdraw() {
	if err := os.RemoveAll(j.jobDir()); err != nil {
		j.t.log.Error("withdraw", "archive", j.id, "err", err)
	}
	if err := j.t.sp.RemoveRestored(j.id); err != nil {
		j.t.log.Error("withdraw", "archive", j.id, "err", err)
	}
}

func (j *job) jobDir() string {
	return filepath.Join(j.t.sp.Dir(spool.QueueRestore, archive.ID{}), jobsDir, j.key)
}

func (j *job) log(msg string, args ...any) {
	j.t.log.Info(msg, append([]any{"archive", j.id.String()}, args...)...)
}

// run does the job until it completes, fails permanently or ctx ends.
func (j *job) run(ctx context.Context) {
	t := j.t
	j.dir = j.jobDir()
	j.reqDir = filepath.Join(j.dir, "req-"+j.req.ID)
	j.restoreDir = t.sp.Dir(spool.QueueRestore, j.id)
	j.st = Status{
		Format: StatusFormat, BackupID: j.id.String(), Request: j.req.ID,
		Tier: j.req.Tier, Days: j.req.Days, Started: time.Now().UTC(),
	}
	if err := j.prepare(); err != nil {
		t.log.Error("prepare", "archive", j.id, "err", err)
		t.errs.Add(daemon.Error{Archive: j.id.String(), Message: "prepare: " + err.Error()})
		return
	}
	j.log("restore request", "request", j.req.Path, "tier", j.req.Tier, "days", j.req.Days, "by", j.req.RequestedBy)
	fail, err := j.work(ctx)
	if ctx.Err() != nil {
		return // stopped: resumes on the next start (or superseded)
	}
	if err != nil && fail == nil {
		fail = &Failure{Code: FailUnavailable, Message: err.Error()}
	}
	if fail != nil {
		j.failure = fail
		j.st.Failure = fail
		t.log.Error("restore failed", "archive", j.id, "code", fail.Code, "fragment", fail.Fragment, "err", fail.Message)
		t.errs.Add(daemon.Error{Archive: j.id.String(), Fragment: fail.Fragment, Message: "restore failed (" + fail.Code + "): " + fail.Message})
	} else {
		j.st.Complete = true
		j.log("all fragments published")
	}
	j.writeStatus()
	j.finished.Store(true)
	if err := os.Remove(j.req.Path); err != nil && !notExist(err) {
		t.log.Error("remove request", "file", j.req.Path, "err", err)
	}
	_ = syncDir(filepath.Dir(j.req.Path))
	if err := os.RemoveAll(j.dir); err != nil {
		t.log.Error("remove job directory", "dir", j.dir, "err", err)
	}
}

// prepare creates the job's directories and drops markers of superseded
// requests.
func (j *job) prepare() error {
	if err := os.MkdirAll(j.reqDir, spool.DirMode); err != nil {
		return err
	}
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "req-") && e.Name() != filepath.Base(j.reqDir) {
			_ = os.RemoveAll(filepath.Join(j.dir, e.Name()))
		}
	}
	return nil
}

// retry runs op until it succeeds, fails permanently (failureOf) or ctx
// ends, with backoff between attempts; transient errors go to status.
func (j *job) retry(ctx context.Context, what string, op func() error) (*Failure, error) {
	b := daemon.Backoff{Min: j.t.o.PollMin, Max: j.t.o.PollMax}
	tries := 0
	for {
		err := op()
		if err == nil {
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if f := failureOf(err); f != nil {
			return f, nil
		}
		var fe *FailureError
		if errors.As(err, &fe) {
			return &fe.Failure, nil
		}
		tries++
		if g := j.t.o.GiveUpAfter; g > 0 && tries >= g {
			return &Failure{Code: FailUnavailable, Message: fmt.Sprintf("%s: %v (gave up after %d attempts)", what, err, tries)}, nil
		}
		j.addError("", fmt.Sprintf("%s: %v (retrying)", what, err))
		j.writeStatus()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(b.Next()):
		}
	}
}

func (j *job) work(ctx context.Context) (*Failure, error) {
	t := j.t
	if err := os.MkdirAll(j.restoreDir, spool.DirMode); err != nil {
		return nil, err
	}
	j.writeStatus()
	if f, err := j.retry(ctx, "open vault", func() (err error) {
		j.store, err = t.store(ctx, j.id.Vault)
		return err
	}); f != nil || err != nil {
		return f, err
	}
	if f, err := j.retry(ctx, "manifest", func() error { return j.loadManifest(ctx) }); f != nil || err != nil {
		return f, err
	}
	for _, f := range j.m.Fragments {
		j.st.Bytes += f.Size
	}
	// The estimate goes into status.json before the manifest is
	// published, so restore can show it before it starts waiting.
	if e, err := EstimateArchive(ctx, j.store, j.m, j.req.Tier, t.o.Prices); err == nil {
		j.st.Estimate = &e
		if _, note := EffectiveTier(e.Class, j.req.Tier); note != "" {
			j.st.TierNote = note
		}
		j.log("estimate", "requests", e.Requests, "bytes", e.Bytes, "wait", e.Wait, "cost_usd", e.CostUSD)
		j.writeStatus()
	}
	if err := j.publish(archive.ManifestName); err != nil {
		return nil, err
	}
	j.manifestOK = true
	if err := j.initFragments(); err != nil {
		return nil, err
	}
	return j.loop(ctx)
}

// loadManifest reads the job's copy of the manifest, or gets it from the
// vault and stages it for publication.
func (j *job) loadManifest(ctx context.Context) error {
	local := filepath.Join(j.dir, archive.ManifestName)
	if b, err := os.ReadFile(local); err == nil {
		if m, err := archive.ParseManifest(b); err == nil && m.BackupID == j.id.String() {
			j.m = m
			return nil
		}
	}
	m, err := getManifest(ctx, j.store, j.id)
	switch {
	case errors.Is(err, storage.ErrNotExist):
		return j.missingManifest(ctx)
	case errors.Is(err, storage.ErrArchived):
		// A manifest in an archive class (a misconfigured vault): restore
		// it like a fragment and try again later.
		key := j.id.Key() + "/" + archive.ManifestName
		if err := j.t.lim.Wait(ctx); err != nil {
			return err
		}
		if rerr := j.store.Restore(ctx, key, j.req.Days, j.req.Tier); rerr != nil && !errors.Is(rerr, storage.ErrRestoreInProgress) {
			return rerr
		}
		return fmt.Errorf("%s is archived; restore requested", key)
	case err != nil:
		return err
	}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	for _, p := range []string{local, filepath.Join(j.dir, archive.ManifestName+".ready")} {
		if err := writeFileSync(p, b); err != nil {
			return err
		}
	}
	j.m = m
	return nil
}

// missingManifest tells an archive that does not exist from an incomplete
// one.
func (j *job) missingManifest(ctx context.Context) error {
	n := 0
	err := j.store.List(ctx, j.id.Key()+"/", func(o storage.ObjectInfo) error {
		if _, err := archive.ParseFragmentName(o.Key[strings.LastIndexByte(o.Key, '/')+1:]); err == nil {
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 {
		return &FailureError{Failure{Code: FailIncomplete, Message: fmt.Sprintf(
			"archive %s is incomplete: the vault holds %d fragments but no %s (an upload that never finished); it cannot be restored",
			j.id, n, archive.ManifestName)}}
	}
	return &FailureError{Failure{Code: FailNotFound, Message: fmt.Sprintf("archive %s does not exist in vault %s", j.id, j.id.Vault)}}
}

func writeFileSync(p string, b []byte) error {
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, spool.FileMode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(p))
}

// publish publishes the verified file dir/NAME.ready as restore/…/NAME,
// exactly once per request. The marker reqDir/NAME is created (and
// synced) before the rename: after a crash, marker and .ready both there
// means "not published yet", the marker alone "published" (whether or not
// restore has consumed it since), so a fragment is never published twice.
func (j *job) publish(name string) error {
	marker := filepath.Join(j.reqDir, name)
	ready := filepath.Join(j.dir, name+".ready")
	if !exists(marker) {
		if !exists(ready) && exists(filepath.Join(j.restoreDir, name)) {
			// Published by an earlier request and not consumed: keep it.
			return writeFileSync(marker, nil)
		}
		if err := writeFileSync(marker, nil); err != nil {
			return err
		}
	}
	if !exists(ready) {
		return nil // published before a crash
	}
	if err := os.MkdirAll(j.restoreDir, spool.DirMode); err != nil {
		return err
	}
	err := publishNoReplace(ready, j.restoreDir, name)
	if errors.Is(err, unix.EEXIST) {
		// Already there (published by an earlier request, not consumed).
		return os.Remove(ready)
	}
	return err
}

// initFragments finds each fragment's state from what is on disk.
func (j *job) initFragments() error {
	now := time.Now()
	for _, f := range j.m.Fragments {
		fr := &frag{f: f, due: now, backoff: daemon.Backoff{Min: j.t.o.PollMin, Max: j.t.o.PollMax}}
		marker := filepath.Join(j.reqDir, f.Name)
		ready := filepath.Join(j.dir, f.Name+".ready")
		switch {
		case exists(marker), exists(ready), exists(filepath.Join(j.restoreDir, f.Name)):
			if err := j.publish(f.Name); err != nil {
				return err
			}
			fr.state = stPublished
		}
		j.frags = append(j.frags, fr)
	}
	j.count()
	return nil
}

// count updates the status counts from the fragments' states.
func (j *job) count() bool {
	c := Counts{Total: len(j.frags)}
	for _, fr := range j.frags {
		switch fr.state {
		case stPending:
			c.Pending++
		case stRestoring:
			c.Restoring++
		case stReady:
			c.Ready++
		case stDownloading:
			c.Downloading++
		case stPublished:
			c.Published++
		case stQuarantined:
			c.Quarantined++
		}
	}
	changed := c != j.st.Fragments
	j.st.Fragments = c
	j.mu.Lock()
	j.last = c
	j.mu.Unlock()
	return changed
}

// addError records an error in the archive's status.json and in the
// daemon's status file.
func (j *job) addError(fragment, msg string) {
	j.t.errs.Add(daemon.Error{Archive: j.id.String(), Fragment: fragment, Message: msg})
	j.st.Errors = append(j.st.Errors, StatusError{Time: time.Now().UTC(), Fragment: fragment, Message: msg})
	if len(j.st.Errors) > maxStatusErrors {
		j.st.Errors = j.st.Errors[len(j.st.Errors)-maxStatusErrors:]
	}
}

// writeStatus publishes status.json. Before the manifest is published
// the restore directory is created if needed; after, a directory restore
// removed (it finished) is left removed.
func (j *job) writeStatus() {
	j.st.Updated = time.Now().UTC()
	j.st.Downloaded = j.downloaded.Load()
	if !j.manifestOK {
		_ = os.MkdirAll(j.restoreDir, spool.DirMode)
	}
	if err := writeJSON(j.dir, filepath.Join(j.restoreDir, spool.StatusName), &j.st); err != nil && !notExist(err) {
		j.t.log.Warn("status", "archive", j.id, "err", err)
	}
}

// lukewarm reports whether a restored copy expires too soon to download fr.
func (j *job) lukewarm(info storage.ObjectInfo, f archive.Fragment) bool {
	need := j.t.o.Lukewarm + time.Duration(f.Size/assumedRate)*time.Second
	return storage.NeedsRestore(info.Class) && time.Until(info.Restore.Expiry) < need
}

// loop drives the fragments until all are published.
func (j *job) loop(ctx context.Context) (*Failure, error) {
	t := j.t
	results := make(chan result)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lastWrite := time.Time{}
	for {
		if j.st.Fragments.Published == len(j.frags) {
			return nil, nil
		}
		now := time.Now()
		for _, fr := range j.frags {
			if (fr.state == stPending || fr.state == stRestoring) && !now.Before(fr.due) {
				if f, err := j.check(ctx, fr); f != nil || err != nil {
					return f, err
				}
			}
		}
		for _, fr := range j.frags {
			if fr.state != stReady || now.Before(fr.due) {
				continue
			}
			if !j.budgetAllows(fr) {
				break
			}
			acquired := false
			select {
			case t.sem <- struct{}{}:
				acquired = true
			default:
			}
			if !acquired {
				break
			}
			fr.state = stDownloading
			t.reserved.Add(fr.f.Size)
			wg.Add(1)
			go func(fr *frag, rerequested bool) {
				defer wg.Done()
				r := j.download(ctx, fr.f, rerequested)
				r.fr = fr
				t.reserved.Add(-fr.f.Size)
				<-t.sem
				select {
				case results <- r:
				case <-ctx.Done():
				}
			}(fr, fr.rerequested)
			break // one at a time, in order: re-check the budget
		}
		if j.count() || time.Since(lastWrite) > time.Second {
			j.writeStatus()
			lastWrite = time.Now()
		}
		wait := time.Second
		if t.o.PollMin < wait {
			wait = t.o.PollMin
		}
		for _, fr := range j.frags {
			if fr.state == stPending || fr.state == stRestoring || fr.state == stReady {
				if d := time.Until(fr.due); d < wait {
					wait = max(d, time.Millisecond)
				}
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case r := <-results:
			timer.Stop()
			if f := j.handle(r); f != nil {
				j.count()
				return f, nil
			}
		case <-timer.C:
		}
	}
}

// budgetAllows reports whether a download of fr may start: restore has
// consumed every fragment before it (it waits for fr), or restore/ plus the downloads in flight
// stay within the budget, or nothing at all is waiting for restore to
// consume (a fragment larger than the budget must still get through).
func (j *job) budgetAllows(fr *frag) bool {
	for _, o := range j.frags {
		if o == fr {
			// Restore has consumed everything before fr and waits for
			// it: it always goes. Had later fragments (readable sooner)
			// filled the budget, nothing else would ever drain it.
			return true
		}
		if o.state != stPublished || exists(filepath.Join(j.restoreDir, o.f.Name)) {
			break
		}
	}
	if r := j.t.o.Reserve; r > 0 {
		var st unix.Statfs_t
		if err := unix.Statfs(j.dir, &st); err == nil &&
			int64(st.Bavail)*int64(st.Bsize)-j.t.reserved.Load()-fr.f.Size < r {
			if !j.lowSpace {
				j.lowSpace = true
				j.addError("", fmt.Sprintf("free space on the spool's file system is below the reserve (%d bytes): downloads wait", r))
				j.t.log.Warn("free space below the reserve: downloads wait", "archive", j.id, "reserve", r)
			}
			return false
		}
		j.lowSpace = false
	}
	budget := j.t.o.RestoreMaxBytes
	if budget <= 0 {
		budget = DefaultBudgetFragments * j.m.FragmentSize
	}
	used, err := j.t.sp.Usage(spool.QueueRestore)
	if err != nil {
		return false
	}
	reserved := j.t.reserved.Load()
	if used+reserved+fr.f.Size <= budget {
		return true
	}
	if reserved > 0 {
		return false
	}
	dirs, err := j.t.sp.Archives(spool.QueueRestore)
	if err != nil {
		return false
	}
	for _, d := range dirs {
		if len(d.Fragments) > 0 {
			return false
		}
	}
	return true
}

// check heads an unreadable fragment and asks for a restore if needed.
func (j *job) check(ctx context.Context, fr *frag) (*Failure, error) {
	key := j.id.Key() + "/" + fr.f.Name
	info, err := j.store.Head(ctx, key)
	if err != nil {
		return j.vaultError(ctx, fr, "head", err)
	}
	fr.failures = 0
	if j.st.Class == "" {
		j.st.Class = info.Class
		tier, note := EffectiveTier(info.Class, j.req.Tier)
		if note != "" {
			j.st.TierNote = note
			t := j.t
			t.log.Warn("tier fallback", "archive", j.id, "class", info.Class, "asked", j.req.Tier, "using", tier)
		}
		j.st.TypicalWait = TypicalWait(info.Class, j.req.Tier)
	}
	switch {
	case !storage.NeedsRestore(info.Class):
		fr.state = stReady
	case info.Restore.Ongoing:
		fr.state = stRestoring
		fr.due = time.Now().Add(fr.backoff.Next())
	case !info.Restore.Expiry.IsZero() && (!j.lukewarm(info, fr.f) || fr.rerequested):
		fr.state = stReady
	default:
		lukewarm := !info.Restore.Expiry.IsZero()
		tier, _ := EffectiveTier(info.Class, j.req.Tier)
		if err := j.t.lim.Wait(ctx); err != nil {
			return nil, err
		}
		err := j.store.Restore(ctx, key, j.req.Days, tier)
		switch {
		case err == nil, errors.Is(err, storage.ErrRestoreInProgress):
		default:
			return j.vaultError(ctx, fr, "restore", err)
		}
		if lukewarm {
			fr.rerequested = true
			j.log("restored copy expires too soon: restore requested again", "fragment", fr.f.Name, "expiry", info.Restore.Expiry)
		} else {
			j.t.log.Debug("restore requested", "archive", j.id, "fragment", fr.f.Name, "tier", tier, "days", j.req.Days)
		}
		fr.state = stRestoring
		fr.backoff.Reset()
		fr.due = time.Now().Add(fr.backoff.Next())
		if lukewarm {
			fr.due = time.Now() // an extension is immediate
		}
	}
	return nil, nil
}

// vaultError handles a failed head or restore: permanent failures end
// the job, the rest are retried after a backoff.
func (j *job) vaultError(ctx context.Context, fr *frag, op string, err error) (*Failure, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	switch {
	case errors.Is(err, storage.ErrNotExist):
		return &Failure{Code: FailCorrupt, Fragment: fr.f.Name, Message: fmt.Sprintf(
			"fragment %s of %s is listed in the manifest but missing from the vault", fr.f.Name, j.id)}, nil
	case errors.Is(err, storage.ErrPermanent):
		return &Failure{Code: FailUnavailable, Fragment: fr.f.Name, Message: fmt.Sprintf("%s %s: %v", op, fr.f.Name, err)}, nil
	}
	if f := j.transient(fr, op, err); f != nil {
		return f, nil
	}
	fr.due = time.Now().Add(fr.backoff.Next())
	return nil, nil
}

// transient records a transient error about fr and gives up after
// GiveUpAfter in a row.
func (j *job) transient(fr *frag, op string, err error) *Failure {
	fr.failures++
	if g := j.t.o.GiveUpAfter; g > 0 && fr.failures >= g {
		return &Failure{Code: FailUnavailable, Fragment: fr.f.Name, Message: fmt.Sprintf(
			"%s %s: %v (gave up after %d attempts)", op, fr.f.Name, err, fr.failures)}
	}
	j.addError(fr.f.Name, fmt.Sprintf("%s: %v (retrying)", op, err))
	return nil
}

// handle applies a download's result; a non-nil Failure ends the job.
func (j *job) handle(r result) *Failure {
	fr := r.fr
	switch r.kind {
	case "ok":
		fr.state = stPublished
		fr.failures = 0
		j.t.log.Debug("published", "archive", j.id, "fragment", fr.f.Name)
	case "restore":
		fr.state = stPending
		fr.due = time.Now()
	case "missing":
		return &Failure{Code: FailCorrupt, Fragment: fr.f.Name, Message: fmt.Sprintf(
			"fragment %s of %s is listed in the manifest but missing from the vault", fr.f.Name, j.id)}
	case "mismatch":
		fr.attempts++
		part := filepath.Join(j.dir, fr.f.Name+".part")
		j.addError(fr.f.Name, fmt.Sprintf("download %d: %v", fr.attempts, r.err))
		if fr.attempts < j.t.o.VerifyAttempts {
			j.t.log.Warn("fragment failed verification; downloading again", "archive", j.id, "fragment", fr.f.Name, "attempt", fr.attempts, "err", r.err)
			_ = os.Remove(part)
			fr.state = stReady
			fr.due = time.Now()
			return nil
		}
		fr.state = stQuarantined
		where, err := j.t.quarantine(j.id, fr.f.Name, part)
		if err != nil {
			where = part + " (could not move it to the quarantine: " + err.Error() + ")"
		}
		return &Failure{Code: FailCorrupt, Fragment: fr.f.Name, Message: fmt.Sprintf(
			"fragment %s of %s: %v after %d downloads: the copy in the vault is corrupt; quarantined as %s",
			fr.f.Name, j.id, r.err, fr.attempts, where)}
	default:
		if f := j.transient(fr, "download", r.err); f != nil {
			return f
		}
		j.t.log.Warn("download", "archive", j.id, "fragment", fr.f.Name, "err", r.err)
		fr.state = stReady
		fr.due = time.Now().Add(fr.backoff.Next())
	}
	return nil
}

// download fetches fragment f into dir/NAME.part, resuming from what a
// previous attempt left, verifies it and publishes it.
func (j *job) download(ctx context.Context, f archive.Fragment, rerequested bool) result {
	key := j.id.Key() + "/" + f.Name
	// The fragment may have waited behind back-pressure: check it is still
	// readable for long enough.
	info, err := j.store.Head(ctx, key)
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return result{kind: "missing", err: err}
		}
		return result{kind: "error", err: err}
	}
	if storage.NeedsRestore(info.Class) && (!info.Readable() || (j.lukewarm(info, f) && !rerequested)) {
		return result{kind: "restore"}
	}
	part := filepath.Join(j.dir, f.Name+".part")
	file, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, spool.FileMode)
	if err != nil {
		return result{kind: "error", err: err}
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return result{kind: "error", err: err}
	}
	off := fi.Size()
	if off > f.Size {
		if err := file.Truncate(0); err != nil {
			return result{kind: "error", err: err}
		}
		off = 0
	}
	if off > 0 {
		j.t.log.Debug("resuming download", "archive", j.id, "fragment", f.Name, "offset", off)
	}
	if off < f.Size {
		rc, err := j.store.Get(ctx, key, off, f.Size-off)
		if err != nil {
			switch {
			case errors.Is(err, storage.ErrArchived):
				return result{kind: "restore"}
			case errors.Is(err, storage.ErrNotExist):
				return result{kind: "missing", err: err}
			}
			return result{kind: "error", err: err}
		}
		_, err = io.CopyBuffer(&countingWriterAt{f: file, off: off, n: &j.downloaded}, rc, make([]byte, 1<<20))
		rc.Close()
		if err != nil {
			return result{kind: "error", err: fmt.Errorf("get %s: %w", key, err)}
		}
	}
	if err := file.Sync(); err != nil {
		return result{kind: "error", err: err}
	}
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(file, 0, f.Size+1))
	if err != nil {
		return result{kind: "error", err: err}
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != f.Size || sum != f.SHA256 {
		return result{kind: "mismatch", err: fmt.Errorf("%w: %d bytes with sha256 %s, manifest says %d bytes with sha256 %s",
			archive.ErrCorrupt, n, sum, f.Size, f.SHA256)}
	}
	file.Close()
	if err := os.Rename(part, filepath.Join(j.dir, f.Name+".ready")); err != nil {
		return result{kind: "error", err: err}
	}
	if err := syncDir(j.dir); err != nil {
		return result{kind: "error", err: err}
	}
	if err := j.publish(f.Name); err != nil {
		return result{kind: "error", err: err}
	}
	return result{kind: "ok"}
}

// countingWriterAt appends to a file from off, counting bytes.
type countingWriterAt struct {
	f   *os.File
	off int64
	n   *atomic.Int64
}

func (w *countingWriterAt) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	w.n.Add(int64(n))
	return n, err
}
