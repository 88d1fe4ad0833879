package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/internal/cli"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/thaw"
)

// followRig is a spool with one archive's request filed and a watcher
// following it.
func followRig(t *testing.T) (*spool.Spool, *watcher, *thaw.PendingRequest) {
	t.Helper()
	sp, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id, err := archive.ParseID("0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00/host/pool/01KAZ3M5Q8Y2X7N4H0B6C9D1EF")
	if err != nil {
		t.Fatal(err)
	}
	w, err := request(&cli.Printer{Prog: "test", W: io.Discard}, sp, id, "Bulk", 3)
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := thaw.RestoreRequests(sp, id)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("RestoreRequests = %v, %v; want the one filed", reqs, err)
	}
	return sp, w, &reqs[0]
}

// requests returns the archive's pending requests.
func requests(t *testing.T, sp *spool.Spool, id archive.ID) []thaw.PendingRequest {
	t.Helper()
	reqs, err := thaw.RestoreRequests(sp, id)
	if err != nil {
		t.Fatal(err)
	}
	return reqs
}

func TestFollowRefilesVanishedRequest(t *testing.T) {
	sp, w, r := followRig(t)
	if err := w.follow(); err != nil {
		t.Fatalf("follow with the request filed: %v", err)
	}
	if got := len(requests(t, sp, w.id)); got != 1 {
		t.Fatalf("%d requests after follow, want the 1 filed", got)
	}
	// Thaw finished the request for an earlier restore that consumed and
	// removed everything: no manifest will come for it.
	os.Remove(r.Path)
	if err := w.follow(); err != nil {
		t.Fatalf("follow after the request vanished: %v", err)
	}
	reqs := requests(t, sp, w.id)
	if len(reqs) != 1 || reqs[0].ID == r.ID || w.request() != reqs[0].ID {
		t.Fatalf("after the request vanished: requests %v, following %s; want one new request, followed", reqs, w.request())
	}
	if reqs[0].Tier != "Bulk" || reqs[0].Days != 3 {
		t.Errorf("new request tier %s, %d days; want the old one's Bulk, 3", reqs[0].Tier, reqs[0].Days)
	}
	// Bounded: thaw that drops every request does not make restore file
	// them for ever.
	for i := 1; i < maxRefile; i++ {
		os.Remove(requests(t, sp, w.id)[0].Path)
		if err := w.follow(); err != nil {
			t.Fatalf("re-file %d: %v", i+1, err)
		}
	}
	os.Remove(requests(t, sp, w.id)[0].Path)
	if err := w.follow(); cli.Code(err) != cli.ExitTemp {
		t.Fatalf("follow after %d re-files: %v (exit %d), want exit %d", maxRefile, err, cli.Code(err), cli.ExitTemp)
	}
}

func TestFollowKeepsFinishedRequest(t *testing.T) {
	sp, w, r := followRig(t)
	// Thaw published the manifest and removed the request: nothing to file.
	dir := sp.Dir(spool.QueueRestore, w.id)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, archive.ManifestName), []byte("{}"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Remove(r.Path)
	if err := w.follow(); err != nil || len(requests(t, sp, w.id)) != 0 {
		t.Fatalf("follow with the manifest there: %v, %d requests; want nil and none filed", err, len(requests(t, sp, w.id)))
	}
	// After the manifest: a complete status for our request is the normal
	// end; without it the request was withdrawn.
	w.haveManifest.Store(true)
	err := w.follow()
	if cli.Code(err) != cli.ExitTemp || !strings.Contains(err.Error(), "withdrawn") || !strings.Contains(err.Error(), r.ID) {
		t.Fatalf("follow after a withdrawal: %v, want exit %d naming request %s", err, cli.ExitTemp, r.ID)
	}
	st, _ := json.Marshal(thaw.Status{Format: thaw.StatusFormat, BackupID: w.id.String(), Request: r.ID, Complete: true, Started: time.Now()})
	if err := os.WriteFile(filepath.Join(dir, spool.StatusName), st, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := w.follow(); err != nil {
		t.Fatalf("follow after thaw completed the request: %v", err)
	}
}

func TestFollowSupersededRequest(t *testing.T) {
	sp, w, r := followRig(t)
	// Another restore of the archive filed a newer request; thaw dropped ours.
	nr, err := thaw.NewRestoreRequest(w.id, "Standard", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := thaw.File(sp, nr); err != nil {
		t.Fatal(err)
	}
	os.Remove(r.Path)
	if err := w.follow(); err != nil {
		t.Fatal(err)
	}
	if got := requests(t, sp, w.id); len(got) != 1 || w.request() != nr.ID {
		t.Fatalf("requests %v, following %s; want the newer %s followed and nothing filed", got, w.request(), nr.ID)
	}
}
