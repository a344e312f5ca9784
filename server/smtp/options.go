package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/sealmail/sealmail/store"
)

// Store is what the SMTP server needs from storage. *badgerstore.DB
// satisfies it, as does any store.Store.
type Store interface {
	// PublicAccount returns an account's public view (public key, quota;
	// no wrapped key, no slots), or an error wrapping store.ErrNotFound.
	PublicAccount(ctx context.Context, address string) (store.PublicAccount, error)
	// Deliver commits all deliveries in one durable transaction, or none.
	// Quota failures wrap store.ErrOverQuota.
	Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error)
}

// Defaults for zero Limits fields.
const (
	// DefaultMessageBytes is the largest message accepted: 25 MiB, what the
	// large public providers accept, so mail they send arrives here too.
	DefaultMessageBytes = 25 << 20
	// DefaultRecipients is RFC 5321 §4.5.3.1.8's minimum of 100.
	DefaultRecipients = 100
	// DefaultLineLength, in bytes including CRLF, doubles RFC 5321
	// §4.5.3.1.6's 1000 (as go-smtp does): tolerant of sloppy senders,
	// still bounded.
	DefaultLineLength = 2000
	// DefaultCommandTimeout is RFC 5321 §4.5.3.2.7's server timeout.
	DefaultCommandTimeout = 5 * time.Minute
	// DefaultDataTimeout bounds one whole DATA transfer (RFC 5321
	// §4.5.3.2.6 gives the client 10 minutes after the final dot).
	DefaultDataTimeout = 10 * time.Minute
	// DefaultHops is the largest number of Received fields a message may
	// already carry (RFC 5321 §6.3 loop detection; Postfix uses 50 too).
	DefaultHops = 50
	// DefaultKeyCacheEntries bounds the cache of parsed public keys.
	DefaultKeyCacheEntries = 1024
)

// Limits bound what one client can make the server do. Every zero field
// takes the default named in its comment; no field can be unlimited.
// Connection counts are capped before the server sees a connection, by
// the listener it serves (cmd/sealmail guards it with server/listener).
type Limits struct {
	MessageBytes   int64         // message size as received (advertised in SIZE); 0: DefaultMessageBytes
	Recipients     int           // RCPT commands per message; 0: DefaultRecipients
	LineLength     int           // bytes per message line (DATA, BDAT), CRLF included; command lines are cut at 64 KiB or LineLength if larger; 0: DefaultLineLength
	CommandTimeout time.Duration // idle time allowed between commands; 0: DefaultCommandTimeout
	DataTimeout    time.Duration // time allowed for one DATA transfer; 0: DefaultDataTimeout
	Hops           int           // Received fields a message may carry; 0: DefaultHops
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
		{"CommandTimeout", int64(l.CommandTimeout)}, {"DataTimeout", int64(l.DataTimeout)}, {"Hops", int64(l.Hops)},
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

func (l Limits) withDefaults() Limits {
	if l.MessageBytes <= 0 {
		l.MessageBytes = DefaultMessageBytes
	}
	if l.Recipients <= 0 {
		l.Recipients = DefaultRecipients
	}
	if l.LineLength <= 0 {
		l.LineLength = DefaultLineLength
	}
	if l.CommandTimeout <= 0 {
		l.CommandTimeout = DefaultCommandTimeout
	}
	if l.DataTimeout <= 0 {
		l.DataTimeout = DefaultDataTimeout
	}
	if l.Hops <= 0 {
		l.Hops = DefaultHops
	}
	return l
}

// Options configures New. Store is required; every other zero value is
// safe and documented.
type Options struct {
	// Hostname is the name in the greeting and in Received fields.
	// Empty: the system's host name, or "localhost".
	Hostname string
	// Domains are the domains whose accounts receive mail here. Empty: none,
	// so every recipient is refused as relaying.
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
	// Logger receives structured logs. nil: discard.
	Logger *slog.Logger
	// OnDeliver is called after each durable commit, before the client
	// gets its 250, with where each copy landed. It must not block for
	// long. nil: nothing is called.
	OnDeliver func([]store.Delivered)
	// KeyCacheEntries bounds the cache of parsed public keys.
	// 0: DefaultKeyCacheEntries.
	KeyCacheEntries int
}
