package wire

import (
	"cmp"
	"time"

	"github.com/sealmail/sealmail/server/connset"
)

// StateLimits bound what one command may make the server read, buffer and
// wait for in one connection state. Every field's zero value means the
// default of that state (DefaultPreAuthLimits, DefaultAuthLimits).
type StateLimits struct {
	// LineBytes bounds one line of a command: the bytes between two CRLFs,
	// literal data not included. A longer line is refused with
	// BAD [TOOBIG] once it ends, or the connection is closed when the rest
	// of it does not fit DiscardBytes.
	LineBytes int
	// CommandBytes bounds one command: its lines plus the data of every
	// literal the server buffers (everything but APPEND message data,
	// which streams to the backend and is bounded by Limits.AppendLimit).
	// A literal that would exceed it is refused before any byte of it is
	// read: a synchronising one with NO [TOOBIG] before "+" is sent, a
	// non-synchronising one by discarding it (see DiscardBytes).
	CommandBytes int64
	// Depth bounds the nesting of parenthesised lists and search keys.
	Depth int
	// Args bounds the elements of one command: list members, search keys,
	// fetch items, flags. Sequence set ranges are bounded by LineBytes.
	Args int
	// DiscardBytes bounds the bytes read and thrown away while refusing
	// one command (the rest of its line, refused non-synchronising
	// literals; RFC 7888 §4). Past it the connection is closed with
	// BYE [TOOBIG], so a refused command can never make the server read
	// without end nor run its bytes as commands.
	DiscardBytes int64
	// IdleTimeout is how long the server waits for the next command.
	// Before authentication it is also capped by Limits.LoginTimeout.
	IdleTimeout time.Duration
	// ReadTimeout is how long the server waits for more bytes once a
	// command has begun (between reads, so a slow APPEND that makes
	// progress is not cut off).
	ReadTimeout time.Duration
	// CommandTimeout bounds the whole reading of one command, whatever its
	// progress. Negative means no bound (the authenticated default, where
	// APPEND may take long over a slow link).
	CommandTimeout time.Duration
}

// Limits bound a connection. The zero value is safe: every zero field
// takes its documented default.
type Limits struct {
	// PreAuth applies before authentication. Defaults:
	// DefaultPreAuthLimits.
	PreAuth StateLimits
	// Auth applies once authenticated. Defaults: DefaultAuthLimits, with
	// DiscardBytes defaulting to AppendLimit.
	Auth StateLimits
	// AppendLimit is the largest message APPEND accepts (advertised as
	// APPENDLIMIT, RFC 7889) and, for CATENATE, the largest result.
	// 0 means DefaultAppendLimit.
	AppendLimit int64
	// AppendMessages bounds the messages of one MULTIAPPEND. 0 means
	// DefaultAppendMessages.
	AppendMessages int
	// LoginTimeout bounds the time from connect to successful
	// authentication. 0 means DefaultLoginTimeout.
	LoginTimeout time.Duration
	// WriteTimeout bounds how long one write to the client may block.
	// 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IdleKeepalive is the interval of "* OK Still here" during IDLE, which
	// keeps NAT and firewall state alive. 0 means DefaultIdleKeepalive;
	// negative disables it.
	IdleKeepalive time.Duration
}

// Defaults. Before authentication only LOGIN, AUTHENTICATE and ID carry
// arguments: the largest is an ID as big as RFC 2971 allows, so a
// connection that has not logged in can make the server hold at most
// 40 KiB of its input. After it, Dovecot's 64 KiB line is the reference
// clients are written against.
var (
	DefaultPreAuthLimits = StateLimits{
		LineBytes:      36 << 10, // ID with RFC 2971's most: 30 fields of 30 + 1,024 bytes, ~32 KiB
		CommandBytes:   40 << 10, // that ID, or LOGIN with two 1 KiB literals
		Depth:          4,        // ID's one list
		Args:           64,       // ID: 30 pairs
		DiscardBytes:   40 << 10,
		IdleTimeout:    60 * time.Second,
		ReadTimeout:    30 * time.Second,
		CommandTimeout: 60 * time.Second,
	}
	DefaultAuthLimits = StateLimits{
		LineBytes:      64 << 10,
		CommandBytes:   256 << 10,
		Depth:          32,
		Args:           1000,
		IdleTimeout:    30 * time.Minute, // RFC 9051 §5.4: at least 30 minutes
		ReadTimeout:    5 * time.Minute,
		CommandTimeout: -1,
	}
)

const (
	// DefaultAppendLimit is sealmail's default SMTP size limit.
	DefaultAppendLimit = 50 << 20
	// DefaultAppendMessages bounds a MULTIAPPEND (RFC 3502).
	DefaultAppendMessages = 1000
	// DefaultLoginTimeout bounds the unauthenticated phase.
	DefaultLoginTimeout = 3 * time.Minute
	// DefaultWriteTimeout bounds one blocked write.
	DefaultWriteTimeout = 5 * time.Minute
	// DefaultIdleKeepalive is Dovecot's imap_idle_notify_interval.
	DefaultIdleKeepalive = 2 * time.Minute
	// idleTimeout is how long IDLE may last without DONE: clients re-issue
	// IDLE every 29 minutes (RFC 2177).
	idleTimeout = 35 * time.Minute
)

// withDefaults returns l with every zero field set. A negative
// IdleKeepalive stays (no keepalive); other negative fields take their
// defaults.
func (l Limits) withDefaults() Limits {
	l.AppendLimit = connset.OrDefault(l.AppendLimit, DefaultAppendLimit)
	l.AppendMessages = connset.OrDefault(l.AppendMessages, DefaultAppendMessages)
	l.LoginTimeout = connset.OrDefault(l.LoginTimeout, DefaultLoginTimeout)
	l.WriteTimeout = connset.OrDefault(l.WriteTimeout, DefaultWriteTimeout)
	l.IdleKeepalive = cmp.Or(l.IdleKeepalive, DefaultIdleKeepalive)
	auth := DefaultAuthLimits
	auth.DiscardBytes = l.AppendLimit
	l.PreAuth = l.PreAuth.withDefaults(DefaultPreAuthLimits)
	l.Auth = l.Auth.withDefaults(auth)
	return l
}

// withDefaults returns s with every zero field set from d. A negative
// CommandTimeout stays (no bound); other negative fields take d's.
func (s StateLimits) withDefaults(d StateLimits) StateLimits {
	s.LineBytes = connset.OrDefault(s.LineBytes, d.LineBytes)
	s.CommandBytes = connset.OrDefault(s.CommandBytes, d.CommandBytes)
	s.Depth = connset.OrDefault(s.Depth, d.Depth)
	s.Args = connset.OrDefault(s.Args, d.Args)
	s.DiscardBytes = connset.OrDefault(s.DiscardBytes, d.DiscardBytes)
	s.IdleTimeout = connset.OrDefault(s.IdleTimeout, d.IdleTimeout)
	s.ReadTimeout = connset.OrDefault(s.ReadTimeout, d.ReadTimeout)
	s.CommandTimeout = cmp.Or(s.CommandTimeout, d.CommandTimeout)
	return s
}
