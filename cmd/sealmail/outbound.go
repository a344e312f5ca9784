package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/tlspolicy"
	"github.com/sealmail/sealmail/store"
)

// SubmissionConfig configures the submission listeners (server/smtp in
// its submission role).
type SubmissionConfig struct {
	// HideClientIP leaves the client's address and EHLO name out of the
	// Received field of submitted mail.
	HideClientIP bool `yaml:"hide_client_ip" default:"false"`
}

// OutboundConfig configures the outbound queue (server/smtp/queue).
type OutboundConfig struct {
	// Smarthost is host:port of a relay that takes all outbound mail;
	// "": each domain's MX.
	Smarthost string `yaml:"smarthost" default:""`
	// SmarthostTLS is starttls, tls (implicit, port 465) or none (only
	// without a username).
	SmarthostTLS string `yaml:"smarthost_tls" default:"starttls"`
	// SmarthostUsername and the file holding the password authenticate
	// to the smarthost (AUTH PLAIN over verified TLS).
	SmarthostUsername     string `yaml:"smarthost_username" default:""`
	SmarthostPasswordFile string `yaml:"smarthost_password_file" default:""`
	// SmarthostCAFile is a PEM bundle verifying the smarthost's
	// certificate; "": the system's roots.
	SmarthostCAFile string `yaml:"smarthost_ca_file" default:""`
	// Transports send a domain's mail to a fixed host:port instead of
	// its MX, as Postfix's transport maps: "domain=host:port" entries.
	Transports []string `yaml:"transports" default:""`
	// Lifetime is how long a message is retried before it bounces.
	Lifetime time.Duration `yaml:"lifetime" default:"120h"`
	// DelayWarning is when the sender hears that a message still waits;
	// 0: never.
	DelayWarning time.Duration `yaml:"delay_warning" default:"4h" min:"0"`
	// TraceRetention is how long the delivery trace of outbound mail is
	// kept.
	TraceRetention time.Duration `yaml:"trace_retention" default:"720h"`
	// Connections bounds deliveries in progress; DestinationConnections
	// those to one destination (a domain's MX hosts, a transport, the
	// smarthost); DestinationRate the messages started to one
	// destination per minute (0: no bound).
	Connections            int `yaml:"connections" default:"64"`
	DestinationConnections int `yaml:"destination_connections" default:"10"`
	DestinationRate        int `yaml:"destination_rate" default:"0" min:"0"`
}

// maxLifetime bounds outbound.lifetime: RFC 5321 §4.5.4.1 suggests 4-5
// days; a month is plenty.
const maxLifetime = 30 * 24 * time.Hour

// validateOutbound checks the outbound and submission keys as the
// packages will read them (validateInbound checks dns.resolver).
func (c *Config) validateOutbound() error {
	o := &c.Outbound
	if o.Lifetime > maxLifetime {
		return fmt.Errorf("config: outbound.lifetime: at most %v", maxLifetime)
	}
	if c.DKIM.RetireAfter <= o.Lifetime {
		return fmt.Errorf("config: dkim.retire_after: must be longer than outbound.lifetime (%v), so that queued mail signed before a rotation still verifies", o.Lifetime)
	}
	if o.DelayWarning >= o.Lifetime {
		return errors.New("config: outbound.delay_warning: must be shorter than outbound.lifetime (0 turns it off)")
	}
	if _, err := c.transports(); err != nil {
		return err
	}
	if o.Smarthost == "" {
		if o.SmarthostUsername != "" || o.SmarthostPasswordFile != "" || o.SmarthostCAFile != "" {
			return errors.New("config: outbound.smarthost_username, _password_file and _ca_file need outbound.smarthost")
		}
		return nil
	}
	if (o.SmarthostUsername == "") != (o.SmarthostPasswordFile == "") {
		return errors.New("config: outbound.smarthost_username and outbound.smarthost_password_file: set both or neither")
	}
	sh := &queue.Smarthost{Addr: o.Smarthost, TLS: o.SmarthostTLS, Username: o.SmarthostUsername}
	if o.SmarthostUsername != "" {
		sh.Password = []byte("checked when serving")
	}
	if err := (&queue.Options{Store: noStore{}, Key: make([]byte, queue.KeySize), Hostname: c.Hostname, Smarthost: sh}).Check(); err != nil {
		return fmt.Errorf("config: outbound: %w", err)
	}
	return nil
}

// noStore stands in for the store when only options are checked.
type noStore struct{ queue.Store }

