package pop3

import (
	"context"
	"errors"
	"log/slog"
)

// Error is a negative response: what the client reads, apart from the
// cause (which goes to the log). Code is an RFC 2449 §8 response code
// (RFC 3206's SYS/TEMP, SYS/PERM, AUTH; IN-USE; LOGIN-DELAY) or "".
// Close ends the connection after the response.
type Error struct {
	Code  string
	Text  string
	Close bool
}

func (e *Error) Error() string {
	if e.Code != "" {
		return "pop3: [" + e.Code + "] " + e.Text
	}
	return "pop3: " + e.Text
}

// Response codes (RFC 2449 §8, RFC 3206).
const (
	codeSysTemp = "SYS/TEMP"
	codeSysPerm = "SYS/PERM"
	codeAuth    = "AUTH"
)

// Negative responses. Their texts are fixed: nothing a cause says reaches
// the client.
var (
	errUnknownCommand = &Error{Text: "Unknown command"}
	errSyntax         = &Error{Text: "Syntax error"}
	errLineTooLong    = &Error{Text: "Line too long"}
	errBadState       = &Error{Text: "Command not valid in this state"}
	errTooManyBad     = &Error{Text: "Too many bad commands; closing", Close: true}
	errTooManyCmds    = &Error{Text: "Too many commands without logging in; closing", Close: true}
	errLoginTimeout   = &Error{Text: "Login took too long; closing", Close: true}
	errIdle           = &Error{Text: "Autologout; idle for too long", Close: true}
	errShutdown       = &Error{Code: codeSysTemp, Text: "Server shutting down", Close: true}

	errNeedTLS = &Error{Code: codeAuth, Text: "Authentication needs TLS; use STLS first"}
	// errAuthFailed answers wrong credentials and unknown accounts alike.
	errAuthFailed   = &Error{Code: codeAuth, Text: "Authentication failed"}
	errThrottled    = &Error{Code: codeSysTemp, Text: "Too many login attempts; try again later"}
	errUnavailable  = &Error{Code: codeSysTemp, Text: "Service temporarily unavailable; try again later"}
	errNoUser       = &Error{Text: "USER first"}
	errUnknownMech  = &Error{Text: "Unsupported authentication mechanism"}
	errAuthCanceled = &Error{Text: "Authentication cancelled"}
	errBadBase64    = &Error{Text: "Invalid base64 data"}
	errBadPlain     = &Error{Code: codeAuth, Text: "Malformed PLAIN credentials"}
	errAuthzid      = &Error{Code: codeAuth, Text: "Authorization identity must be empty or the user's"}

	errTLSActive   = &Error{Text: "TLS is already active"}
	errNoTLS       = &Error{Text: "STLS is not available"}
	errTLSPipeline = &Error{Text: "Commands after STLS before the handshake; closing", Close: true}

	errNoSuchMessage = &Error{Text: "No such message"}
	errDeleted       = &Error{Text: "Message already deleted"}
	errGone          = &Error{Text: "Message was removed by another session"}
	errCorrupt       = &Error{Code: codeSysPerm, Text: "Message cannot be read: it was changed at rest; the cause has been logged"}
	errInternal      = &Error{Code: codeSysTemp, Text: "Internal error; the cause has been logged"}
	errMailbox       = &Error{Code: codeSysTemp, Text: "Cannot open the mailbox; try again later"}
	errUpdate        = &Error{Code: codeSysTemp, Text: "Some deleted messages were not removed; the cause has been logged", Close: true}
)

// internal logs err with its context and returns the generic response.
func internal(log *slog.Logger, op string, err error, attrs ...any) *Error {
	if errors.Is(err, context.Canceled) {
		return errShutdown
	}
	log.Error(op, append([]any{"err", err}, attrs...)...)
	return errInternal
}
