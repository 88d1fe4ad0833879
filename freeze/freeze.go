package freeze

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/internal/daemon"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage"
)

// Errors callers branch on (cryophile-freeze maps them to exit statuses).
var (
	// ErrConflict: the vault holds an object under the key of a fragment or
	// manifest with other bytes. The archive is stopped; nothing is
	// overwritten or deleted.
	ErrConflict = errors.New("a different object is already in the vault")
	// ErrBroken: an archive in the spool cannot be completed (unreadable
	// manifest, a listed fragment neither in the spool nor in the vault, a
	// fragment that does not match its manifest entry). It is moved to
	// freeze/.quarantine.
	ErrBroken = errors.New("broken archive")
	// ErrUnavailable: Once gave up on a fragment or manifest after
	// repeated transient vault errors.
	ErrUnavailable = errors.New("vault unavailable")
	// ErrUnknownVault: an archive in freeze/ belongs to a vault that is not
	// configured.
	ErrUnknownVault = errors.New("vault not configured")
)

// DaemonName is the name of the per-spool daemon lock (spool.LockDaemon).
const DaemonName = "freeze"

// QuarantineDir is the directory below freeze/ where broken archives are
// moved.
const QuarantineDir = ".quarantine"

// ReceiptsDir is the directory inside an archive's freeze/ directory that
// holds its receipts.
const ReceiptsDir = ".receipts"

// Vault is a vault freeze uploads to.
type Vault struct {
	// ID is the vault's UUID in canonical (lower-case) form.
	ID string
	// Class is the storage class of fragments; "" means GLACIER.
	Class string
	// ManifestClass is the storage class of manifests; "" means STANDARD.
	ManifestClass string
	// Store is the vault. If nil, Open is called when the vault is first
	// needed, and again after a failure.
	Store storage.Store
	// Open opens the vault when Store is nil.
	Open func(ctx context.Context) (storage.Store, error)
}

// IncompleteUploadAborter is implemented by stores that can leave
// interrupted multipart uploads behind after a crash (storage/s3). Freeze
// calls it once per vault, with prefix "", before its first upload there.
type IncompleteUploadAborter interface {
	// AbortIncompleteUploads aborts the incomplete uploads below prefix
	// started more than olderThan ago and returns how many it aborted.
	AbortIncompleteUploads(ctx context.Context, prefix string, olderThan time.Duration) (int, error)
}

// Options configure a Freezer.
type Options struct {
	// Spool is the spool whose freeze/ queue is drained. Required.
	Spool *spool.Spool
	// Vaults are the configured vaults.
	Vaults []Vault
	// Concurrency is the number of uploads at once; default 4.
	Concurrency int
	// Rescan is the period of the full rescans that back up file-system
	// events; default 5 minutes. A vault stopped by a permanent error is
	// tried again at the next rescan after it stopped.
	Rescan time.Duration
	// RetryMin and RetryMax bound the backoff between attempts after a
	// transient error: it doubles from RetryMin up to RetryMax, with
	// jitter. Defaults 1 s and 1 min.
	RetryMin, RetryMax time.Duration
	// Attempts is how many times Once tries a step before it counts the
	// fragment as failed; default 5. Run retries for ever.
	Attempts int
	// AbortOlderThan is the age from which an incomplete upload in a vault
	// is a crashed freeze's and is aborted at start-up (see
	// IncompleteUploadAborter). 0 aborts every one: right when one freeze
	// serves each vault (key prefix), as the daemon lock ensures per spool.
	// A negative age also covers the clock skew between host and service.
	AbortOlderThan time.Duration
	// Logger receives the logs; default slog.Default().
	Logger *slog.Logger
	// OnReady is called once Run holds the lock, watches freeze/ and has
	// scanned it (for sd_notify READY=1).
	OnReady func()
	// OnStatus is called from Run's and Once's loop when the queue depth
	// changes (for sd_notify STATUS=).
	OnStatus func(Status)
	// Heartbeat is the period at which Run's main loop calls OnHeartbeat;
	// 0 means never.
	Heartbeat time.Duration
	// OnHeartbeat is called from Run's main loop every Heartbeat (for
	// sd_notify WATCHDOG=1): a stuck loop stops the pings.
	OnHeartbeat func()
	// Version is the version written into the status file.
	Version string
	// MetricsFile, if set, is a node_exporter textfile that Run and Once
	// keep up to date along with the status file (see StatusPath).
	MetricsFile string
	// StatusInterval is the least time between two writes of the status
	// file; default 1 s.
	StatusInterval time.Duration
}

