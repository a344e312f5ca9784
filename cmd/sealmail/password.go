package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"golang.org/x/term"

	"github.com/sealmail/sealmail/server/account"
)

// maxPasswordBytes bounds a secret read from standard input; the account
// service's rules (account.CheckPassword) apply after.
const maxPasswordBytes = account.MaxPasswordBytes

// checkPassword enforces the account service's password rules before the
// store is opened or the server contacted.
func checkPassword(pw []byte) error {
	return adminErr(account.CheckPassword(pw))
}

// lineReader reads secrets from --password-stdin input, one per line.
type lineReader struct {
	r *bufio.Reader
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 2*maxPasswordBytes)}
}

// next returns the next line without its line ending. A line longer than
// maxPasswordBytes is an error, not silently cut.
func (l *lineReader) next() ([]byte, error) {
	var line []byte
	for {
		chunk, err := l.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxPasswordBytes+2 {
			wipe(line)
			return nil, fmt.Errorf("the password is longer than %d bytes", maxPasswordBytes)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				return nil, errors.New("no password on standard input")
			}
			break
		}
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}

// secretInput reads secrets either from --password-stdin lines or by
// prompting on the terminal without echo.
func (e *env) readSecret(prompt string) ([]byte, error) {
	if e.flags.passwordStdin {
		return e.interruptible(e.lines.next, nil)
	}
	fd, ok := e.terminal()
	if !ok {
		return nil, usagef("standard input is not a terminal; use --password-stdin")
	}
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(e.io.err, prompt)
	// On SIGINT/SIGTERM the terminal gets its echo back before sealmail
	// exits.
	pw, err := e.interruptible(func() ([]byte, error) { return term.ReadPassword(fd) },
		func() { term.Restore(fd, state) })
	fmt.Fprintln(e.io.err)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	return pw, nil
}

// errInterrupted ends a command stopped by SIGINT/SIGTERM at a prompt.
var errInterrupted = errors.New("interrupted")

// interruptible runs a blocking read of standard input and gives up when
// the command's context ends (SIGINT/SIGTERM), after running restore (may
// be nil). The abandoned read ends with the process, which exits next.
func (e *env) interruptible(read func() ([]byte, error), restore func()) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := read()
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-e.ctx.Done():
		if restore != nil {
			restore()
		}
		return nil, errInterrupted
	}
}

// readNewPassword reads a new password: twice at a prompt, once from
// --password-stdin; and checks the rules.
func (e *env) readNewPassword(prompt string) ([]byte, error) {
	pw, err := e.readSecret(prompt)
	if err != nil {
		return nil, err
	}
	if err := checkPassword(pw); err != nil {
		wipe(pw)
		return nil, err
	}
	if e.flags.passwordStdin {
		return pw, nil
	}
	again, err := e.readSecret("Repeat it: ")
	if err != nil {
		wipe(pw)
		return nil, err
	}
	defer wipe(again)
	if !bytes.Equal(pw, again) {
		wipe(pw)
		return nil, errors.New("the passwords do not match")
	}
	return pw, nil
}

// terminal returns the file descriptor of standard input if it is a
// terminal.
func (e *env) terminal() (int, bool) {
	if e.io.inFile == nil {
		return 0, false
	}
	fd := int(e.io.inFile.Fd())
	return fd, term.IsTerminal(fd)
}

// wipe zeroes a secret we own; best effort, as Go may have copied it.
func wipe(b []byte) {
	clear(b)
}
