package testperm

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// WithoutDACOverride runs fn on a thread of its own that lacks the
// capabilities that let root ignore file modes (CAP_DAC_OVERRIDE,
// CAP_DAC_READ_SEARCH), and waits for it. File-system calls fn makes in
// its own goroutine are then checked against the mode bits, as for any
// user: a directory of mode 000 cannot be listed, a file of mode 000
// cannot be opened. Goroutines fn starts run with the process's
// privileges. For a process without these capabilities it simply runs fn.
//
// Capabilities are per thread on Linux: the thread is locked and never
// unlocked, so it ends with fn and no other goroutine ever runs on it.
func WithoutDACOverride(fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread exits with this goroutine.
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		for _, c := range []uint{unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH} {
			data[c/32].Effective &^= 1 << (c % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		defer func() { errc <- nil }()
		fn()
	}()
	return <-errc
}