// Status is the queue depth: for humans (String), and the "queue" of the
// status file.
type Status struct {
	// Pending fragments and manifests wait for an upload slot.
	Pending int `json:"pending"`
	// Uploading is the number of uploads in flight.
	Uploading int `json:"uploading"`
	// Waiting is the number of archives whose manifest is not published
	// yet (backups in progress).
	Waiting int `json:"archives_waiting"`
	// Uploaded and Completed count fragments and archives finished since
	// the start; UploadedBytes is the size of those fragments.
	Uploaded      int   `json:"uploaded"`
	UploadedBytes int64 `json:"uploaded_bytes"`
	Completed     int   `json:"completed"`
	// Stopped lists the vaults stopped by a permanent error.
	Stopped []string `json:"stopped_vaults,omitempty"`
	// Failed counts archives stopped by a conflict or quarantined.
	Failed int `json:"failed"`
}

// String formats the status for sd_notify STATUS=.
func (s Status) String() string {
	str := fmt.Sprintf("%d uploading, %d pending, %d archives waiting for a manifest; %d fragments and %d archives done",
		s.Uploading, s.Pending, s.Waiting, s.Uploaded, s.Completed)
	if s.Failed > 0 {
		str += fmt.Sprintf("; %d archives failed", s.Failed)
	}
	if len(s.Stopped) > 0 {
		str += "; vault stopped: " + strings.Join(s.Stopped, ", ")
	}
	return str
}

// Freezer uploads the spool's freeze/ queue. Use Run (daemon) or Once, not
// both, and each only once.
type Freezer struct {
	o       Options
	log     *slog.Logger
	sp      *spool.Spool
	root    string // ROOT/freeze
	staging string // ROOT/freeze/.staging
	sem     *semaphore.Weighted
	once    bool

	wake     chan struct{} // a job finished or a file arrived
	statusCh chan struct{} // the status changed
	jobs     sync.WaitGroup

	mu         sync.Mutex
	archives   map[string]*archiveState
	vaults     map[string]*vaultState
	dirty      map[archive.ID]bool
	unknown    map[string]bool // unknown vaults already reported
	failures   []error         // for Once
	failed     map[string]bool // archives stopped by a conflict or quarantined
	uploaded   int
	upBytes    int64
	completed  int
	lastStatus string

	errs   daemon.ErrorLog
	status *daemon.StatusFile // set by start
}

// archiveState is what the Freezer knows of one archive directory.
type archiveState struct {
	id       archive.ID
	dir      string
	inflight map[string]bool // fragment names (and the manifest) queued or uploading
	running  int             // of inflight, how many hold an upload slot
	failed   map[string]bool // Once: fragments given up on
	manifest bool            // manifest.json present at the last look
	stopped  error           // conflict: no more work on this archive
	stalled  bool            // reported as abandoned with fragments
	sums     map[string]fileSum
}

// fileSum caches a fragment's digest across attempts.
type fileSum struct {
	size  int64
	mtime time.Time
	sum   []byte
}

// vaultState is one vault's store and health.
type vaultState struct {
	v Vault

	mu      sync.Mutex // serialises opening
	store   storage.Store
	aborted bool // incomplete uploads were aborted

	// guarded by Freezer.mu
	stopped error
	retryAt time.Time
}

