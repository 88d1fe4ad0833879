package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Exit statuses, the contract of DESIGN.md (sysexits.h values).
const (
	ExitOK          = 0
	ExitUsage       = 64 // usage or configuration error
	ExitData        = 65 // authentication, integrity, corrupt or missing fragment
	ExitUnavailable = 69 // vault unavailable
	ExitIO          = 74 // I/O error
	ExitTemp        = 75 // temporary failure, including interruption by a signal
)

// Error is an error with an exit status and an optional hint for the user.
type Error struct {
	Code int
	Hint string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// WithCode attaches an exit status to err (nil stays nil).
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// WithHint attaches an exit status and a hint to err (nil stays nil).
func WithHint(code int, hint string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Hint: hint, Err: err}
}

// Usagef returns a usage error (exit status 64).
func Usagef(format string, a ...any) error {
	return &Error{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// Classifier maps an error to an exit status; it returns 0 when it does not
// know the error. Commands register the sentinels of the packages they use.
type Classifier func(error) int

// Code returns err's exit status: the one attached with WithCode, else the
// first classifier's answer, else ExitIO for file-system and system-call
// errors, ExitTemp for cancellation, and ExitIO as a last resort (an error we
// did not foresee is treated as an I/O failure: non-zero, never success).
func Code(err error, classify ...Classifier) int {
	if err == nil {
		return ExitOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	for _, c := range classify {
		if code := c(err); code != 0 {
			return code
		}
	}
	var pe *fs.PathError
	var errno syscall.Errno
	switch {
	case errors.Is(err, context.Canceled):
		return ExitTemp
	case errors.As(err, &pe), errors.As(err, &errno):
		return ExitIO
	}
	return ExitIO
}

// Report prints err (and its hint, if any) on stderr the cryophile way and
// returns its exit status.
func Report(prog string, err error, classify ...Classifier) int {
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(os.Stderr, "%s: error: %v\n", prog, err)
	var e *Error
	if errors.As(err, &e) && e.Hint != "" {
		fmt.Fprintf(os.Stderr, "%s: hint: %s\n", prog, e.Hint)
	}
	return Code(err, classify...)
}
