package cli

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
)

func TestJournalFields(t *testing.T) {
	type sent struct {
		msg  string
		pri  journal.Priority
		vars map[string]string
	}
	var got []sent
	h := newJournalHandler(slog.LevelInfo)
	h.send = func(msg string, p journal.Priority, vars map[string]string) error {
		got = append(got, sent{msg, p, vars})
		return nil
	}
	log := slog.New(h).With("prog", "cryophile-freeze")
	log.Debug("not sent")
	log.Error("upload failed", "archive", "V/p/U", "key", "p/U/chunk.000002", "fragment", "chunk.000002", "_hidden", 1)
	log.WithGroup("s3").Info("retry", "attempt", 3)
	if len(got) != 2 {
		t.Fatalf("sent %d records, want 2 (debug is below the level)", len(got))
	}
	for k, want := range map[string]string{"ARCHIVE": "V/p/U", "KEY": "p/U/chunk.000002", "FRAGMENT": "chunk.000002", "PROG": "cryophile-freeze", "HIDDEN": "1"} {
		if v := got[0].vars[k]; v != want {
			t.Errorf("field %s = %q, want %q", k, v, want)
		}
	}
	if got[0].pri != journal.PriErr {
		t.Errorf("priority = %v, want %v", got[0].pri, journal.PriErr)
	}
	if !strings.Contains(got[0].msg, `fragment="chunk.000002"`) || !strings.HasPrefix(got[0].msg, "upload failed") {
		t.Errorf("message = %q, want the text and its attributes", got[0].msg)
	}
	if v := got[1].vars["S3_ATTEMPT"]; v != "3" {
		t.Errorf("grouped field S3_ATTEMPT = %q, want 3", v)
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{"archive": "ARCHIVE", "backup-id": "BACKUP_ID", "_x": "X", "9a": "A", "message": "", "é": ""} {
		if got := fieldName(in); got != want {
			t.Errorf("fieldName(%q) = %q, want %q", in, got, want)
		}
	}
}