// New checks o and returns a Freezer.
func New(o Options) (*Freezer, error) {
	if o.Spool == nil {
		return nil, errors.New("freeze: no spool")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Rescan <= 0 {
		o.Rescan = 5 * time.Minute
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(time.Minute, o.RetryMin)
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f := &Freezer{
		o:        o,
		log:      o.Logger,
		sp:       o.Spool,
		root:     o.Spool.Dir(spool.QueueFreeze, archive.ID{}),
		sem:      semaphore.NewWeighted(int64(o.Concurrency)),
		wake:     make(chan struct{}, 1),
		statusCh: make(chan struct{}, 1),
		archives: map[string]*archiveState{},
		vaults:   map[string]*vaultState{},
		dirty:    map[archive.ID]bool{},
		unknown:  map[string]bool{},
		failed:   map[string]bool{},
	}
	for _, v := range o.Vaults {
		if _, err := archive.ParseVault(v.ID); err != nil {
			return nil, fmt.Errorf("freeze: %w", err)
		}
		if v.Class == "" {
			v.Class = storage.ClassGlacier
		}
		if v.ManifestClass == "" {
			v.ManifestClass = storage.ClassStandard
		}
		if v.Store == nil && v.Open == nil {
			return nil, fmt.Errorf("freeze: vault %s has neither Store nor Open", v.ID)
		}
		f.vaults[strings.ToLower(v.ID)] = &vaultState{v: v, store: v.Store}
	}
	return f, nil
}

// start takes the daemon lock and prepares the spool.
func (f *Freezer) start() (*spool.FileLock, error) {
	lock, err := f.sp.LockDaemon(DaemonName)
	if err != nil {
		if errors.Is(err, spool.ErrLocked) {
			return nil, fmt.Errorf("freeze: another cryophile-freeze is running on spool %s: %w", f.sp.Root(), err)
		}
		return nil, fmt.Errorf("freeze: %w", err)
	}
	f.staging, err = f.sp.StagingDir(spool.QueueFreeze)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("freeze: %w", err)
	}
	f.status = f.statusFile()
	f.cleanup()
	f.cleanStaging()
	return lock, nil
}

// cleanup removes what crashed backups left behind.
func (f *Freezer) cleanup() {
	removed, err := f.sp.CleanupDeadWriters()
	for _, id := range removed {
		f.log.Info("removed dead backup", "backup", id.String())
	}
	if err != nil {
		f.log.Warn("cleanup of dead backups", "err", err)
	}
}

// cleanStaging empties freeze/.staging. Only freeze stages there
// (receipts), and it holds the daemon lock: at start-up, whatever is there
// is a crashed freeze's.
func (f *Freezer) cleanStaging() {
	ents, err := os.ReadDir(f.staging)
	if err != nil {
		f.log.Warn("cleanup of staging files", "err", err)
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".tmp") && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(f.staging, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				f.log.Warn("cleanup of staging files", "err", err)
			}
		}
	}
}

