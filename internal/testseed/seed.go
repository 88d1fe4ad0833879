// Package testseed gives seeded tests (kill -9 loops, fault schedules) a
// seed that differs on every run of `go test -count N`, so that re-runs
// explore new points instead of repeating the first run's, and that can be
// replayed: the seed is logged, and CRYOPHILE_RELIABILITY_SEED=SEED with
// -count=1 runs it again.
package testseed

import (
	"os"
	"strconv"
	"sync"
	"testing"
)

// Env is the variable that overrides the base seed.
const Env = "CRYOPHILE_RELIABILITY_SEED"

var (
	mu   sync.Mutex
	runs = map[string]uint64{}
)

// Seed returns the seed of this run of t: the base (Env when set, else def)
// plus the number of earlier runs of the same test in this process. It logs
// the seed and how to replay it.
func Seed(t testing.TB, def uint64) uint64 {
	t.Helper()
	base := def
	if s, err := strconv.ParseUint(os.Getenv(Env), 10, 64); err == nil {
		base = s
	}
	mu.Lock()
	n := runs[t.Name()]
	runs[t.Name()] = n + 1
	mu.Unlock()
	seed := base + n
	t.Logf("seed %d (replay: %s=%d go test -count=1 -run '^%s$')", seed, Env, seed, t.Name())
	return seed
}
