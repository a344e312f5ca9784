package queue

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/store"
)

// Store is what the queue needs from storage. Every store.Store has it.
type Store interface {
	store.Queue
	store.Tracer
	// PublicAccount finds local senders of bounces (their public key).
	PublicAccount(ctx context.Context, address string) (store.PublicAccount, error)
}

// Resolver is the DNS the queue asks: *resolver.Resolver. Its errors
// wrap resolver.ErrNotFound (no such name or record) or
// resolver.ErrTemporary.
type Resolver interface {
	MX(ctx context.Context, domain string) (resolver.MXResult, error)
	IP(ctx context.Context, host string) (resolver.IPResult, error)
}

var _ Resolver = (*resolver.Resolver)(nil)

// Defaults for zero Options fields.
const (
	// DefaultLifetime is how long a message is retried before it bounces
	// (RFC 5321 §4.5.4.1: at least 4-5 days).
	DefaultLifetime = 5 * 24 * time.Hour
	// DefaultDelayWarning is when the sender hears that the message is
	// still waiting.
	DefaultDelayWarning = 4 * time.Hour
	// DefaultTraceRetention is how long outbound trace records are kept.
	DefaultTraceRetention = 30 * 24 * time.Hour
	// DefaultConnections bounds deliveries in progress, server-wide.
	DefaultConnections = 64
	// DefaultDestinationConnections bounds deliveries in progress to one
	// destination (Postfix's default_destination_concurrency_limit is 20;
	// large providers throttle senders that open many).
	DefaultDestinationConnections = 10
	// DefaultRetryBase is the wait after the first failed attempt (RFC
	// 5321 §4.5.4.1: at least 30 minutes is recommended between retries
	// of one destination; a short first wait gets greylisted mail
	// through sooner). Each later wait doubles, up to DefaultRetryMax.
	DefaultRetryBase = 5 * time.Minute
	DefaultRetryMax  = 2 * time.Hour
	// DefaultActive bounds the entries the scheduler holds in memory
	// (their envelopes, not their bodies), whatever the queue's length.
	DefaultActive = 2048
	// DefaultMaxRecipients bounds recipients in one outgoing transaction
	// (RFC 5321 §4.5.3.1.8: servers take at least 100).
	DefaultMaxRecipients = 100
)

// Smarthost sends all outbound mail through one relay (Postfix's
// relayhost), instead of looking up each destination's MX.
type Smarthost struct {
	// Addr is host:port; the host name is what the certificate must name.
	Addr string
	// TLS is SmarthostSTARTTLS (the default), SmarthostImplicitTLS (port
	// 465) or SmarthostNoTLS (only without Username; for a relay on the
	// same host).
	TLS string
	// Username and Password authenticate with AUTH PLAIN (or LOGIN),
	// only over verified TLS. Empty Username: no AUTH.
	Username string
	Password []byte
	// RootCAs verifies the relay's certificate. nil: the system roots.
	RootCAs *x509.CertPool
}

// Smarthost TLS modes.
const (
	SmarthostSTARTTLS    = "starttls"
	SmarthostImplicitTLS = "tls"
	SmarthostNoTLS       = "none"
)

