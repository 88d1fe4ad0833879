package thaw_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cryophile/cryophile/archive"
	"github.com/cryophile/cryophile/spool"
	"github.com/cryophile/cryophile/storage/file"
	"github.com/cryophile/cryophile/thaw"
)

func TestRequestRoundTrip(t *testing.T) {
	id, err := archive.NewID(vaultID, "host/pool", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := thaw.NewRestoreRequest(id, "EXPEDITED", 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Tier != "Expedited" || r.RequestedBy == "" || r.RequestedAt.IsZero() {
		t.Errorf("request %+v: want tier Expedited, requested_by and requested_at set", r)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := thaw.ParseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *r {
		t.Errorf("ParseRequest(Marshal(r)) = %+v, want %+v", got, r)
	}
	if !strings.HasPrefix(r.Name(), "restore-"+thaw.Key(id.String())+"-") || len(r.Name()) > 100 {
		t.Errorf("Name() = %q", r.Name())
	}
}

func TestParseRequestRefuses(t *testing.T) {
	good := `{"format":"cryophile-request/1","kind":"restore","id":"01JCZ7Y1Q8W3S4XKQ9V0M5G2HE","backup_id":"0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00/h/01JCZ7Y1Q8W3S4XKQ9V0M5G2HE","tier":"Bulk","days":7,"requested_by":"root","requested_at":"2026-01-01T00:00:00Z"}`
	if _, err := thaw.ParseRequest([]byte(good)); err != nil {
		t.Fatalf("good request refused: %v", err)
	}
	for name, repl := range map[string][2]string{
		"format 2":      {`cryophile-request/1`, `cryophile-request/2`},
		"unknown kind":  {`"kind":"restore"`, `"kind":"delete"`},
		"bad tier":      {`"Bulk"`, `"Glacial"`},
		"zero days":     {`"days":7`, `"days":0`},
		"too many days": {`"days":7`, `"days":366`},
		"bad backup id": {`/h/01JCZ`, `/../01JCZ`},
		"bad id":        {`"id":"01JCZ7Y1Q8W3S4XKQ9V0M5G2HE"`, `"id":"x"`},
	} {
		b := strings.Replace(good, repl[0], repl[1], 1)
		if _, err := thaw.ParseRequest([]byte(b)); !errors.Is(err, thaw.ErrRequest) {
			t.Errorf("%s: ParseRequest = %v, want ErrRequest", name, err)
		}
	}
}

// TestRejectedRequest: an invalid request file is set aside, not deleted.
func TestRejectedRequest(t *testing.T) {
	e := newEnv(t, file.Options{}, nil)
	p := filepath.Join(e.sp.Dir(spool.QueueThaw, archive.ID{}), "restore-junk.json")
	if err := os.WriteFile(p, []byte("{not json"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := e.once(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(p), ".rejected", "restore-junk.json")); err != nil {
		t.Errorf("invalid request not set aside: %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"format":"cryophile-request/1","kind":"restore","id":"01JCZ7Y1Q8W3S4XKQ9V0M5G2HE","backup_id":"0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00/h/01JCZ7Y1Q8W3S4XKQ9V0M5G2HE","tier":"Bulk","days":7,"requested_by":"root","requested_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"format":"cryophile-request/1.3","kind":"list","id":"01JCZ7Y1Q8W3S4XKQ9V0M5G2HE","vault":"0b5d7a7e-6c1e-4a8e-9a55-3f4b2e1d9c00","prefix":"a/b","requested_by":"x","requested_at":"2026-01-01T00:00:00Z","extra":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := thaw.ParseRequest(b)
		if err != nil {
			if !errors.Is(err, thaw.ErrRequest) {
				t.Fatalf("error %v does not wrap ErrRequest", err)
			}
			return
		}
		// A request that parses re-marshals and parses to the same.
		out, err := r.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed request: %v", err)
		}
		r2, err := thaw.ParseRequest(out)
		if err != nil || *r2 != *r {
			t.Fatalf("round trip: %+v, %v; want %+v", r2, err, r)
		}
		if strings.ContainsAny(r.Name(), "/\x00") || strings.HasPrefix(r.Name(), ".") {
			t.Fatalf("Name() = %q is not a plain file name", r.Name())
		}
	})
}
