package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/keyserver"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/audit"
	imapserver "github.com/sealmail/sealmail/server/imap"
	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/server/listener"
	"github.com/sealmail/sealmail/server/mailbox"
	pop3server "github.com/sealmail/sealmail/server/pop3"
	smtpserver "github.com/sealmail/sealmail/server/smtp"
	"github.com/sealmail/sealmail/server/smtp/dkim"
	"github.com/sealmail/sealmail/store"
)

// shutdownTimeout bounds how long serve waits for transactions in flight
// after SIGINT/SIGTERM before it closes the store anyway.
const shutdownTimeout = 30 * time.Second

// service is one server or listener: SMTP, IMAP, HTTPS or the control
// socket.
type service struct {
	name     string
	addr     net.Addr                        // nil: no listener (not announced)
	mode     string                          // "STARTTLS", "TLS", …
	serve    func() error                    // nil: nothing to serve
	shutdown func(ctx context.Context) error // nil: the listener's server shuts it down
}

func runServe(ctx context.Context, e *env, args []string) (err error) {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	log := newLogger(c, e.io.err)
	if err := secureDataDir(c.DataDir, os.Geteuid(), log); err != nil {
		return err
	}
	fdLimit, err := listener.RaiseFileLimit()
	if err != nil {
		log.Warn("could not raise the file descriptor limit; connection limits may be lowered to fit", "err", err)
	}
	// The control socket goes first: it is the one place that tells a
	// second `serve` apart from a crashed one, and it must be bound before
	// any goroutine could create files (see listenControl's umask).
	ctlLn, err := listenControl(c.socketPath())
	if errors.Is(err, errServerRunning) {
		return fmt.Errorf("another sealmail serve is running on %s", c.DataDir)
	}
	if err != nil {
		return err
	}
	// Metrics hooks go into the store and the account service as they
	// are made; the endpoint serves only once everything runs.
	var (
		m        *metrics
		onCommit func(time.Duration, int)
		am       account.Metrics
	)
	if c.Listen.Metrics != "" {
		m = newMetrics()
		onCommit, am = m.onCommit, m
	}
	st, err := openStoreWith(c, log, onCommit)
	if err != nil {
		ctlLn.Close()
		os.Remove(c.socketPath())
		return err
	}
	// From here on every exit path closes the store last.
	var services []*service
	defer func() {
		if cerr := st.Close(); cerr != nil {
			log.Error("close store", "err", cerr)
			if err == nil {
				err = fmt.Errorf("close store: %w", cerr)
			}
		}
	}()
	// One account service for the control socket and every protocol, so
	// that a change made through the CLI reaches live sessions and the
	// unlock cache. It closes (ending sessions, wiping the cache) before
	// the store.
	// The audit log: every record's number and hash goes to the log, an
	// anchor outside the data directory.
	auditLog, err := audit.New(audit.Options{Store: st, Logger: log})
	if err != nil {
		ctlLn.Close()
		os.Remove(c.socketPath())
		return err
	}
	logAuditHead(e.ctx, auditLog, log, "at start")
	defer logAuditHead(context.Background(), auditLog, log, "at stop")
	// The retention service: every protocol and the account service use
	// its store, which stamps deliveries with their retention; it sweeps
	// on its interval until shutdown, which it finishes before the store
	// closes. Its acts go to the audit log. What it destroys of a
	// mailbox (a sweep, an erasure) reaches the IMAP and POP3 sessions
	// that have it open, once the protocols exist.
	var expunged atomic.Pointer[func(account string, mailbox uint64, uids []uint32, modseq uint64)]
	ret, err := newRetention(ctx, st, c, log, auditLog, true, func(account string, mailbox uint64, uids []uint32, modseq uint64) {
		if f := expunged.Load(); f != nil {
			(*f)(account, mailbox, uids, modseq)
		}
	})
	if err != nil {
		ctlLn.Close()
		os.Remove(c.socketPath())
		return err
	}
	// A long sweep logs how far it has come.
	retCtx, retCancel := context.WithCancel(store.WithProgress(context.Background(),
		logProgress(log, "retention sweep", "messages", sweepLogInterval)))
	retDone := make(chan struct{})
	go func() { defer close(retDone); ret.Run(retCtx) }()
	defer func() { retCancel(); <-retDone }()
	rst := ret.Store()
	// The spam classifier learns each account's filter key at its login
	// (server/filter), so the account service reports logins to it.
	fs, err := newFilter(c, st, log)
	if err != nil {
		ctlLn.Close()
		os.Remove(c.socketPath())
		return err
	}
	onLogin := func(ctx context.Context, account string, kr *crypto.Keyring) {
		if err := fs.Unlocked(ctx, account, kr); err != nil {
			log.Warn("spam filter: cannot open the account's filter key", "account", account, "err", err)
		}
	}
	accounts, err := newAccountsWith(rst, c, log, onLogin, auditLog, retentionGuard(ret), am)
	if err != nil {
		ctlLn.Close()
		os.Remove(c.socketPath())
		return err
	}
	defer accounts.Close()
	// DKIM keys for every domain that has none, before any mail can be
	// sent; then new selectors are looked for in DNS in the background.
	dkimCtx, dkimStop := context.WithCancel(context.Background())
	dkimKeys, dkimDone, err := startDKIM(dkimCtx, c, log)
	if err != nil {
		dkimStop()
		ctlLn.Close()
		os.Remove(c.socketPath())
		return err
	}
	defer func() {
		dkimStop()
		<-dkimDone
	}()
	inb, err := newInboundParts(c, st, fs, log, true)
	if err != nil {
		ctlLn.Close()
		os.Remove(c.socketPath())
		return err
	}
	defer inb.close() // before the store closes: the trace writer flushes
	// The escrow key in use: delivery seals producible mail to it as
	// well; escrow init through the control socket replaces it.
	escrow := &escrowKeys{st: st}
	svcs := &backend{cfg: c, st: st, accounts: accounts, audit: auditLog, ret: ret, log: log}
	ctl := newControlServer(ctlLn, &localAdmin{svc: accounts, st: st, inb: inb, audit: auditLog, escrow: escrow}, svcs, log)
	ctl.queue.audit = auditLog
	ctlCtx, ctlCancel := context.WithCancel(context.Background())
	defer ctlCancel()
	services = append(services, &service{
		name: "control", addr: ctlLn.Addr(), mode: "unix socket, owner only",
		serve:    func() error { ctl.serve(ctlCtx); return nil },
		shutdown: ctl.close,
	})

	tlsConf, err := serverTLS(c, log)
	if err == nil {
		var srv *servers
		srv, err = startServers(c, rst, accounts, inb, escrowPolicy{keys: escrow, policy: ret}, ret, tlsConf, log, fdLimit, &ctl.queue, m, dkimKeys)
		if err == nil {
			services = append(services, srv.services...)
			svcs.delivered = srv.delivered
			expunged.Store(&srv.expunged)
			svcs.status = newServerStatus(services, srv, tlsConf.cert)
			svcs.status.setQueue(srv.queueLen)
			svcs.status.setLastSweep(func() *sweepStatus {
				r := ret.LastSweep()
				if r == nil {
					return nil
				}
				return &sweepStatus{Started: r.Started, Finished: r.Started.Add(r.Duration), DurationMS: r.Duration.Milliseconds(),
					Destroyed: r.Messages, FromVault: r.FromVault, Bytes: r.Bytes}
			})
			if m != nil {
				m.setSources(&metricSources{guards: srv.guards, st: st, accounts: accounts})
			}
		}
	}
	if err != nil {
		for _, s := range services {
			s.shutdown(context.Background())
		}
		return err
	}
	warnInsecure(c, log)
	accts, err := st.PublicAccounts(ctx)
	if err != nil {
		log.Warn("cannot list accounts", "err", err)
	}
	for _, p := range missingAccounts(c, accts) {
		log.Warn(p.String())
	}

	errc := make(chan error, len(services))
	var wg sync.WaitGroup
	for _, s := range services {
		if s.serve == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serve(); err != nil {
				errc <- fmt.Errorf("%s on %s: %w", s.name, s.addr, err)
			}
		}()
	}
	for _, s := range services {
		if s.addr != nil {
			log.Info("listening", "proto", s.name, "addr", s.addr.String(), "mode", s.mode)
		}
	}
	announce(e.io.out, announcement{
		config: c, file: e.configFile, flags: e.flags.hint(), services: services,
		accounts: len(accts), cert: tlsConf.cert(),
	})
	log.Info("sealmail started in "+c.DataDir, "version", readBuildInfo().String())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info(fmt.Sprintf("shutting down (waiting up to %v for transactions in flight)", shutdownTimeout))
	case runErr = <-errc:
		log.Error("server failed; shutting down", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Stop accepting and drain every protocol at once; the store closes
	// after all of them (deferred above).
	var swg sync.WaitGroup
	for _, s := range services {
		if s.shutdown == nil {
			continue
		}
		swg.Add(1)
		go func() {
			defer swg.Done()
			if err := s.shutdown(sctx); err != nil {
				log.Warn("shutdown", "proto", s.name, "err", err)
			}
		}()
	}
	swg.Wait()
	ctlCancel()
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	log.Info("sealmail stopped")
	return nil
}

