package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/smtp/inbound"
	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/store"
)

// Store is what the SMTP server needs from storage. *badgerstore.DB
// satisfies it, as does any store.Store.
type Store interface {
	// PublicAccount returns an account's public view (public key, quota
	// and usage; no wrapped key, no slots), or an error wrapping
	// store.ErrNotFound.
	PublicAccount(ctx context.Context, address string) (store.PublicAccount, error)
	// Deliver commits all deliveries in one durable transaction, or none.
	// Quota failures wrap store.ErrOverQuota. It reads inline blobs
	// without copying them and does not keep them after it returns.
	Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error)
	// StageBlob starts writing a large sealed blob for address ahead of
	// the Deliver that links it (store.BlobWriter).
	StageBlob(ctx context.Context, address string) (store.BlobWriter, error)
	// Mailboxes lists an account's mailboxes, to find its \Junk mailbox
	// when the inbound checks file a copy there.
	Mailboxes(ctx context.Context, address string) ([]store.Mailbox, error)
}

// Defaults for zero Limits fields.
const (
	// DefaultMessageBytes is the largest message accepted: 25 MiB, what the
	// large public providers accept, so mail they send arrives here too.
	DefaultMessageBytes = 25 << 20
	// DefaultRecipients is RFC 5321 §4.5.3.1.8's minimum of 100.
	DefaultRecipients = 100
	// DefaultLineLength, in bytes including CRLF, doubles RFC 5321
	// §4.5.3.1.6's 1000: tolerant of sloppy senders, still bounded.
	DefaultLineLength = 2000
	// DefaultCommandTimeout is RFC 5321 §4.5.3.2.7's server timeout: the
	// time allowed for one command line, and for any one read of message
	// data.
	DefaultCommandTimeout = 5 * time.Minute
	// DefaultDataTimeout bounds one whole DATA transfer, or all BDAT
	// chunks of one message (RFC 5321 §4.5.3.2.6 gives the client 10
	// minutes after the final dot).
	DefaultDataTimeout = 10 * time.Minute
	// DefaultMinDataRate is the slowest average rate, in bytes per
	// second, at which message data may arrive once dataRateGrace has
	// passed: Postfix's smtpd_min_data_rate is 500.
	DefaultMinDataRate = 1024
	// DefaultHops is the largest number of Received fields a message may
	// already carry (RFC 5321 §6.3 loop detection; Postfix uses 50 too).
	DefaultHops = 50
	// DefaultInFlightBytes bounds the memory held by messages in flight,
	// server-wide (see Limits.InFlightBytes).
	DefaultInFlightBytes = 256 << 20
	// DefaultInFlightWait is how long a new DATA or BDAT waits for room
	// in the in-flight budget before it gets 452 4.3.1.
	DefaultInFlightWait = 10 * time.Second
	// DefaultRateMessages is how many messages one client (an IPv4
	// address or an IPv6 /64) may deliver per minute.
	DefaultRateMessages = 120
	// DefaultRateBytes is how many message bytes, counted once per
	// receiving account, one client may deliver per minute.
	DefaultRateBytes = 512 << 20
	// DefaultUnknownRecipients is how many unknown local recipients one
	// connection may name before it is dropped with 421 4.7.0.
	DefaultUnknownRecipients = 10
	// DefaultErrors is how many refused commands (syntax, sequence,
	// relaying) one connection may send before it is dropped.
	DefaultErrors = 20
	// DefaultKeyCacheEntries bounds the cache of parsed public keys.
	DefaultKeyCacheEntries = 1024
)

