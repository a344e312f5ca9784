package wire

import (
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// cmdError refuses one command with a tagged response; the connection
// lives on. Parsing stops at the first one; the rest of the command is then
// skipped (reader.skipCommand) unless the reader has reached its end.
// Values may be shared: never modify one.
type cmdError struct {
	resp *imap.Error
}

func (e *cmdError) Error() string { return "imap wire: " + e.resp.Error() }

// byeError closes the connection after an untagged BYE: the stream can no
// longer be trusted to hold commands (a refused literal too large to
// discard, a line that never ends, a broken literal on output).
type byeError struct {
	code  imap.ResponseCode
	text  string
	cause error // may be nil
}

func (e *byeError) Error() string {
	if e.cause != nil {
		return "imap wire: BYE " + e.text + ": " + e.cause.Error()
	}
	return "imap wire: BYE " + e.text
}

func (e *byeError) Unwrap() error { return e.cause }

// connError wraps an error of the connection (the client went away, a
// read timed out) met while a command runs: it ends the connection rather
// than becoming the command's response.
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// asConnError wraps err unless it is a protocol-level error (cmdError,
// byeError) or nil.
func asConnError(err error) error {
	var ce *cmdError
	var be *byeError
	if err == nil || errors.As(err, &ce) || errors.As(err, &be) {
		return err
	}
	return &connError{err}
}

// errShortBody means a body reader gave fewer bytes than the literal size
// announced for it. The response can no longer be completed, so the
// connection is closed.
var errShortBody = errors.New("imap wire: body shorter than its announced size")

// errSessionEnded stops the read loop after LOGOUT or a BYE.
var errSessionEnded = errors.New("imap wire: session ended")

func bad(text string) *cmdError {
	return &cmdError{resp: &imap.Error{Type: imap.StatusResponseTypeBad, Text: text}}
}

func badCode(code imap.ResponseCode, text string) *cmdError {
	return &cmdError{resp: &imap.Error{Type: imap.StatusResponseTypeBad, Code: code, Text: text}}
}

func no(code imap.ResponseCode, text string) *cmdError {
	return &cmdError{resp: &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}}
}

// Errors the dispatcher answers with.
var (
	errServerBug = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeServerBug,
		Text: "Internal error; the cause has been logged",
	}
	errUnavailable = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeUnavailable,
		Text: "Service temporarily unavailable",
	}
)

// responseFor maps an error returned by a Session to what the client may
// read. *imap.Error values pass through (with their text made safe for the
// wire); a cancelled context is UNAVAILABLE; anything else is a server bug
// whose cause the caller logs. internal reports that last case.
func responseFor(err error) (resp *imap.Error, internal bool) {
	var ie *imap.Error
	switch {
	case errors.As(err, &ie):
		out := *ie
		switch out.Type {
		case imap.StatusResponseTypeNo, imap.StatusResponseTypeBad, imap.StatusResponseTypeBye:
		default:
			out.Type = imap.StatusResponseTypeNo
		}
		if !validCode(string(out.Code)) {
			out.Code = ""
		}
		out.Text = safeText(out.Text)
		return &out, false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errUnavailable, false
	}
	return errServerBug, true
}

// validCode reports whether code is fit for a response code: an atom,
// optionally followed by a space and arguments (as in
// "BADCHARSET (US-ASCII UTF-8)") without "]", CR, LF or NUL.
func validCode(code string) bool {
	if code == "" {
		return true
	}
	name, args, hasArgs := strings.Cut(code, " ")
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isAtomChar(name[i]) {
			return false
		}
	}
	if hasArgs {
		for i := 0; i < len(args); i++ {
			if c := args[i]; c == ']' || c < 0x20 || c == 0x7f {
				return false
			}
		}
	}
	return true
}

// safeText makes s a valid human-readable text of a status response
// (RFC 3501 "text", which IMAP4rev1 clients read as 7-bit): printable
// ASCII, CR, LF and NUL as spaces, anything else as "?", not empty,
// bounded.
func safeText(s string) string {
	const max = 512
	if len(s) > max {
		s = s[:max]
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '\r' || c == '\n' || c == 0 || c == '\t':
			b[i] = ' '
		case c < 0x20 || c >= 0x7f:
			b[i] = '?'
		}
	}
	s = string(b)
	if strings.TrimSpace(s) == "" {
		return "Done"
	}
	// A text must not begin with "[" unless it is a response code.
	if s[0] == '[' {
		s = "(" + s[1:]
	}
	return s
}
