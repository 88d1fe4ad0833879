package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// Passphrase returns a function that reads a passphrase once, when it is
// first needed: from file descriptor fd when fd >= 0 (the first line, without
// its newline), else from the controlling terminal with no echo. A
// passphrase is never taken from argv or the environment.
func Passphrase(prog, keyFile string, fd int) func() ([]byte, error) {
	return func() ([]byte, error) {
		if fd >= 0 {
			f := os.NewFile(uintptr(fd), fmt.Sprintf("fd %d", fd))
			if f == nil {
				return nil, Usagef("--pass-fd %d: not an open file descriptor", fd)
			}
			defer f.Close()
			line, err := bufio.NewReader(io.LimitReader(f, 64<<10)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, WithCode(ExitIO, fmt.Errorf("read passphrase from --pass-fd %d: %w", fd, err))
			}
			return []byte(strings.TrimRight(line, "\r\n")), nil
		}
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return nil, WithHint(ExitUsage, "give the passphrase on a file descriptor: --pass-fd 3 3<passphrase-file",
				fmt.Errorf("key %s is passphrase-protected and there is no terminal to ask on", keyFile))
		}
		defer tty.Close()
		fmt.Fprintf(tty, "%s: passphrase for %s: ", prog, keyFile)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, WithCode(ExitIO, fmt.Errorf("read passphrase from terminal: %w", err))
		}
		return b, nil
	}
}
