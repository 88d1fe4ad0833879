package config

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
)

// ErrConfig is wrapped by every error that Load, Find, Validate and
// ApplyEnv return, so that commands can map them all to exit status 64
// with errors.Is.
var ErrConfig = errors.New("configuration error")

// ErrUnknownVault is wrapped by the error Config.Vault returns for a vault
// ID that is not configured.
var ErrUnknownVault = errors.New("unknown vault")

// Error is one configuration problem. Its message reads
// `config FILE:LINE: KEY: what is wrong`, with the parts that are unknown
// left out. It wraps ErrConfig and the underlying error, if any.
type Error struct {
	// File is the configuration file, "" when the configuration did not
	// come from a file (Validate on a Config built in code).
	File string
	// Line is the 1-based line of the offending key in File, 0 if unknown.
	Line int
	// Key is the offending key as a path, e.g. "backup.fragment_size" or
	// "vault[1].storage_class" (array indices are 0-based), "" when the
	// problem is not about one key (a syntax error, an unreadable file).
	Key string
	// Err says what is wrong. Its message already names Key.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.File != "" {
		b.WriteString(" ")
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
	}
	b.WriteString(": ")
	// An unreadable file's *PathError repeats the file name.
	var pe *fs.PathError
	if errors.As(e.Err, &pe) && pe.Path == e.File {
		b.WriteString(pe.Err.Error())
	} else {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is ErrConfig.
func (e *Error) Is(target error) bool { return target == ErrConfig }
