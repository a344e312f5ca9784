package pop3

import (
	"time"

	"github.com/sealmail/sealmail/server/connset"
)

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

// withDefaults returns l with every zero (or negative) field set to its
// default.
func (l Limits) withDefaults() Limits {
	l.LineBytes = max(connset.OrDefault(l.LineBytes, DefaultLineBytes), 256) // RFC 2449 §4: 255 octets at least
	l.DiscardBytes = connset.OrDefault(l.DiscardBytes, DefaultDiscardBytes)
	l.LoginTimeout = connset.OrDefault(l.LoginTimeout, DefaultLoginTimeout)
	l.PreAuthIdle = connset.OrDefault(l.PreAuthIdle, DefaultPreAuthIdle)
	l.IdleTimeout = connset.OrDefault(l.IdleTimeout, DefaultIdleTimeout)
	l.WriteTimeout = connset.OrDefault(l.WriteTimeout, DefaultWriteTimeout)
	l.PreAuthCommands = connset.OrDefault(l.PreAuthCommands, DefaultPreAuthCommands)
	l.BadCommands = connset.OrDefault(l.BadCommands, DefaultBadCommands)
	l.MaxMessages = connset.OrDefault(l.MaxMessages, DefaultMaxMessages)
	return l
}