// Run is the daemon: it takes the lock, cleans up, watches freeze/ and
// uploads everything published there until ctx is done, then abandons the
// uploads in flight (see the package doc) and returns nil. It returns an
// error only if it cannot start or cannot watch the spool.
func (f *Freezer) Run(ctx context.Context) error {
	lock, err := f.start()
	if err != nil {
		return err
	}
	defer lock.Close()
	defer f.status.Close()

	watchCtx, stopWatch := context.WithCancel(ctx)
	watchErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := spool.Watch(watchCtx, f.root, f.o.Rescan, f.onFile)
		if watchCtx.Err() == nil {
			watchErr <- err
		}
	}()
	defer func() {
		stopWatch()
		wg.Wait()
		f.jobs.Wait()
		// The uploads just abandoned were aborted by the storage layer,
		// except one whose creation was cut short before its ID came
		// back: sweep, briefly, now that nothing is in flight.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownSweep)
		f.sweep(sctx, true)
		cancel()
	}()

	// The watch runs; this scan is the truth (hand-off rule 4).
	if err := f.scan(); err != nil {
		return err
	}
	f.dispatch(ctx)
	if f.o.OnReady != nil {
		f.o.OnReady()
	}
	f.status.SetReady()
	f.reportStatus()
	rescan := time.NewTicker(f.o.Rescan)
	defer rescan.Stop()
	var heartbeat <-chan time.Time
	if f.o.Heartbeat > 0 && f.o.OnHeartbeat != nil {
		t := time.NewTicker(f.o.Heartbeat)
		defer t.Stop()
		heartbeat = t.C
		f.o.OnHeartbeat()
	}
	for {
		select {
		case <-ctx.Done():
			f.log.Info("stopping", "uploads_abandoned", f.Status().Uploading)
			return nil
		case err := <-watchErr:
			return fmt.Errorf("freeze: %w", err)
		case <-f.wake:
			f.dispatch(ctx)
		case <-f.statusCh:
			f.reportStatus()
		case <-heartbeat:
			f.o.OnHeartbeat()
		case <-rescan.C:
			f.cleanup()
			f.resumeVaults()
			f.sweep(ctx, false)
			if err := f.scan(); err != nil {
				f.log.Error("rescan", "err", err)
				f.recordError(archive.ID{}, "", err)
			}
			f.dispatch(ctx)
		}
	}
}

// Once uploads everything present in freeze/ (complete archives, and the
// published fragments of archives still being written) and returns nil if
// all of it went well, else an error joining one error per failure
// (wrapping ErrConflict, ErrBroken, ErrUnavailable, ErrUnknownVault,
// storage.ErrPermanent or the I/O error).
func (f *Freezer) Once(ctx context.Context) error {
	f.once = true
	lock, err := f.start()
	if err != nil {
		return err
	}
	defer lock.Close()
	defer f.status.Close()
	defer f.jobs.Wait()
	if err := f.scan(); err != nil {
		return err
	}
	f.status.SetReady()
	for {
		started := f.dispatch(ctx)
		f.reportStatus()
		if started == 0 && f.idle() {
			break
		}
		select {
		case <-ctx.Done():
			f.jobs.Wait()
			return fmt.Errorf("freeze: interrupted: %w", ctx.Err())
		case <-f.wake:
		case <-f.statusCh:
		}
	}
	f.sweep(ctx, true)
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.failures...)
}

// shutdownSweep bounds the sweep of incomplete uploads when Run stops.
const shutdownSweep = 3 * time.Second

// sweep aborts the incomplete uploads of every opened vault that has no
// upload in flight (with one freeze per vault, they are all leftovers: a
// request cut short by a crash or a cancellation can still create an upload
// on the service after the start-up abort). It runs on the main loop; with
// wait false the aborts run in the background, the vault's lock keeping
// uploads back until they are done.
func (f *Freezer) sweep(ctx context.Context, wait bool) {
	f.mu.Lock()
	busy := map[string]bool{}
	for _, a := range f.archives {
		if len(a.inflight) > 0 {
			busy[a.id.Vault.String()] = true
		}
	}
	f.mu.Unlock()
	var wg sync.WaitGroup
	for id, vs := range f.vaults {
		if busy[id] || !vs.mu.TryLock() {
			continue
		}
		// Locked before any upload can start: store() waits for us.
		ab, ok := vs.store.(IncompleteUploadAborter)
		if !ok || !vs.aborted {
			vs.mu.Unlock()
			continue
		}
		wg.Add(1)
		f.jobs.Add(1)
		go func() {
			defer f.jobs.Done()
			defer wg.Done()
			defer vs.mu.Unlock()
			n, err := ab.AbortIncompleteUploads(ctx, "", f.o.AbortOlderThan)
			switch {
			case err != nil && ctx.Err() == nil:
				f.log.Warn("abort incomplete uploads", "vault", id, "err", err)
			case n > 0:
				f.log.Info("aborted incomplete uploads", "vault", id, "count", n)
			}
		}()
	}
	if wait {
		wg.Wait()
	}
}