// Options configures New. Store, Key and Hostname are required;
// Resolver too for Start, unless a Smarthost takes all mail. Every other zero
// value is safe and documented.
type Options struct {
	Store Store
	// Key is the server key (KeySize bytes): queued mail, envelopes and
	// trace records are sealed under keys derived from it.
	Key []byte
	// Hostname is the name in EHLO, in Reporting-MTA and in the address
	// of bounces (MAILER-DAEMON@Hostname).
	Hostname string
	// Domains, Aliases and Postmaster are the local domains and
	// addresses, as server/smtp has them: a bounce for a local sender
	// goes sealed into its account's INBOX. Empty Domains: every sender
	// is remote.
	Domains    []string
	Aliases    map[string][]string
	Postmaster string
	// Resolver looks up MX and address records. Required unless
	// Smarthost is set.
	Resolver Resolver
	// Smarthost, if not nil, takes every message.
	Smarthost *Smarthost
	// Transports maps a domain (canonical) to the host:port its mail goes
	// to instead of its MX (Postfix's transport maps). nil: none.
	Transports map[string]string
	// TLSPolicy decides what TLS each host must offer. nil: opportunistic
	// STARTTLS.
	TLSPolicy TLSPolicy
	// Connections bounds deliveries in progress; DestinationConnections
	// those to one destination (a domain's MX hosts, a transport, the
	// smarthost). 0: the defaults.
	Connections            int
	DestinationConnections int
	// DestinationRate bounds the messages started to one destination per
	// minute. 0: no bound.
	DestinationRate int
	// Lifetime is how long a message is retried before it bounces.
	// 0: DefaultLifetime.
	Lifetime time.Duration
	// DelayWarning is when a delay notice goes to the sender (once).
	// 0: DefaultDelayWarning; negative: never.
	DelayWarning time.Duration
	// TraceRetention is how long outbound trace records are kept.
	// 0: DefaultTraceRetention.
	TraceRetention time.Duration
	// RetryBase and RetryMax shape the backoff: the n-th failed attempt
	// waits RetryBase·2^(n-1), at most RetryMax. 0: the defaults.
	RetryBase, RetryMax time.Duration
	// Active bounds the entries held in memory. 0: DefaultActive.
	Active int
	// Logger receives the queue's logs. nil: discard.
	Logger *slog.Logger
	// Escrow gives the escrow keys a notice delivered into a local INBOX
	// is sealed to besides its account's own, as server/smtp does for
	// the mail it delivers. nil: none.
	Escrow Escrow
	// OnDeliver is told of notices the queue delivered into local
	// mailboxes (bounces, delay notices), after their commit, from the
	// delivery's goroutine: IMAP IDLE sessions learn of them at once.
	// nil: nothing is called.
	OnDeliver func([]store.Delivered)

	// Tests only: the port MX hosts are reached on (0: 25), the clock
	// (nil: time.Now) and the dialer (nil: net.Dialer).
	MXPort      int
	Now         func() time.Time
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// validate checks opt and fills in defaults.
func (o *Options) validate() error {
	if o.Store == nil {
		return errors.New("queue: Options.Store is required")
	}
	if len(o.Key) != KeySize {
		return fmt.Errorf("queue: Options.Key must be %d bytes", KeySize)
	}
	h, err := policy.NormalizeDomain(o.Hostname)
	if err != nil {
		return fmt.Errorf("queue: Hostname: %w", err)
	}
	o.Hostname = h
	if sh := o.Smarthost; sh != nil {
		if err := sh.validate(); err != nil {
			return err
		}
	}
	tr := make(map[string]string, len(o.Transports))
	for d, target := range o.Transports {
		cd, err := policy.NormalizeDomain(d)
		if err != nil {
			return fmt.Errorf("queue: transport %q: %w", d, err)
		}
		if _, err := splitHostPort(target); err != nil {
			return fmt.Errorf("queue: transport for %s: %w", cd, err)
		}
		tr[cd] = target
	}
	o.Transports = tr
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Connections", int64(o.Connections)}, {"DestinationConnections", int64(o.DestinationConnections)},
		{"DestinationRate", int64(o.DestinationRate)}, {"Lifetime", int64(o.Lifetime)},
		{"TraceRetention", int64(o.TraceRetention)}, {"RetryBase", int64(o.RetryBase)},
		{"RetryMax", int64(o.RetryMax)}, {"Active", int64(o.Active)}, {"MXPort", int64(o.MXPort)},
	} {
		if f.v < 0 {
			return fmt.Errorf("queue: Options.%s is negative", f.name)
		}
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Connections, DefaultConnections)
	def(&o.DestinationConnections, DefaultDestinationConnections)
	o.DestinationConnections = min(o.DestinationConnections, o.Connections)
	def(&o.Active, DefaultActive)
	def(&o.MXPort, 25)
	defDur(&o.Lifetime, DefaultLifetime)
	defDur(&o.DelayWarning, DefaultDelayWarning)
	defDur(&o.TraceRetention, DefaultTraceRetention)
	defDur(&o.RetryBase, DefaultRetryBase)
	defDur(&o.RetryMax, DefaultRetryMax)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DialContext == nil {
		d := &net.Dialer{Timeout: dialTimeout}
		o.DialContext = d.DialContext
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func (s *Smarthost) validate() error {
	if _, err := splitHostPort(s.Addr); err != nil {
		return fmt.Errorf("queue: smarthost: %w", err)
	}
	switch s.TLS {
	case "":
		s.TLS = SmarthostSTARTTLS
	case SmarthostSTARTTLS, SmarthostImplicitTLS:
	case SmarthostNoTLS:
		if s.Username != "" {
			return errors.New("queue: smarthost: AUTH needs TLS (a password never goes in the clear)")
		}
	default:
		return fmt.Errorf("queue: smarthost: TLS %q: want starttls, tls or none", s.TLS)
	}
	if s.Username == "" && len(s.Password) > 0 {
		return errors.New("queue: smarthost: a password without a username")
	}
	return nil
}

// hostPort is a parsed host:port.
type hostPort struct {
	host string // canonical domain, or an IP address
	port int
}

func (h hostPort) String() string { return net.JoinHostPort(h.host, strconv.Itoa(h.port)) }

// splitHostPort parses host:port: a domain name (made canonical) or an
// IP address, and a port 1-65535.
func splitHostPort(s string) (hostPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return hostPort{}, fmt.Errorf("want host:port, got %q", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return hostPort{}, fmt.Errorf("bad port in %q", s)
	}
	if ip := net.ParseIP(host); ip != nil {
		return hostPort{host: ip.String(), port: n}, nil
	}
	h, err := policy.NormalizeDomain(strings.TrimSuffix(host, "."))
	if err != nil {
		return hostPort{}, fmt.Errorf("bad host in %q: %w", s, err)
	}
	return hostPort{host: h, port: n}, nil
}

// Check reports what New would refuse in o, without building anything;
// o is not changed.
func (o Options) Check() error { return o.validate() }

// Escrow decides which escrow keys a copy is sealed to as well as to its
// account's key (cmd/sealmail's escrow policy; server/smtp.Escrow has the
// same method).
type Escrow interface {
	// EscrowKeys returns the keys a copy for account, bound for the
	// mailbox with ID mailbox (0: INBOX), of class class ("" for the
	// default class), is sealed to besides the account's own; nil for
	// none. On error the notice is not delivered (it is logged), so no
	// copy that must stay producible is stored without its escrow.
	EscrowKeys(ctx context.Context, account string, mailbox uint64, class string) ([]*crypto.PublicKey, error)
}
