package daemon

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier talks to systemd through $NOTIFY_SOCKET. Outside systemd (no
// socket) every method does nothing, so daemons call it unconditionally.
type Notifier struct{}

// Ready tells systemd that start-up finished (Type=notify).
func (Notifier) Ready() { _, _ = daemon.SdNotify(false, daemon.SdNotifyReady) }

// Stopping tells systemd that the daemon is shutting down.
func (Notifier) Stopping() { _, _ = daemon.SdNotify(false, daemon.SdNotifyStopping) }

// Status sets the one-line status `systemctl status` shows.
func (Notifier) Status(s string) { _, _ = daemon.SdNotify(false, "STATUS="+s) }

// Watchdog sends WATCHDOG=1 at half the service's WatchdogSec until ctx
// is done, but only while alive returns true: a daemon whose main loop is
// stuck stops feeding the watchdog and systemd restarts it. It returns at
// once when the watchdog is not enabled. Run it on its own goroutine.
func (Notifier) Watchdog(ctx context.Context, alive func() bool) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return
	}
	t := time.NewTicker(d / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive == nil || alive() {
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}
}
