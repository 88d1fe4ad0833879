package thaw

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/config"
	"github.com/cryophile/cryophile/internal/daemon"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
)

// Defaults for Options.
const (
	DefaultPollMax        = time.Minute
	DefaultConcurrency    = 4
	DefaultRestoreRate    = 1000
	DefaultLukewarm       = time.Hour
	DefaultVerifyAttempts = 3
	// DefaultBudgetFragments is restore/'s budget, in fragments of the
	// archive being restored, when Options.RestoreMaxBytes is 0.
	DefaultBudgetFragments = 4
	// listLinger is how long Once waits for requests after answering a
	// list request.
	listLinger = 5 * time.Second
	// assumedRate is the download rate (bytes/s) assumed when deciding
	// whether a restored copy lives long enough to be downloaded.
	assumedRate = 10_000_000
)

// Private directories below restore/ (dot-names: no listing or watch
// sees them) and the spool root.
const (
	jobsDir       = ".thaw"
	quarantineDir = ".quarantine"
	rejectedDir   = ".rejected"
)

// Options configure a Thaw.
type Options struct {
	// Spool is the spool to serve.
	Spool *spool.Spool
	// OpenVault returns the store of a vault. It is called once per vault
	// (successes are cached). An error wrapping config.ErrUnknownVault or
	// storage.ErrPermanent fails the requests for that vault; any other
	// is retried.
	OpenVault func(ctx context.Context, vault uuid.UUID) (storage.Store, error)
	// PollMin and PollMax bound the backoff between restore status checks
	// of one fragment (jitter ±20% is added). PollMax is the config's
	// thaw.poll_interval; PollMin defaults to PollMax/16, at least 1s
	// (PollMax if smaller).
	PollMin, PollMax time.Duration
	// Concurrency is the number of downloads at once, over all archives.
	Concurrency int
	// RestoreMaxBytes is restore/'s budget: no download starts while
	// restore/ holds more (published fragments, partial downloads). 0
	// means DefaultBudgetFragments fragments of the archive.
	RestoreMaxBytes int64
	// RestoreRate caps restore requests per second (AWS: 1,000 per
	// account). Default DefaultRestoreRate.
	RestoreRate int
	// Lukewarm is the least time a restored copy must still live, on top
	// of its expected download time at 10 MB/s, to be downloaded without
	// asking for a longer restore first. Default DefaultLukewarm.
	Lukewarm time.Duration
	// VerifyAttempts is how many downloads of a fragment may fail SHA-256
	// verification before it is quarantined. Default 3.
	VerifyAttempts int
	// Rescan is the period of the full rescan of thaw/ (fsnotify events
	// are only a wake-up). Default 1s: withdrawals show up only in scans.
	Rescan time.Duration
	// Reserve is free space kept on the spool's file system: no download
	// starts that would leave less (but the fragment restore waits for).
	// 0: none. cmd/thaw passes budget.reserve (ReserveFor).
	Reserve int64
	// GiveUpAfter is how many transient vault errors in a row (on the
	// manifest, or on one fragment) fail a request as unavailable. 0 means
	// never: the daemon retries until the vault comes back; --once gives
	// up.
	GiveUpAfter int
	// Prices is the price table for estimates; nil means
	// config.DefaultPrices().
	Prices config.Prices
	// Log receives the log; nil means slog.Default().
	Log *slog.Logger
	// Status, if set, receives a one-line summary after each change (for
	// systemd's STATUS=).
	Status func(string)
	// Version is the version written into the daemon status file
	// (DaemonStatusPath).
	Version string
	// MetricsFile, if set, is a node_exporter textfile that Run and Once
	// keep up to date along with the daemon status file.
	MetricsFile string
	// StatusInterval is the least time between two writes of the daemon
	// status file; default 1 s.
	StatusInterval time.Duration
}