// Status returns the current queue depth.
func (f *Freezer) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusLocked()
}

func (f *Freezer) statusLocked() Status {
	s := Status{Uploaded: f.uploaded, UploadedBytes: f.upBytes, Completed: f.completed, Failed: len(f.failed)}
	for _, a := range f.archives {
		s.Uploading += a.running
		s.Pending += len(a.inflight) - a.running
		if !a.manifest && a.stopped == nil {
			s.Waiting++
		}
	}
	for id, v := range f.vaults {
		if v.stopped != nil {
			s.Stopped = append(s.Stopped, id)
		}
	}
	slices.Sort(s.Stopped)
	return s
}

// reportStatus calls OnStatus if the status changed since the last call,
// and updates the status file (which has its own throttle and change
// detection: an error is a change).
func (f *Freezer) reportStatus() {
	s := f.Status()
	str := s.String()
	f.mu.Lock()
	changed := str != f.lastStatus
	f.lastStatus = str
	f.mu.Unlock()
	if changed && f.o.OnStatus != nil {
		f.o.OnStatus(s)
	}
	f.status.Update()
}

func (f *Freezer) statusChanged() {
	select {
	case f.statusCh <- struct{}{}:
	default:
	}
}

// idle reports whether no job is queued or running.
func (f *Freezer) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.archives {
		if len(a.inflight) > 0 {
			return false
		}
	}
	return len(f.dirty) == 0
}

// kick marks archive id for a look by the main loop.
func (f *Freezer) kick(id archive.ID) {
	f.mu.Lock()
	f.dirty[id] = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// onFile is spool.Watch's callback: a file appeared below freeze/.
func (f *Freezer) onFile(path string) {
	rel, err := filepath.Rel(f.root, path)
	if err != nil {
		return
	}
	c := strings.Split(filepath.ToSlash(rel), "/")
	if len(c) < 3 {
		return
	}
	vault, err := archive.ParseVault(c[0])
	if err != nil {
		return
	}
	u, err := archive.ParseULID(c[len(c)-2])
	if err != nil {
		return
	}
	prefix := strings.Join(c[1:len(c)-2], "/")
	if archive.ValidatePrefix(prefix) != nil {
		return
	}
	f.kick(archive.ID{Vault: vault, Prefix: prefix, ULID: u})
}

// scan lists freeze/ and marks every archive in it for a look.
func (f *Freezer) scan() error {
	dirs, err := f.sp.Archives(spool.QueueFreeze)
	if err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	var unlisted []error
	f.mu.Lock()
	for _, d := range dirs {
		if d.Unlisted() {
			unlisted = append(unlisted, fmt.Errorf("freeze: archives below %s: %w", d.Path, d.Err))
			continue
		}
		f.dirty[d.ID] = true
	}
	f.mu.Unlock()
	// A vault or prefix directory we may not read (another user's): what
	// is below it waits; Once reports it, Run looks again at every rescan.
	for _, err := range unlisted {
		f.log.Error("list archives", "err", err)
		f.recordError(archive.ID{}, "", err)
		if f.once {
			f.fail(err)
		}
	}
	return nil
}

// resumeVaults lets vaults stopped by a permanent error, and fragments
// that failed, try again.
func (f *Freezer) resumeVaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.archives {
		clear(a.failed)
	}
	for id, v := range f.vaults {
		if v.stopped != nil && !time.Now().Before(v.retryAt) {
			f.log.Info("retrying stopped vault", "vault", id)
			v.stopped = nil
		}
	}
}

