package file

import (
	"fmt"
	"strings"

	"github.com/cryophile/cryophile/storage"
)

// maxKeyLen is S3's limit on key length, in bytes.
const maxKeyLen = 1024

// checkKey refuses keys that are not relative slash paths of plain names,
// so that no key can reach outside the root or into the hidden directory.
// The error names the key and wraps storage.ErrPermanent.
func checkKey(key string) error {
	if why := keyProblem(key); why != "" {
		return fmt.Errorf("%w: invalid key %q: %s", storage.ErrPermanent, key, why)
	}
	return nil
}

func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > maxKeyLen:
		return fmt.Sprintf("longer than %d bytes", maxKeyLen)
	case strings.IndexByte(key, 0) >= 0:
		return "contains NUL"
	case strings.HasPrefix(key, "/"):
		return "absolute"
	}
	for i, c := range strings.Split(key, "/") {
		switch {
		case c == "":
			return "empty path component"
		case c == "." || c == "..":
			return fmt.Sprintf("%q path component", c)
		case i == 0 && c == hiddenDir:
			return fmt.Sprintf("%s/ is reserved for the vault's own state", hiddenDir)
		}
	}
	return ""
}

// checkPrefixDir checks the directory part of a List prefix (everything up
// to its last slash) as checkKey checks a key; "" is the root.
func checkPrefixDir(dir string) error {
	if dir == "" {
		return nil
	}
	if why := keyProblem(dir); why != "" && !strings.Contains(why, "reserved") {
		return fmt.Errorf("%w: invalid prefix %q: %s", storage.ErrPermanent, dir+"/", why)
	}
	return nil
}

// pathSplit splits a slash path at its last slash.
func pathSplit(p string) (dir, name string) {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

// pathDir returns p's directory, "" for a top-level name.
func pathDir(p string) string {
	dir, _ := pathSplit(p)
	return dir
}

// pathJoin joins a directory ("" for the root) and a name.
func pathJoin(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
