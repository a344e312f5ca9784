package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"

	"github.com/sealmail/sealmail/keyserver"
	"github.com/sealmail/sealmail/policy"
)

// clientPorts are the IMAP, POP3 and submission ports clients connect
// to; 0 where there is none.
type clientPorts struct {
	imap, imaps, submission, submissions int
	pop3, pop3s                          int
}

// configPorts are the ports of the listen addresses in c. An ephemeral
// port (":0", for tests) is unknown until bound, so it counts as none.
func configPorts(c *Config) clientPorts {
	return clientPorts{imap: listenPort(c.Listen.IMAP), imaps: listenPort(c.Listen.IMAPS),
		submission: listenPort(c.Listen.Submission), submissions: listenPort(c.Listen.Submissions),
		pop3: listenPort(c.Listen.POP3), pop3s: listenPort(c.Listen.POP3S)}
}

// keyserverOptions builds the keyserver's options from the configuration.
// keys may be nil (for `sealmail dns`, which needs no store). ports are
// the IMAP, POP3 and submission ports to advertise: serve passes those it
// bound, dns those configured. autoconfig.submission, if set, replaces
// the submission listeners (a site whose clients send elsewhere).
func keyserverOptions(c *Config, keys keyserver.KeyLookup, log *slog.Logger, ports clientPorts) keyserver.Options {
	opt := keyserver.Options{
		Keys:     keys,
		Hostname: c.Hostname,
		Domains:  c.Domains,
		Logger:   log,
	}
	// Autoconfig describes the listeners as clients reach them: at
	// hostname (the listen host may be 127.0.0.1 or a wildcard), on the
	// listen ports, which sealmail assumes are the public ones. Implicit
	// TLS first (RFC 8314 §3.3).
	if ports.imaps != 0 {
		opt.IMAP = append(opt.IMAP, keyserver.Endpoint{Port: ports.imaps, TLS: keyserver.ImplicitTLS})
	}
	if ports.imap != 0 {
		opt.IMAP = append(opt.IMAP, keyserver.Endpoint{Port: ports.imap, TLS: keyserver.StartTLS})
	}
	if ports.pop3s != 0 {
		opt.POP3 = append(opt.POP3, keyserver.Endpoint{Port: ports.pop3s, TLS: keyserver.ImplicitTLS})
	}
	if ports.pop3 != 0 {
		opt.POP3 = append(opt.POP3, keyserver.Endpoint{Port: ports.pop3, TLS: keyserver.StartTLS})
	}
	if e, ok := submissionEndpoint(c); ok {
		opt.Submission = []keyserver.Endpoint{e}
	} else {
		if ports.submissions != 0 {
			opt.Submission = append(opt.Submission, keyserver.Endpoint{Port: ports.submissions, TLS: keyserver.ImplicitTLS})
		}
		if ports.submission != 0 {
			opt.Submission = append(opt.Submission, keyserver.Endpoint{Port: ports.submission, TLS: keyserver.StartTLS})
		}
	}
	if c.MTASTS.Mode != "" {
		opt.MTASTS = &keyserver.MTASTSPolicy{Mode: c.MTASTS.Mode, MX: c.MTASTS.MX, MaxAge: c.MTASTS.MaxAge}
	}
	return opt
}

// submissionEndpoint is autoconfig.submission as a keyserver endpoint;
// false if it is not set. c is validated, so the value parses.
func submissionEndpoint(c *Config) (keyserver.Endpoint, bool) {
	host, port, err := net.SplitHostPort(c.Autoconfig.Submission)
	if err != nil {
		return keyserver.Endpoint{}, false
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return keyserver.Endpoint{}, false
	}
	mode := keyserver.ImplicitTLS
	if c.Autoconfig.SubmissionTLS == submissionStartTLS {
		mode = keyserver.StartTLS
	}
	return keyserver.Endpoint{Host: host, Port: n, TLS: mode}, true
}

// listenPort is the port of a listen address, 0 if disabled or ephemeral.
func listenPort(addr string) int {
	if addr == "" {
		return 0
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// boundPort is the TCP port ln listens on, 0 for nil.
func boundPort(ln net.Listener) int {
	if ln == nil {
		return 0
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

func runDNS(_ context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("want exactly one DOMAIN")
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	opt := keyserverOptions(c, nil, nil, configPorts(c))
	keys, none, err := dkimDNSKeys(c)
	if err != nil {
		return err
	}
	opt.DKIM = keys
	recs, err := keyserver.DNSRecords(args[0], opt)
	if err != nil {
		return err
	}
	if d, err := policy.NormalizeDomain(args[0]); err == nil && slices.Contains(none, d) {
		recs += fmt.Sprintf("; %s has no DKIM key yet: sealmail serve makes one at start (or run sealmail %sdkim rotate %s); then run this again.\n",
			d, e.flags.hint(), d)
	}
	_, err = io.WriteString(e.io.out, recs)
	return err
}
