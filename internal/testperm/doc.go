// Package testperm lets a test see the file system as an unprivileged user
// would, even when it runs as root: tests of what happens when a file in
// the spool belongs to someone else (mode 000, say) then run on CI and on
// root-only test machines instead of skipping.
package testperm
