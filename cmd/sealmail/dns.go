package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"

	"github.com/sealmail/sealmail/keyserver"
)

// keyserverOptions builds the keyserver's options from the configuration.
// keys may be nil (for `sealmail dns`, which needs no store).
func keyserverOptions(c *Config, keys keyserver.KeyLookup, log *slog.Logger) keyserver.Options {
	opt := keyserver.Options{
		Keys:     keys,
		Hostname: c.Hostname,
		Domains:  c.Domains,
		Logger:   log,
	}
	// Autoconfig describes the listeners as clients reach them; sealmail
	// assumes the listen ports are the public ones.
	if p := listenPort(c.Listen.IMAPS); p != 0 {
		opt.IMAP = append(opt.IMAP, keyserver.Endpoint{Port: p, TLS: keyserver.ImplicitTLS})
	}
	if p := listenPort(c.Listen.IMAP); p != 0 {
		opt.IMAP = append(opt.IMAP, keyserver.Endpoint{Port: p, TLS: keyserver.StartTLS})
	}
	if c.MTASTS.Mode != "" {
		opt.MTASTS = &keyserver.MTASTSPolicy{Mode: c.MTASTS.Mode, MX: c.MTASTS.MX, MaxAge: c.MTASTS.MaxAge}
	}
	return opt
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

func runDNS(_ context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("want exactly one DOMAIN")
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	recs, err := keyserver.DNSRecords(args[0], keyserverOptions(c, nil, nil))
	if err != nil {
		return err
	}
	_, err = io.WriteString(e.io.out, recs)
	if err == nil && len(recs) > 0 && recs[len(recs)-1] != '\n' {
		_, err = fmt.Fprintln(e.io.out)
	}
	return err
}
