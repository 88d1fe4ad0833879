package testseed_test

import (
	"testing"

	"github.com/cryophile/cryophile/internal/testseed"
)

func TestSeedDiffersPerRun(t *testing.T) {
	t.Setenv(testseed.Env, "")
	var got []uint64
	// go test -count 3 runs a test three times under one name.
	for range 3 {
		got = append(got, testseed.Seed(t, 100))
	}
	if got[0] < 100 || got[1] != got[0]+1 || got[2] != got[0]+2 {
		t.Fatalf("seeds = %v, want three consecutive seeds from 100 on", got)
	}
}

func TestSeedFromEnv(t *testing.T) {
	t.Setenv(testseed.Env, "7")
	// 7 on the first run, 7+N on the N-th re-run of -count.
	if got := testseed.Seed(t, 100); got < 7 || got >= 100 {
		t.Fatalf("Seed = %d, want 7 plus the number of earlier runs", got)
	}
}