// Thaw is the engine of cryophile-thaw.
type Thaw struct {
	o   Options
	sp  *spool.Spool
	log *slog.Logger
	sem chan struct{}
	lim *daemon.Limiter

	// reserved is the full size of the downloads in flight.
	reserved atomic.Int64
	// beat is the time of the main loop's last turn (for the watchdog).
	beat atomic.Int64

	mu       sync.Mutex
	stores   map[uuid.UUID]storage.Store
	jobs     map[string]*job // by Key(backup ID)
	listNext map[string]time.Time
	lastList time.Time // when a listing was last published
	failures []error

	errs   daemon.ErrorLog
	status *daemon.StatusFile
}

// New returns an engine for o.
func New(o Options) (*Thaw, error) {
	if o.Spool == nil || o.OpenVault == nil {
		return nil, errors.New("thaw: Options.Spool and Options.OpenVault are required")
	}
	if o.PollMax <= 0 {
		o.PollMax = DefaultPollMax
	}
	if o.PollMin <= 0 {
		o.PollMin = max(o.PollMax/16, time.Second)
	}
	o.PollMin = min(o.PollMin, o.PollMax)
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.RestoreRate <= 0 {
		o.RestoreRate = DefaultRestoreRate
	}
	if o.Lukewarm <= 0 {
		o.Lukewarm = DefaultLukewarm
	}
	if o.VerifyAttempts <= 0 {
		o.VerifyAttempts = DefaultVerifyAttempts
	}
	if o.Rescan <= 0 {
		o.Rescan = time.Second
	}
	if o.Prices == nil {
		o.Prices = config.DefaultPrices()
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	t := &Thaw{
		o: o, sp: o.Spool, log: o.Log,
		sem:      make(chan struct{}, o.Concurrency),
		lim:      daemon.NewLimiter(o.RestoreRate),
		stores:   map[uuid.UUID]storage.Store{},
		jobs:     map[string]*job{},
		listNext: map[string]time.Time{},
	}
	t.beat.Store(time.Now().UnixNano())
	t.status = t.statusFile()
	return t, nil
}

// Alive reports whether the main loop turned within the last d: the
// watchdog is fed only while it does.
func (t *Thaw) Alive(d time.Duration) bool {
	return time.Since(time.Unix(0, t.beat.Load())) < d
}

// Run serves requests until ctx is done: it watches thaw/, starts a job
// per restore request, answers list requests, stops jobs whose request
// was withdrawn. It returns nil when ctx is cancelled; jobs in progress
// are interrupted and resume on the next start.
func (t *Thaw) Run(ctx context.Context) error { return t.run(ctx, false) }

// Once serves the requests in thaw/ (and any filed meanwhile) until none
// is left, then returns. Requests that failed permanently are reported
// in the error (FailureErrors, joined).
func (t *Thaw) Once(ctx context.Context) error { return t.run(ctx, true) }

func (t *Thaw) run(ctx context.Context, once bool) error {
	if removed, err := t.sp.CleanupStaging(time.Hour); err != nil {
		t.log.Warn("staging clean-up", "err", err)
	} else if len(removed) > 0 {
		t.log.Info("removed staging leftovers", "files", len(removed))
	}
	// The status file is written last, once the jobs are done.
	defer t.status.Close()
	// Cancel first, then wait: the jobs' goroutines end on cancellation.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := make(chan struct{}, 1)
	finished := make(chan *job)
	if !once {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := spool.Watch(ctx, t.sp.Dir(spool.QueueThaw, archive.ID{}), t.o.Rescan, func(string) {
				select {
				case wake <- struct{}{}:
				default:
				}
			})
			if err != nil && ctx.Err() == nil {
				t.log.Error("watch thaw/", "err", err)
			}
		}()
	}
	tick := time.NewTicker(t.o.Rescan)
	defer tick.Stop()
	for first := true; ; first = false {
		t.beat.Store(time.Now().UnixNano())
		if err := t.scan(ctx, &wg, finished, once); err != nil {
			t.log.Error("scan", "err", err)
			t.errs.Add(daemon.Error{Message: "scan: " + err.Error()})
			if once {
				t.stopAll()
				return err
			}
		}
		if first {
			t.status.SetReady()
		}
		t.report()
		if once && t.idle() {
			t.mu.Lock()
			defer t.mu.Unlock()
			return errors.Join(t.failures...)
		}
		select {
		case <-ctx.Done():
			t.stopAll()
			if once {
				return ctx.Err()
			}
			return nil
		case j := <-finished:
			t.mu.Lock()
			if t.jobs[j.key] == j {
				delete(t.jobs, j.key)
			}
			if j.failure != nil {
				t.failures = append(t.failures, fmt.Errorf("%s: %w", j.id, &FailureError{*j.failure}))
			}
			t.mu.Unlock()
		case <-wake:
		case <-tick.C:
		}
	}
}

