// Package storagetest is the one conformance suite that every vault
// backend (storage/file, storage/s3) passes: the contract of storage.Store
// written as tests.
//
// A backend's test calls Run with a function that returns a fresh, empty
// store, and Options that say how its archived objects become readable
// and which optional features it has:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store {
//			s, err := file.New(t.TempDir(), file.Options{RestoreDelay: 200 * time.Millisecond})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		}, storagetest.Options{RestoreTimeout: 10 * time.Second, IfNoneMatch: true})
//	}
//
// The suite never sleeps for a fixed time: it polls Head until a restore
// has completed or RestoreTimeout has passed, or, given FinishRestores,
// asks the backend to complete restores at once (a fake clock).
package storagetest