// transports parses outbound.transports.
func (c *Config) transports() (map[string]string, error) {
	out := make(map[string]string, len(c.Outbound.Transports))
	for _, e := range c.Outbound.Transports {
		d, target, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("config: outbound.transports: want domain=host:port, got %q", e)
		}
		d, target = strings.TrimSpace(d), strings.TrimSpace(target)
		if _, dup := out[d]; dup {
			return nil, fmt.Errorf("config: outbound.transports: %s listed twice", d)
		}
		out[d] = target
	}
	if err := (&queue.Options{Store: noStore{}, Key: make([]byte, queue.KeySize), Hostname: c.Hostname, Transports: out}).Check(); err != nil {
		return nil, fmt.Errorf("config: outbound.transports: %w", err)
	}
	return out, nil
}

// newResolver is the mail paths' DNS client.
func newResolver(c *Config, log *slog.Logger) (*resolver.Resolver, error) {
	return resolver.New(resolver.Options{Server: c.DNS.Resolver, Timeout: c.DNS.Timeout, Logger: log})
}

// queueOptions builds the queue's options. res may be nil (the CLI
// administers the queue without delivering).
func queueOptions(c *Config, st store.Store, key []byte, res *resolver.Resolver, log *slog.Logger) (queue.Options, error) {
	tr, err := c.transports()
	if err != nil {
		return queue.Options{}, err
	}
	opt := queue.Options{
		Store:                  st,
		Key:                    key,
		Hostname:               c.Hostname,
		Domains:                c.Domains,
		Aliases:                c.Aliases,
		Postmaster:             c.Postmaster,
		Transports:             tr,
		Connections:            c.Outbound.Connections,
		DestinationConnections: c.Outbound.DestinationConnections,
		DestinationRate:        c.Outbound.DestinationRate,
		Lifetime:               c.Outbound.Lifetime,
		DelayWarning:           c.Outbound.DelayWarning,
		TraceRetention:         c.Outbound.TraceRetention,
		Logger:                 log,
	}
	if c.Outbound.DelayWarning == 0 {
		opt.DelayWarning = -1 // the key's 0 is "never"; the option's is the default
	}
	if res != nil {
		opt.Resolver = res
	}
	if o := c.Outbound; o.Smarthost != "" {
		sh := &queue.Smarthost{Addr: o.Smarthost, TLS: o.SmarthostTLS, Username: o.SmarthostUsername}
		if o.SmarthostPasswordFile != "" {
			pw, err := os.ReadFile(o.SmarthostPasswordFile)
			if err != nil {
				return queue.Options{}, fmt.Errorf("outbound.smarthost_password_file: %w", err)
			}
			sh.Password = []byte(strings.TrimRight(string(pw), "\r\n"))
			clear(pw)
		}
		if o.SmarthostCAFile != "" {
			pem, err := os.ReadFile(o.SmarthostCAFile)
			if err != nil {
				return queue.Options{}, fmt.Errorf("outbound.smarthost_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return queue.Options{}, fmt.Errorf("outbound.smarthost_ca_file %s: no certificate in it", o.SmarthostCAFile)
			}
			sh.RootCAs = pool
		}
		opt.Smarthost = sh
	}
	return opt, nil
}

// startQueue builds the outbound queue over st and starts delivering,
// with the outbound TLS policy (tlsPolicy), which the caller closes
// after the queue. It refuses to start when the queue holds mail the
// server key cannot open (the key file was replaced), rather than fail
// every delivery. onDeliver hears of the notices it delivers into local
// mailboxes. res is the DNS client the inbound checks use, or nil to
// make one: the mail paths share one client and its cache. escrow is
// the MX's escrow policy.
func startQueue(c *Config, st store.Store, res *resolver.Resolver, escrow queue.Escrow, log *slog.Logger, onDeliver func([]store.Delivered)) (*queue.Queue, *tlspolicy.Policies, error) {
	key, err := loadServerKey(c)
	if err != nil {
		return nil, nil, err
	}
	defer clear(key)
	if res == nil {
		if res, err = newResolver(c, log); err != nil {
			return nil, nil, fmt.Errorf("dns.resolver: %w", err)
		}
	}
	opt, err := queueOptions(c, st, key, res, log)
	if err != nil {
		return nil, nil, err
	}
	opt.OnDeliver = onDeliver
	opt.Escrow = escrow // the notices it delivers locally, as the MX's mail
	pol, err := tlsPolicy(c, res, key, log)
	if err != nil {
		return nil, nil, err
	}
	opt.TLSPolicy = pol
	q, err := queue.New(opt)
	if err != nil {
		return nil, nil, err
	}
	if err := q.CheckKey(context.Background()); err != nil {
		return nil, nil, fmt.Errorf("outbound queue: %w: the server key %s does not open the queued mail; restore the key it was sealed with", err, c.serverKeyPath())
	}
	if err := q.Start(); err != nil {
		return nil, nil, err
	}
	return q, pol, nil
}