func (t *Thaw) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.jobs) > 0 {
		return false
	}
	// A restore that asked for a listing files its restore request right
	// after the answer: give it time to, before --once exits.
	if time.Since(t.lastList) < listLinger {
		return false
	}
	reqs, _, err := Requests(t.sp)
	return err == nil && len(reqs) == 0
}

// stopAll interrupts every job and waits for them; their work resumes on
// the next start.
func (t *Thaw) stopAll() {
	t.mu.Lock()
	jobs := make([]*job, 0, len(t.jobs))
	for _, j := range t.jobs {
		jobs = append(jobs, j)
	}
	t.mu.Unlock()
	for _, j := range jobs {
		j.stop()
	}
}

// scan reads thaw/ and reconciles the running jobs with it.
func (t *Thaw) scan(ctx context.Context, wg *sync.WaitGroup, finished chan<- *job, once bool) error {
	reqs, bad, err := Requests(t.sp)
	if err != nil {
		return err
	}
	for p, e := range bad {
		t.reject(p, e)
	}
	newest := map[string]PendingRequest{}
	for _, r := range reqs {
		switch r.Kind {
		case KindList:
			t.answerList(ctx, r, once)
		case KindRestore:
			k := Key(r.BackupID)
			if old, ok := newest[k]; ok {
				// A newer request supersedes an older one (a restore
				// restarted after it consumed fragments needs them again).
				t.log.Info("request superseded", "request", old.Path, "by", r.Path)
				_ = os.Remove(old.Path)
			}
			newest[k] = r
		}
	}
	t.mu.Lock()
	jobs := make(map[string]*job, len(t.jobs))
	for k, j := range t.jobs {
		jobs[k] = j
	}
	t.mu.Unlock()
	// Withdrawn requests: stop the job, remove what it staged and published.
	for k, j := range jobs {
		if _, ok := newest[k]; ok || j.finished.Load() {
			continue
		}
		t.log.Info("request withdrawn", "archive", j.id)
		j.stop()
		j.withdraw()
		t.mu.Lock()
		delete(t.jobs, k)
		t.mu.Unlock()
	}
	for k, r := range newest {
		j := jobs[k]
		if j != nil && j.req.ID == r.ID {
			continue
		}
		if j != nil {
			j.stop()
		}
		id, _ := r.Archive()
		nj := &job{t: t, req: r, id: id, key: k, done: make(chan struct{})}
		jctx, cancel := context.WithCancel(ctx)
		nj.cancel = cancel
		t.mu.Lock()
		t.jobs[k] = nj
		t.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			nj.run(jctx)
			close(nj.done)
			select {
			case finished <- nj:
			case <-ctx.Done():
			}
		}()
	}
	t.removeOrphans(newest)
	return nil
}