// listen binds addr, naming the key on failure.
func listen(key, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return ln, nil
}

// listeners are the bound TCP listeners; nil where disabled.
type listeners struct {
	smtp, submission, submissions, imap, imaps, https, metrics net.Listener
	pop3, pop3s                                                net.Listener
}

// bindListeners binds every configured listener, so a taken port fails
// start-up before any server exists. On error nothing stays bound.
func bindListeners(c *Config) (_ listeners, err error) {
	var l listeners
	var bound []net.Listener
	defer func() {
		if err != nil {
			for _, ln := range bound {
				ln.Close()
			}
		}
	}()
	for _, b := range []struct {
		key, addr string
		dst       *net.Listener
	}{
		{"listen.smtp", c.Listen.SMTP, &l.smtp},
		{"listen.submission", c.Listen.Submission, &l.submission},
		{"listen.submissions", c.Listen.Submissions, &l.submissions},
		{"listen.imap", c.Listen.IMAP, &l.imap},
		{"listen.imaps", c.Listen.IMAPS, &l.imaps},
		{"listen.https", c.Listen.HTTPS, &l.https},
		{"listen.metrics", c.Listen.Metrics, &l.metrics},
		{"listen.pop3", c.Listen.POP3, &l.pop3},
		{"listen.pop3s", c.Listen.POP3S, &l.pop3s},
	} {
		if b.addr == "" {
			continue
		}
		ln, err := listen(b.key, b.addr)
		if err != nil {
			return listeners{}, err
		}
		bound = append(bound, ln)
		*b.dst = ln
	}
	return l, nil
}

