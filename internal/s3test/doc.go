// Package s3test gives integration tests a real local S3 service with
// Glacier behaviour: a versitygw server (installed by
// scripts/s3-server.sh install, pinned to VersitygwVersion) on a free
// loopback port with a throwaway posix data directory, behind the
// in-process Glacier proxy of package glacier, with a fresh bucket and an SDK
// client already pointed at it.
//
//	env := s3test.Start(t)
//	env.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &env.Bucket, …})
//
// When versitygw is not installed the test is skipped, or fails under
// CRYOPHILE_INTEGRATION=1 (set by `make test`), where a missing server is a
// broken install step.
package s3test
