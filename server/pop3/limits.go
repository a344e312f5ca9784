package pop3

import "time"

// Limits bound what a connection may make the server read, hold and wait
// for. The zero value is safe: every zero field takes its default.
type Limits struct {
	// LineBytes bounds one command line, CRLF included. RFC 2449 §4 keeps
	// commands within 255 octets; an AUTH PLAIN initial response (RFC
	// 5034 §4) with credentials of the account service's 1,024-byte
	// bound is longer. A longer line is answered -ERR once it ends, and
	// the connection is closed if its rest exceeds DiscardBytes. 0 means
	// DefaultLineBytes.
	LineBytes int
	// DiscardBytes bounds what is read and thrown away of one line that
	// is too long. 0 means DefaultDiscardBytes.
	DiscardBytes int64
	// LoginTimeout bounds the time from connect to login; the connection
	// is then closed. 0 means DefaultLoginTimeout.
	LoginTimeout time.Duration
	// PreAuthIdle is how long the server waits for a command before login.
	// 0 means DefaultPreAuthIdle.
	PreAuthIdle time.Duration
	// IdleTimeout is how long the server waits for a command after login
	// (RFC 1939 §3: at least 10 minutes). 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// WriteTimeout bounds how long one write to the client may block.
	// 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// PreAuthCommands bounds the commands of a connection before login:
	// past it the connection is closed. 0 means DefaultPreAuthCommands.
	PreAuthCommands int
	// BadCommands bounds the unknown, malformed or misplaced commands of
	// a connection: past it the connection is closed. 0 means
	// DefaultBadCommands.
	BadCommands int
	// MaxMessages bounds the messages one session serves: a larger INBOX
	// shows its oldest MaxMessages, and the newer ones in a later session
	// once those are deleted. It bounds the memory of a session. 0 means
	// DefaultMaxMessages.
	MaxMessages int
}

// Defaults of Limits.
const (
	DefaultLineBytes       = 4096
	DefaultDiscardBytes    = 64 << 10
	DefaultLoginTimeout    = 3 * time.Minute
	DefaultPreAuthIdle     = 60 * time.Second
	DefaultIdleTimeout     = 10 * time.Minute
	DefaultWriteTimeout    = 5 * time.Minute
	DefaultPreAuthCommands = 30
	DefaultBadCommands     = 10
	DefaultMaxMessages     = 100_000
)

func (l Limits) withDefaults() Limits {
	if l.LineBytes <= 0 {
		l.LineBytes = DefaultLineBytes
	}
	l.LineBytes = max(l.LineBytes, 256) // RFC 2449 §4: 255 octets at least
	if l.DiscardBytes <= 0 {
		l.DiscardBytes = DefaultDiscardBytes
	}
	if l.LoginTimeout <= 0 {
		l.LoginTimeout = DefaultLoginTimeout
	}
	if l.PreAuthIdle <= 0 {
		l.PreAuthIdle = DefaultPreAuthIdle
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultWriteTimeout
	}
	if l.PreAuthCommands <= 0 {
		l.PreAuthCommands = DefaultPreAuthCommands
	}
	if l.BadCommands <= 0 {
		l.BadCommands = DefaultBadCommands
	}
	if l.MaxMessages <= 0 {
		l.MaxMessages = DefaultMaxMessages
	}
	return l
}