func (l listeners) close() {
	for _, ln := range []net.Listener{l.smtp, l.submission, l.submissions, l.imap, l.imaps, l.https, l.metrics, l.pop3, l.pop3s} {
		if ln != nil {
			ln.Close()
		}
	}
}

// servers are the protocol servers startServers built.
type servers struct {
	// services are the protocols and their listeners, not yet serving.
	services []*service
	// delivered tells IMAP of messages committed outside SMTP.
	delivered func([]store.Delivered)
	// expunged tells IMAP and POP3 of messages removed outside them
	// (the retention sweeper, an erasure), with the mailbox's
	// HIGHESTMODSEQ before the removal (0: not known).
	expunged func(account string, mailbox uint64, uids []uint32, modseq uint64)
	// guards are the guarded listeners by service name.
	guards map[string]*listener.Listener
	// limiters are the connection limiters by service name.
	limiters map[string]*listener.Limiter
	// queueLen counts the outbound queue's entries.
	queueLen func(ctx context.Context) (int, error)
}

// startServers builds SMTP (MX and submission), the outbound queue, IMAP,
// POP3 and HTTPS from the configuration, binds their listeners and guards them
// (server/listener) with the limits of the configuration, fitted into
// what fdLimit leaves. It returns them as services, not yet serving, and
// gives the queue to queues (the control socket's). On error nothing
// stays bound.
func startServers(c *Config, st store.Store, accounts *account.Service, inb *inboundParts, escrow smtpserver.Escrow, expiry pop3server.Expiry, tlsConf serverTLSConfigs, log *slog.Logger, fdLimit uint64, queues *queueHolder, m *metrics, keys *dkim.Keys) (_ *servers, err error) {
	lns, err := bindListeners(c)
	if err != nil {
		return nil, err
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			lns.close()
			for _, f := range cleanup {
				f()
			}
		}
	}()
	var imapMetrics wire.Metrics // nil unless metrics are on: no typed nil
	if m != nil {
		imapMetrics = m.imap()
	}
	// IMAP and POP3 read sealed mail through one mailbox service, so
	// that its bounds on decrypt workers and plaintext memory hold for
	// both together, and each tells the other what its sessions removed.
	mbx, err := mailbox.New(mailbox.Options{Store: st, Logger: log})
	if err != nil {
		return nil, err
	}
	var pop3Srv *pop3server.Server // set before any connection is served
	imapSrv, err := imapserver.New(imapserver.Options{
		Store:       st,
		Accounts:    accounts,
		Mailboxes:   mbx,
		TLSConfig:   tlsConf.client,
		Logger:      log,
		AppendLimit: int64(c.Limits.MessageBytes),
		Trainer:     trainer{inb.filter},
		HideVersion: c.IMAP.HideVersion,
		Metrics:     imapMetrics,
		OnExpunge: func(account string, mailbox uint64, uids []uint32) {
			pop3Srv.Expunged(account, mailbox, uids)
		},
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { imapSrv.Shutdown(context.Background()) })
	var smtpMetrics smtpserver.Metrics // nil unless metrics are on: no typed nil
	if m != nil {
		smtpMetrics = m
	}
	pop3Srv, err = pop3server.New(pop3server.Options{
		Store:     st,
		Accounts:  accounts,
		Mailboxes: mbx,
		TLSConfig: tlsConf.client,
		Changes:   imapSrv,
		Expiry:    expiry,
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { pop3Srv.Shutdown(context.Background()) })
	smtpSrv, err := smtpserver.New(smtpserver.Options{
		Metrics:    smtpMetrics,
		Hostname:   c.Hostname,
		Domains:    c.Domains,
		Store:      st,
		TLSConfig:  tlsConf.mx,
		Aliases:    c.Aliases,
		Postmaster: c.Postmaster,
		Logger:     log,
		// IDLE sessions learn of new mail as soon as it is committed.
		OnDeliver: imapSrv.Delivered,
		Limits:    c.Limits.smtp(),
		SpoolDir:  filepath.Join(c.DataDir, "spool"),
		Inbound:   inb.checker,
		Escrow:    escrow,
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { smtpSrv.Shutdown(context.Background()) })

	// The outbound queue runs whether or not clients can submit here: it
	// delivers what is already queued.
	q, pol, err := startQueue(c, st, inb.res, escrow, log, imapSrv.Delivered)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { q.Shutdown(context.Background()); pol.Close() })
	transforms, err := sendTransforms(st, keys, log)
	if err != nil {
		return nil, err
	}
	queues.set(q)
	var subSrv *smtpserver.Server
	if lns.submission != nil || lns.submissions != nil {
		subSrv, err = smtpserver.New(smtpserver.Options{
			Hostname:   c.Hostname,
			Domains:    c.Domains,
			Store:      st,
			TLSConfig:  tlsConf.client, // people log in here: no CBC suites
			Aliases:    c.Aliases,
			Postmaster: c.Postmaster,
			Logger:     log,
			OnDeliver:  imapSrv.Delivered,
			Limits:     c.Limits.smtp(),
			SpoolDir:   filepath.Join(c.DataDir, "spool", "submission"),
			Escrow:     escrow, // local copies of submitted mail, as the MX's
			Submission: &smtpserver.SubmissionOptions{
				Accounts:     accounts,
				Queue:        q,
				HideClientIP: c.Submission.HideClientIP,
				Transforms:   transforms,
			},
		})
		if err != nil {
			return nil, err
		}
		cleanup = append(cleanup, func() { subSrv.Shutdown(context.Background()) })
	}

	lim := connectionLimiters(c, lns, fdLimit, log)
	expunged := func(account string, mailbox uint64, uids []uint32, modseq uint64) {
		imapSrv.ExpungedAbove(account, mailbox, uids, modseq)
		pop3Srv.Expunged(account, mailbox, uids)
	}
	out := &servers{delivered: imapSrv.Delivered, expunged: expunged, queueLen: q.Len, guards: map[string]*listener.Listener{}, limiters: map[string]*listener.Limiter{}}
	guard := func(name string, ln net.Listener, l *listener.Limiter, tlsConf *tls.Config, refuse func(net.Conn)) net.Listener {
		gl := listener.New(ln, listener.Options{
			Name:             name,
			Limiter:          l,
			TLSConfig:        tlsConf,
			HandshakeTimeout: c.Limits.TLSHandshakeTimeout,
			IdleTimeout:      c.Limits.IdleTimeout,
			Refuse:           refuse,
			Logger:           log,
		})
		out.guards[name], out.limiters[name] = gl, l
		return gl
	}

	// The SMTP and IMAP servers always get a service, even without a
	// listener, so that shutdown releases them.
	smtpSvc := &service{name: "smtp", shutdown: smtpSrv.Shutdown}
	if ln := lns.smtp; ln != nil {
		gl := guard("smtp", ln, lim.smtp, nil, smtpSrv.Refuse)
		smtpSvc.addr, smtpSvc.mode = ln.Addr(), "STARTTLS"
		smtpSvc.serve = func() error { return smtpSrv.Serve(gl) }
	}
	out.services = append(out.services, smtpSvc)
	// One submission server serves both submission listeners; the queue
	// stops after it, so that what it committed last is scheduled.
	out.services = append(out.services, &service{name: "submission-server", shutdown: func(ctx context.Context) error {
		var err error
		if subSrv != nil {
			err = subSrv.Shutdown(ctx)
		}
		err = errors.Join(err, q.Shutdown(ctx))
		return errors.Join(err, pol.Close())
	}})
	if ln := lns.submission; ln != nil {
		gl := guard("submission", ln, lim.submission, nil, subSrv.Refuse)
		out.services = append(out.services, &service{name: "submission", addr: ln.Addr(), mode: "STARTTLS",
			serve: func() error { return subSrv.Serve(gl) }})
	}
	if ln := lns.submissions; ln != nil {
		gl := guard("submissions", ln, lim.submissions, tlsConf.client, nil)
		out.services = append(out.services, &service{name: "submissions", addr: ln.Addr(), mode: "TLS",
			serve: func() error { return subSrv.Serve(gl) }})
	}
	// One IMAP server serves both IMAP listeners; Shutdown stops both.
	out.services = append(out.services, &service{name: "imap-server", shutdown: imapSrv.Shutdown})
	if ln := lns.imap; ln != nil {
		gl := guard("imap", ln, lim.imap, nil, imapSrv.Refuse)
		out.services = append(out.services, &service{name: "imap", addr: ln.Addr(), mode: "STARTTLS",
			serve: func() error { return imapSrv.Serve(gl) }})
	}
	if ln := lns.imaps; ln != nil {
		gl := guard("imaps", ln, lim.imaps, tlsConf.client, nil)
		out.services = append(out.services, &service{name: "imaps", addr: ln.Addr(), mode: "TLS",
			serve: func() error { return imapSrv.Serve(gl) }})
	}
	if ln := lns.metrics; ln != nil && m != nil {
		// A scraper or two: a small cap of its own, no TLS (loopback or
		// the operator's network; see metrics.allow_remote).
		l := listener.NewLimiter(listener.LimiterOptions{Connections: metricsConnections, PerClient: metricsConnections})
		gl := guard("metrics", ln, l, nil, nil)
		hs := metricsServer(m, log)
		out.services = append(out.services, &service{name: "metrics", addr: ln.Addr(), mode: "HTTP " + metricsPath,
			serve: func() error { return serveMetrics(hs, gl) }, shutdown: hs.Shutdown})
	}
	// One POP3 server serves both POP3 listeners; Shutdown stops both.
	out.services = append(out.services, &service{name: "pop3-server", shutdown: pop3Srv.Shutdown})
	if ln := lns.pop3; ln != nil {
		gl := guard("pop3", ln, lim.pop3, nil, pop3Srv.Refuse)
		out.services = append(out.services, &service{name: "pop3", addr: ln.Addr(), mode: "STLS",
			serve: func() error { return pop3Srv.Serve(gl) }})
	}
	if ln := lns.pop3s; ln != nil {
		gl := guard("pop3s", ln, lim.pop3s, tlsConf.client, nil)
		out.services = append(out.services, &service{name: "pop3s", addr: ln.Addr(), mode: "TLS",
			serve: func() error { return pop3Srv.Serve(gl) }})
	}
	if ln := lns.https; ln != nil {
		// Autoconfig advertises the IMAP, POP3 and submission ports
		// actually bound (the configured ones, or what the kernel chose
		// for ":0").
		ports := clientPorts{imap: boundPort(lns.imap), imaps: boundPort(lns.imaps),
			submission: boundPort(lns.submission), submissions: boundPort(lns.submissions),
			pop3: boundPort(lns.pop3), pop3s: boundPort(lns.pop3s)}
		h, err := keyserver.New(keyserverOptions(c, st, log, ports))
		if err != nil {
			return nil, err
		}
		hs := keyserver.NewServer(h, keyserver.ServerOptions{
			TLSConfig:     tlsConf.https,
			HeaderTimeout: c.Limits.HTTPSHeaderTimeout,
			Logger:        log,
		})
		gl := guard("https", ln, lim.https, hs.TLSConfig, nil)
		out.services = append(out.services, &service{name: "https", addr: ln.Addr(), mode: "TLS",
			serve: func() error {
				err := hs.Serve(gl)
				if errors.Is(err, http.ErrServerClosed) {
					return nil
				}
				return err
			},
			shutdown: hs.Shutdown})
	}
	return out, nil
}

// limiters are the connection caps of each listener. Each listener has
// its own, so that a flood on one port (silent clients on IMAPS) never
// stops another from accepting (IMAP with STARTTLS included).
type limiters struct {
	smtp, submission, submissions, imap, imaps, https *listener.Limiter
	pop3, pop3s                                       *listener.Limiter
}

// connectionLimiters makes the limiters from the configured caps, scaled
// down (with a warning) if the listeners that are bound could together
// hold more descriptors than fdLimit leaves once listener.Reserve is kept
// free for the control socket, the store and certificates.
func connectionLimiters(c *Config, lns listeners, fdLimit uint64, log *slog.Logger) limiters {
	l := c.Limits
	bound := []struct {
		name  string
		ln    net.Listener
		total int
	}{
		{"smtp", lns.smtp, l.Connections},
		{"submission", lns.submission, l.SubmissionConnections},
		{"submissions", lns.submissions, l.SubmissionConnections},
		{"imap", lns.imap, l.IMAPConnections},
		{"imaps", lns.imaps, l.IMAPConnections},
		{"https", lns.https, l.HTTPSConnections},
		{"pop3", lns.pop3, l.POP3Connections},
		{"pop3s", lns.pop3s, l.POP3Connections},
	}
	want := make([]int, len(bound)) // 0 where not bound
	for i, b := range bound {
		if b.ln != nil {
			want[i] = b.total
		}
	}
	got := want
	if open, err := listener.OpenFiles(); err != nil {
		log.Warn("cannot count open files; connection limits are not fitted to the descriptor limit", "err", err)
	} else if fdLimit > 0 {
		budget := listener.ConnectionBudget(fdLimit, open)
		var scaled bool
		if got, scaled = listener.Share(budget, want); scaled {
			var parts []string
			for i, b := range bound {
				parts = append(parts, fmt.Sprintf("%s %d", b.name, got[i]))
			}
			log.Warn(fmt.Sprintf("the file descriptor limit (%d, %d open) leaves room for %d connections: limits lowered to %s; raise RLIMIT_NOFILE (systemd: LimitNOFILE=) to lift them",
				fdLimit, open, budget, strings.Join(parts, ", ")))
		}
	}
	mk := func(total, perIP int) *listener.Limiter {
		total = max(total, 1)
		return listener.NewLimiter(listener.LimiterOptions{Connections: total, PerClient: min(perIP, total)})
	}
	return limiters{
		smtp:        mk(got[0], l.ConnectionsPerIP),
		submission:  mk(got[1], l.SubmissionConnectionsPerIP),
		submissions: mk(got[2], l.SubmissionConnectionsPerIP),
		imap:        mk(got[3], l.IMAPConnectionsPerIP),
		imaps:       mk(got[4], l.IMAPConnectionsPerIP),
		https:       mk(got[5], l.HTTPSConnectionsPerIP),
		pop3:        mk(got[6], l.POP3ConnectionsPerIP),
		pop3s:       mk(got[7], l.POP3ConnectionsPerIP),
	}
}

// warnInsecure logs a warning for each insecure choice in c.
func warnInsecure(c *Config, log *slog.Logger) {
	selfSigned := c.TLS.CertFile == "" && !c.TLS.ACME
	for _, l := range []struct{ key, addr string }{
		{"listen.smtp", c.Listen.SMTP}, {"listen.submission", c.Listen.Submission},
		{"listen.submissions", c.Listen.Submissions}, {"listen.imap", c.Listen.IMAP},
		{"listen.imaps", c.Listen.IMAPS}, {"listen.https", c.Listen.HTTPS},
		{"listen.pop3", c.Listen.POP3}, {"listen.pop3s", c.Listen.POP3S},
	} {
		if l.addr == "" || isLoopback(l.addr) {
			continue
		}
		if selfSigned {
			log.Warn(fmt.Sprintf("%s %s: listener on a public address uses a self-signed certificate", l.key, l.addr))
		}
		if l.key == "listen.smtp" || l.key == "listen.imap" || l.key == "listen.submission" || l.key == "listen.pop3" {
			log.Warn(fmt.Sprintf("%s %s: listener on a public address starts in plaintext; clients must use STARTTLS (IMAP and POP3 refuse login without it)", l.key, l.addr))
		}
	}
	if c.Listen.Metrics != "" && !isLoopback(c.Listen.Metrics) {
		log.Warn(fmt.Sprintf("listen.metrics %s: metrics are served over plain HTTP on a non-loopback address (metrics.allow_remote); firewall the port", c.Listen.Metrics))
	}
	if c.TLS.ACME && !strings.HasSuffix(c.Listen.HTTPS, ":443") {
		log.Warn(fmt.Sprintf("tls.acme answers the tls-alpn-01 challenge on listen.https (%s), which the CA reaches on port 443 only", c.Listen.HTTPS))
	}
	if c.kdfBelowDefault() {
		p, d := c.kdfParams(), crypto.DefaultKDF()
		log.Warn(fmt.Sprintf("kdf.time/kdf.memory_kib (%d passes, %d KiB) lower the password hashing cost below the default (%d passes, %d KiB); new passwords are cheaper to guess (for tests only)",
			p.Time, p.MemoryKiB, d.Time, d.MemoryKiB))
	}
}

// isLoopback reports whether a listen address binds only the loopback
// interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readyLine ends the start-up announcement; tests wait for it.
const readyLine = "stop with Ctrl-C or SIGTERM"

// announcement is what serve prints once on standard output when it is
// ready.
type announcement struct {
	config   *Config
	file     string // the configuration file; "" for none
	flags    string // global flags a hint must repeat ("--data-dir DIR ")
	services []*service
	accounts int // accounts in the store
	cert     certInfo
}

// announce prints where the server listens, which certificate it uses
// (with its path and fingerprint, so that a client's warning about a
// self-signed certificate can be checked), and, while there are no
// accounts, how to add one.
func announce(w io.Writer, a announcement) {
	var b strings.Builder
	c, file := a.config, a.file
	if file == "" {
		file = "built-in defaults and SEALMAIL_* environment (no " + defaultConfigFile + ")"
	}
	fmt.Fprintf(&b, "sealmail %s\nconfiguration: %s\ndata: %s\n", readBuildInfo().String(), file, c.DataDir)
	b.WriteString("sealmail listens on:\n")
	width := 0
	for _, s := range a.services {
		if s.addr != nil {
			width = max(width, len(s.name))
		}
	}
	for _, s := range a.services {
		if s.addr != nil {
			fmt.Fprintf(&b, "  %-*s %s (%s)\n", width, s.name, s.addr, s.mode)
		}
	}
	switch ci := a.cert; ci.Source {
	case "acme":
		fmt.Fprintf(&b, "TLS certificate: from ACME, cached in %s\n", c.acmeDir())
	case "":
	default:
		fmt.Fprintf(&b, "TLS certificate: %s, %s\n  SHA-256 fingerprint: %s\n  names: %s\n  expires: %s\n",
			ci.Source, ci.Path, ci.Fingerprint, strings.Join(ci.Names, ", "), ci.NotAfter.UTC().Format(time.DateTime))
	}
	if a.accounts == 0 {
		fmt.Fprintf(&b, "no accounts yet; add a user: sealmail %suser add you@%s\n", a.flags, c.Domains[0])
	} else {
		fmt.Fprintf(&b, "accounts: %d\n", a.accounts)
	}
	b.WriteString(readyLine + "\n")
	io.WriteString(w, b.String())
}