// removeOrphans removes job directories that belong to no request: work
// a withdrawn request left while thaw was not running.
func (t *Thaw) removeOrphans(newest map[string]PendingRequest) {
	dir := filepath.Join(t.sp.Dir(spool.QueueRestore, archive.ID{}), jobsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range ents {
		k := e.Name()
		if _, ok := newest[k]; ok || t.jobs[k] != nil || !e.IsDir() {
			continue
		}
		t.log.Info("removing leftovers of a withdrawn request", "dir", filepath.Join(dir, k))
		_ = os.RemoveAll(filepath.Join(dir, k))
	}
}

// reject moves an invalid request file to thaw/.rejected (never deleted
// silently).
func (t *Thaw) reject(p string, e error) {
	dir := filepath.Join(filepath.Dir(p), rejectedDir)
	t.log.Error("invalid request set aside", "file", p, "err", e, "to", dir)
	t.errs.Add(daemon.Error{Message: fmt.Sprintf("invalid request %s set aside in %s: %v", p, dir, e)})
	if err := os.MkdirAll(dir, spool.DirMode); err == nil {
		_ = os.Rename(p, filepath.Join(dir, filepath.Base(p)))
	}
}

// store returns the (cached) store of vault.
func (t *Thaw) store(ctx context.Context, vault uuid.UUID) (storage.Store, error) {
	t.mu.Lock()
	s := t.stores[vault]
	t.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := t.o.OpenVault(ctx, vault)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", vault, err)
	}
	t.mu.Lock()
	t.stores[vault] = s
	t.mu.Unlock()
	return s, nil
}

// answerList lists a vault into the listing file and removes the request.
func (t *Thaw) answerList(ctx context.Context, r PendingRequest, once bool) {
	t.mu.Lock()
	next := t.listNext[r.Path]
	t.mu.Unlock()
	if time.Now().Before(next) {
		return
	}
	vault, _ := uuid.Parse(r.Vault)
	l := Listing{Format: ListingFormat, Vault: r.Vault, Prefix: r.Prefix, Request: r.ID, Generated: time.Now().UTC()}
	store, err := t.store(ctx, vault)
	if err == nil {
		l.Archives, err = List(ctx, store, vault, r.Prefix)
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		l.Failure = failureOf(err)
		if l.Failure == nil && !once {
			t.log.Warn("list vault", "vault", r.Vault, "prefix", r.Prefix, "err", err)
			t.errs.Add(daemon.Error{Message: fmt.Sprintf("list vault %s prefix %q: %v (retrying)", r.Vault, r.Prefix, err)})
			t.mu.Lock()
			t.listNext[r.Path] = time.Now().Add(daemon.Jitter(t.o.PollMin))
			t.mu.Unlock()
			return
		}
		if l.Failure == nil {
			l.Failure = &Failure{Code: FailUnavailable, Message: err.Error()}
		}
	}
	dir := filepath.Dir(ListingPath(t.sp, vault, r.Prefix))
	if err := os.MkdirAll(dir, spool.DirMode); err != nil {
		t.log.Error("listing", "err", err)
		return
	}
	if err := writeJSON(dir, ListingPath(t.sp, vault, r.Prefix), l); err != nil {
		t.log.Error("listing", "err", err)
		return
	}
	t.log.Info("listed", "vault", r.Vault, "prefix", r.Prefix, "archives", len(l.Archives))
	_ = os.Remove(r.Path)
	t.mu.Lock()
	delete(t.listNext, r.Path)
	t.lastList = time.Now()
	t.mu.Unlock()
}

// report sends the summary line to Options.Status and updates the daemon
// status file (throttled, and written only when something changed).
func (t *Thaw) report() {
	if t.o.Status != nil {
		t.o.Status(t.Queue().String())
	}
	t.status.Update()
}

// quarantine moves a fragment that failed verification out of the way
// for an administrator to look at; it is never deleted.
func (t *Thaw) quarantine(id archive.ID, name, path string) (string, error) {
	dir := filepath.Join(t.sp.Root(), quarantineDir, "thaw", filepath.FromSlash(id.Dir()))
	if err := os.MkdirAll(dir, spool.DirMode); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, name+"."+time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(path, dst); err != nil {
		return "", err
	}
	return dst, syncDir(dir)
}

// QuarantineDir returns where quarantined fragments of id are kept.
func QuarantineDir(sp *spool.Spool, id archive.ID) string {
	return filepath.Join(sp.Root(), quarantineDir, "thaw", filepath.FromSlash(id.Dir()))
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