// dispatch looks at every archive marked dirty and starts the uploads
// they need. It runs on the main loop only and returns the number of
// uploads started.
func (f *Freezer) dispatch(ctx context.Context) int {
	f.mu.Lock()
	ids := make([]archive.ID, 0, len(f.dirty))
	for id := range f.dirty {
		ids = append(ids, id)
	}
	clear(f.dirty)
	f.mu.Unlock()
	// Oldest archives first: ULIDs sort by time.
	slices.SortFunc(ids, func(a, b archive.ID) int { return strings.Compare(a.ULID.String(), b.ULID.String()) })
	started := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		started += f.examine(ctx, id)
	}
	if started > 0 {
		f.statusChanged()
	}
	return started
}

// listing is what an archive directory holds.
type listing struct {
	fragments []string
	manifest  bool
	other     []string
}

func listArchive(dir string) (listing, error) {
	var l listing
	ents, err := os.ReadDir(dir)
	if err != nil {
		return l, err
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		regular := e.Type().IsRegular()
		if _, err := archive.ParseFragmentName(name); err == nil && regular {
			l.fragments = append(l.fragments, name)
		} else if name == archive.ManifestName && regular {
			l.manifest = true
		} else {
			l.other = append(l.other, name)
		}
	}
	slices.SortFunc(l.fragments, func(x, y string) int {
		nx, _ := archive.ParseFragmentName(x)
		ny, _ := archive.ParseFragmentName(y)
		return nx - ny
	})
	return l, nil
}

