// Package archive holds what an archive is, independent of where it is
// stored: backup IDs (vault UUID, prefix, ULID), fragment names, the JSON
// manifest, the streaming Writer (compress → OpenPGP encrypt → split into
// fragments) and Reader (join in order → verify SHA-256 → decrypt →
// decompress), and the loading of OpenPGP certificates and secret keys.
//
// An archive is ONE OpenPGP message cut at arbitrary byte offsets into
// fragments named chunk.000001, chunk.000002, …; there are no per-fragment
// headers, so `cat chunk.* | gpg --decrypt | zstd -d` recovers the stream
// with standard tools only. The manifest lists every fragment with its size
// and the SHA-256 of its bytes; it is written last and its presence means
// the archive is complete.
package archive
