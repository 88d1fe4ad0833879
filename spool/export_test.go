package spool

import "time"

// SetFreeSpace replaces the statfs source of s, for deterministic
// back-pressure tests.
func SetFreeSpace(s *Spool, f func(path string) (int64, error)) { s.freeSpace = f }

// SetPoll sets the period of the rescans that back up fsnotify in waits.
func SetPoll(s *Spool, d time.Duration) { s.poll = d }

// SetCleanupGrace sets how long a staging directory without a lock file is
// left alone.
func SetCleanupGrace(s *Spool, d time.Duration) { s.cleanupGrace = d }