// examine looks at one archive directory and starts what it needs.
func (f *Freezer) examine(ctx context.Context, id archive.ID) int {
	key := id.String()
	vid := id.Vault.String()
	f.mu.Lock()
	vs := f.vaults[vid]
	if vs == nil {
		first := !f.unknown[key]
		f.unknown[key] = true
		f.mu.Unlock()
		if first {
			err := fmt.Errorf("freeze: archive %s: %w: vault %s is not in the configuration; add it or move %s away",
				key, ErrUnknownVault, vid, f.sp.Dir(spool.QueueFreeze, id))
			f.log.Error("unknown vault", "vault", vid, "archive", key, "dir", f.sp.Dir(spool.QueueFreeze, id))
			f.recordError(id, "", err)
			f.fail(err)
		}
		return 0
	}
	a := f.archives[key]
	if a == nil {
		a = &archiveState{id: id, dir: f.sp.Dir(spool.QueueFreeze, id), inflight: map[string]bool{},
			failed: map[string]bool{}, sums: map[string]fileSum{}}
		f.archives[key] = a
	}
	stopped := a.stopped != nil || vs.stopped != nil
	f.mu.Unlock()
	if stopped {
		return 0
	}

	l, err := listArchive(a.dir)
	if err != nil {
		f.mu.Lock()
		if len(a.inflight) == 0 {
			delete(f.archives, key)
		}
		f.mu.Unlock()
		if !errors.Is(err, fs.ErrNotExist) {
			// An archive directory we may not read (another user's):
			// nothing in it is touched; Once reports it, Run tries again
			// at every rescan.
			err = fmt.Errorf("freeze: archive %s: %w", key, err)
			f.log.Error("list archive", "archive", key, "dir", a.dir, "err", err)
			f.recordError(id, "", err)
			if f.once {
				f.fail(err)
			}
		}
		f.statusChanged()
		return 0
	}
	if !l.manifest && !f.sp.LiveWriter(id) {
		// Check the manifest again: a writer publishes it before it lets
		// go of its lock.
		if _, err := os.Lstat(filepath.Join(a.dir, archive.ManifestName)); errors.Is(err, fs.ErrNotExist) {
			return f.abandoned(a, l)
		}
		l.manifest = true
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if a.manifest != l.manifest {
		a.manifest = l.manifest
		f.statusChanged()
	}
	started := 0
	for _, name := range l.fragments {
		if a.inflight[name] || a.failed[name] {
			continue
		}
		f.startLocked(ctx, a, vs, name)
		started++
	}
	if l.manifest && len(l.fragments) == 0 && len(a.inflight) == 0 && len(a.failed) == 0 {
		f.startLocked(ctx, a, vs, archive.ManifestName)
		started++
	}
	return started
}

// abandoned handles an archive with no manifest and no live writer: it
// will never complete.
func (f *Freezer) abandoned(a *archiveState, l listing) int {
	key := a.id.String()
	f.mu.Lock()
	busy := len(a.inflight) > 0
	reported := a.stalled
	a.stalled = true
	f.mu.Unlock()
	if busy {
		return 0
	}
	if len(l.fragments) > 0 || len(l.other) > 0 {
		if !reported {
			f.log.Warn("archive has no manifest and no live writer: not uploading it", "archive", key, "dir", a.dir,
				"fragments", len(l.fragments))
		}
		return 0
	}
	// Only receipts (or nothing) left: every fragment it had is in the
	// vault, and the backup that published them gave up.
	if err := f.sp.RemoveArchive(spool.QueueFreeze, a.id); err != nil {
		f.log.Error("remove abandoned archive", "archive", key, "err", err)
		return 0
	}
	f.log.Warn("removed abandoned archive directory", "archive", key)
	f.mu.Lock()
	delete(f.archives, key)
	f.mu.Unlock()
	f.statusChanged()
	return 0
}

// startLocked queues the upload of name (a fragment or the manifest) of
// archive a. The caller holds f.mu.
func (f *Freezer) startLocked(ctx context.Context, a *archiveState, vs *vaultState, name string) {
	a.inflight[name] = true
	f.jobs.Add(1)
	go func() {
		defer f.jobs.Done()
		if err := f.sem.Acquire(ctx, 1); err != nil {
			f.finish(a, vs, name, context.Canceled)
			return
		}
		f.mu.Lock()
		stopped := vs.stopped
		a.running++
		f.mu.Unlock()
		f.statusChanged()
		err := stopped
		if err == nil {
			err = f.retry(ctx, a, vs, name)
		}
		f.mu.Lock()
		a.running--
		f.mu.Unlock()
		f.sem.Release(1)
		if err != nil && ctx.Err() != nil {
			// Abandoned: no receipt was written for what did not finish.
			err = context.Canceled
		}
		f.finish(a, vs, name, err)
	}()
}

// errGone: the archive directory or the fragment vanished under a job
// (taken back by its backup, or removed by cleanup).
var errGone = errors.New("gone from the spool")

// vaultError marks an error returned by the vault, as opposed to a local
// one.
type vaultError struct{ err error }

func (e *vaultError) Error() string { return e.err.Error() }
func (e *vaultError) Unwrap() error { return e.err }

// retry runs one upload with retries of transient errors.
func (f *Freezer) retry(ctx context.Context, a *archiveState, vs *vaultState, name string) error {
	backoff := f.o.RetryMin
	for attempt := 1; ; attempt++ {
		var err error
		if name == archive.ManifestName {
			err = f.uploadManifest(ctx, a, vs)
		} else {
			err = f.uploadFragment(ctx, a, vs, name)
		}
		if err == nil || ctx.Err() != nil || !transient(err) {
			return err
		}
		f.mu.Lock()
		stopped := vs.stopped
		f.mu.Unlock()
		if stopped != nil {
			return stopped // another upload found the vault unusable
		}
		if f.once && attempt >= f.o.Attempts {
			var ve *vaultError
			if errors.As(err, &ve) {
				return fmt.Errorf("%w: gave up after %d attempts: %w", ErrUnavailable, attempt, err)
			}
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		d := backoff/2 + rand.N(backoff/2+1)
		f.log.Warn("upload failed, retrying", "key", objectKey(a.id, name), "vault", vs.v.ID, "attempt", attempt, "in", d.Round(time.Millisecond), "err", err)
		f.recordError(a.id, name, fmt.Errorf("attempt %d, retrying: %w", attempt, err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		backoff = min(2*backoff, f.o.RetryMax)
	}
}

// transient reports whether err may go away by itself. A spool file freeze
// may not read (another user's) will not: retrying it at once only delays
// Once's exit; Run tries it again at the next rescan, after an
// administrator may have given it back.
func transient(err error) bool {
	var ve *vaultError
	switch {
	case errors.Is(err, storage.ErrPermanent), errors.Is(err, ErrConflict), errors.Is(err, ErrBroken),
		errors.Is(err, errGone), errors.Is(err, errNotReady):
		return false
	case errors.Is(err, fs.ErrPermission) && !errors.As(err, &ve):
		return false
	}
	return true
}

// finish records the outcome of a job and marks its archive for another
// look.
func (f *Freezer) finish(a *archiveState, vs *vaultState, name string, err error) {
	key := a.id.String()
	f.mu.Lock()
	delete(a.inflight, name)
	// Marked dirty in the same critical section: Once must never see the
	// job gone without the archive's next look pending.
	f.dirty[a.id] = true
	quarantine := false
	switch {
	case err == nil:
		if name == archive.ManifestName {
			f.completed++
			delete(f.archives, key)
		} else {
			f.uploaded++
			delete(a.sums, name)
		}
	case err == context.Canceled, errors.Is(err, errNotReady):
	case errors.Is(err, errGone):
		f.log.Info("left the spool while being uploaded", "archive", key, "name", name)
	case errors.Is(err, storage.ErrPermanent):
		if vs.stopped == nil {
			vs.stopped = err
			vs.retryAt = time.Now().Add(f.o.Rescan)
			f.log.Error("vault stopped", "vault", vs.v.ID, "err", err, "retry_at", vs.retryAt.Format(time.RFC3339))
			f.recordError(a.id, name, fmt.Errorf("vault %s stopped until %s: %w", vs.v.ID, vs.retryAt.Format(time.RFC3339), err))
			f.failures = append(f.failures, fmt.Errorf("freeze: vault %s: %w", vs.v.ID, err))
		} else if vs.stopped != err {
			f.log.Debug("upload skipped, vault stopped", "vault", vs.v.ID, "archive", key, "name", name, "err", err)
		}
	case errors.Is(err, ErrBroken):
		a.stopped = err
		f.failed[key] = true
		quarantine = true
		f.recordError(a.id, name, err)
		f.failures = append(f.failures, err)
	case errors.Is(err, ErrConflict):
		a.stopped = err
		f.failed[key] = true
		f.log.Error("archive stopped", "archive", key, "key", objectKey(a.id, name), "err", err)
		f.recordError(a.id, name, err)
		f.failures = append(f.failures, err)
	default:
		a.failed[name] = true
		f.log.Error("upload failed", "key", objectKey(a.id, name), "vault", vs.v.ID, "err", err)
		f.recordError(a.id, name, err)
		f.failures = append(f.failures, fmt.Errorf("freeze: archive %s: %s: %w", key, name, err))
	}
	f.mu.Unlock()
	if quarantine {
		f.quarantine(a, err)
	}
	f.statusChanged()
	f.kick(a.id)
}

// fail records a failure for Once.
func (f *Freezer) fail(err error) {
	f.mu.Lock()
	f.failures = append(f.failures, err)
	f.mu.Unlock()
}

// recordError keeps err for the status file. id may be zero (no archive),
// name is a fragment, the manifest or "".
func (f *Freezer) recordError(id archive.ID, name string, err error) {
	e := daemon.Error{Message: err.Error()}
	if id != (archive.ID{}) {
		e.Archive = id.String()
		if name != "" {
			e.Key = objectKey(id, name)
		}
	}
	if _, ferr := archive.ParseFragmentName(name); ferr == nil {
		e.Fragment = name
	}
	f.errs.Add(e)
	f.statusChanged()
}