// Limits bound what clients can make the server do. Every zero field
// takes the default named in its comment; no field can be unlimited.
// Connection counts are capped before the server sees a connection, by
// the listener it serves (cmd/sealmail guards it with server/listener,
// with Server.Refuse as its goodbye).
type Limits struct {
	MessageBytes   int64         // message size as received (advertised in SIZE); 0: DefaultMessageBytes
	Recipients     int           // accepted RCPT commands per message; 0: DefaultRecipients
	LineLength     int           // bytes per message line (DATA, BDAT), CRLF included; 0: DefaultLineLength. Command lines are bounded by 2048 bytes.
	CommandTimeout time.Duration // time for one command line, and for one read of message data; 0: DefaultCommandTimeout
	DataTimeout    time.Duration // time for one DATA transfer or all BDAT chunks of a message; 0: DefaultDataTimeout
	MinDataRate    int64         // bytes per second message data must average after the first 30 s; 0: DefaultMinDataRate
	Hops           int           // Received fields a message may carry; 0: DefaultHops
	// InFlightBytes bounds, server-wide, the memory that messages in
	// flight hold: message buffers, sealed copies waiting for their
	// commit, and a fixed working set per transfer. A message that does
	// not fit in memory goes to the encrypted spool instead; a transfer
	// that cannot get its working set within InFlightWait is refused with
	// 452 4.3.1. 0: DefaultInFlightBytes.
	InFlightBytes int64
	InFlightWait  time.Duration // 0: DefaultInFlightWait
	// RateMessages and RateBytes bound what one client (an IPv4 address
	// or an IPv6 /64) may deliver per minute: messages, and message bytes
	// times receiving accounts. Over either, MAIL gets 451 4.7.1. 0: the
	// defaults.
	RateMessages int
	RateBytes    int64
	// UnknownRecipients is how many RCPTs naming unknown local users one
	// connection may send before it is dropped (421 4.7.0); each one
	// after the first few is answered ever more slowly (tarpit). 0:
	// DefaultUnknownRecipients.
	UnknownRecipients int
	// Errors is how many refused commands one connection may send before
	// it is dropped (421 4.7.0). 0: DefaultErrors.
	Errors int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MessageBytes, DefaultMessageBytes)
	defInt(&l.Recipients, DefaultRecipients)
	defInt(&l.LineLength, DefaultLineLength)
	defDur(&l.CommandTimeout, DefaultCommandTimeout)
	defDur(&l.DataTimeout, DefaultDataTimeout)
	def(&l.MinDataRate, DefaultMinDataRate)
	defInt(&l.Hops, DefaultHops)
	def(&l.InFlightBytes, DefaultInFlightBytes)
	defDur(&l.InFlightWait, DefaultInFlightWait)
	defInt(&l.RateMessages, DefaultRateMessages)
	def(&l.RateBytes, DefaultRateBytes)
	defInt(&l.UnknownRecipients, DefaultUnknownRecipients)
	defInt(&l.Errors, DefaultErrors)
	return l
}

// Options configures New. Store is required; every other zero value is
// safe and documented.
type Options struct {
	// Hostname is the name in the greeting and in Received fields.
	// Empty: the system's host name, or "localhost".
	Hostname string
	// Domains are the domains whose accounts receive mail here. Empty: none,
	// so every recipient is refused as relaying. The first one is the
	// domain of the bare <postmaster> (RFC 5321 §4.1.1.3).
	Domains []string
	// Store holds accounts and receives deliveries. Required.
	Store Store
	// TLSConfig enables STARTTLS. nil: no STARTTLS (a warning is logged).
	TLSConfig *tls.Config
	// Limits bound clients; see Limits for the zero values.
	Limits Limits
	// Aliases maps an alias address to account addresses, all in Domains.
	// nil: no aliases.
	Aliases map[string][]string
	// Postmaster is the account receiving postmaster@ of every domain.
	// Empty: postmaster@<domain> if that account exists.
	Postmaster string
	// SpoolDir holds messages too large to keep in memory while they
	// arrive, each in a file encrypted (AES-256-GCM) under a random key
	// that lives only in memory and unlinked as soon as it is created,
	// so nothing readable is ever on disk and a crash leaves nothing
	// behind. New creates it (mode 0700) and removes leftovers. Empty: a
	// private directory under os.TempDir, removed by Shutdown.
	SpoolDir string
	// Logger receives structured logs. nil: discard.
	Logger *slog.Logger
	// OnDeliver is called after each durable commit with where each copy
	// landed, from a goroutine of the server's: the client's 250 never
	// waits for it. Calls do not overlap; while one runs, later
	// deliveries are merged (one entry per mailbox, the latest) and
	// passed in the next call, so a slow OnDeliver costs memory bounded
	// by the number of distinct mailboxes, at most notifyPending. nil:
	// nothing is called.
	OnDeliver func([]store.Delivered)
	// KeyCacheEntries bounds the cache of parsed public keys.
	// 0: DefaultKeyCacheEntries.
	KeyCacheEntries int
	// Escrow names the escrow keys a copy is sealed to as well as to its
	// account's (escrow.go). nil: none; escrow is off.
	Escrow Escrow
	// Inbound runs the inbound checks (SPF, DKIM, DMARC, DNS lists,
	// countries, allow and deny lists, greylisting, spam score) at RCPT
	// and at the end of the data, and writes the delivery trace. nil:
	// every local recipient is accepted and no message is scored. A
	// submission server runs none (its clients are authenticated).
	Inbound *inbound.Checker
	// Submission, if not nil, makes this server a message submission
	// agent (RFC 6409: submission.go) instead of an MX: clients must
	// authenticate, send as themselves, and may send anywhere. Store must
	// then also implement QueueStore.
	Submission *SubmissionOptions
	// Metrics hears how commands and messages end, for monitoring. nil:
	// nobody.
	Metrics Metrics

	hooks *testHooks // tests only; nil outside them
}

