package spool_test

import (
	"testing"
)

func TestDaemonRunning(t *testing.T) {
	sp := openSpool(t)
	if running, err := sp.DaemonRunning("freeze"); err != nil || running {
		t.Fatalf("DaemonRunning = %t, %v with no daemon, want false", running, err)
	}
	l, err := sp.LockDaemon("freeze")
	if err != nil {
		t.Fatalf("LockDaemon after DaemonRunning: %v (the test lock was not released)", err)
	}
	if running, err := sp.DaemonRunning("freeze"); err != nil || !running {
		t.Errorf("DaemonRunning = %t, %v while the lock is held, want true", running, err)
	}
	if running, err := sp.DaemonRunning("thaw"); err != nil || running {
		t.Errorf("DaemonRunning(thaw) = %t, %v while only freeze's lock is held, want false", running, err)
	}
	l.Close()
	if running, err := sp.DaemonRunning("freeze"); err != nil || running {
		t.Errorf("DaemonRunning = %t, %v after the release, want false", running, err)
	}
}