// SubmissionOptions configure a submission server (Options.Submission).
type SubmissionOptions struct {
	// Accounts checks credentials (the account password or an app
	// password) with the login throttle every protocol shares.
	// Required.
	Accounts Authenticator
	// Queue takes the remote recipients' copies. Required.
	Queue Outbound
	// Transforms run on every submitted message, in order (DKIM
	// signing, the Autocrypt header). nil: none.
	Transforms []Transform
	// HideClientIP leaves the client's address and EHLO name out of the
	// Received field the server adds (privacy; RFC 5321 §4.4 allows
	// it). false: they are in it, as for mail arriving at the MX.
	HideClientIP bool
}

// Authenticator checks credentials and unlocks accounts:
// *account.Service, whose throttle, fixed failure delay and
// no-enumeration rules every protocol shares.
type Authenticator interface {
	// Login returns an unlocked session, or account.ErrBadCredentials
	// (also for unknown accounts, after the failure delay),
	// account.ErrThrottled, account.ErrUnavailable or account.ErrClosed.
	Login(ctx context.Context, req account.LoginRequest) (*account.Session, error)
}

// Outbound is the outbound queue as submission sees it:
// *queue.Queue.
type Outbound interface {
	// Prepare seals a message for the queue and returns the change that
	// queues it; the caller adds its local copies, commits it
	// (QueueStore.UpdateQueue) and calls Committed, or Discard.
	Prepare(ctx context.Context, m *queue.Message, body io.Reader) (*queue.Prepared, error)
	// Committed tells the queue that the change is durable.
	Committed(p *queue.Prepared)
}

// QueueStore is what submission needs of the store beyond Store: one
// transaction for the queue entries and the local copies of a message.
// Every store.Store has it.
type QueueStore interface {
	UpdateQueue(ctx context.Context, c store.QueueChange) ([]store.Delivered, error)
}

// testHooks replace what tests cannot wait for.
type testHooks struct {
	sleep     func(context.Context, time.Duration) // the tarpit's wait
	rateGrace time.Duration                        // dataRateGrace
	// plainIsTLS counts plaintext connections as TLS, so that fuzzing
	// reaches AUTH and what follows it without a handshake.
	plainIsTLS bool
}

// minLineLength is the shortest line length a server must accept: RFC
// 5321 §4.5.3.1.6's 1000 octets of a text line, CRLF included.
const minLineLength = 1000

// Validate reports a negative field or a LineLength below the RFC's 1000
// octets. New refuses the same.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MessageBytes", l.MessageBytes}, {"Recipients", int64(l.Recipients)}, {"LineLength", int64(l.LineLength)},
		{"CommandTimeout", int64(l.CommandTimeout)}, {"DataTimeout", int64(l.DataTimeout)},
		{"MinDataRate", l.MinDataRate}, {"Hops", int64(l.Hops)},
		{"InFlightBytes", l.InFlightBytes}, {"InFlightWait", int64(l.InFlightWait)},
		{"RateMessages", int64(l.RateMessages)}, {"RateBytes", l.RateBytes},
		{"UnknownRecipients", int64(l.UnknownRecipients)}, {"Errors", int64(l.Errors)},
	} {
		if f.v < 0 {
			return fmt.Errorf("smtp: Limits.%s is negative", f.name)
		}
	}
	if l.LineLength != 0 && l.LineLength < minLineLength {
		return fmt.Errorf("smtp: Limits.LineLength %d is below %d (RFC 5321 §4.5.3.1.6)", l.LineLength, minLineLength)
	}
	return nil
}
