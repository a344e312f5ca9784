// Package sink runs an SMTP server on 127.0.0.1 that takes mail and
// remembers it: the remote MX, transport or smarthost of the outbound
// queue's tests and of cmd/sealbench's delivery benchmark. It is
// go-smtp's server with a programmable backend: each RCPT and each end
// of data can be answered as a test wants, STARTTLS, DSN, SMTPUTF8,
// REQUIRETLS and AUTH offered or not.
package sink

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configures Start. The zero value accepts every message
// without TLS, DSN or AUTH.
type Options struct {
	// TLSConfig offers STARTTLS. nil: not offered.
	TLSConfig *tls.Config
	// Offer these extensions.
	DSN, SMTPUTF8, RequireTLS bool
	// Auth, if not nil, offers AUTH PLAIN (also without TLS) and
	// checks credentials.
	Auth func(user, pass string) bool
	// Mail, Rcpt and Data decide MAIL, each RCPT and the end of data:
	// nil accepts; an error from Reply is sent as it is. Data sees the
	// message received (Data set even without KeepData).
	Mail func(from string) error
	Rcpt func(to string) error
	Data func(m *Message) error
	// KeepData keeps each message's bytes in Message.Data; otherwise
	// only its size and Message-ID are kept (benchmarks).
	KeepData bool
	// MaxMessageBytes is announced in SIZE. 0: 64 MiB.
	MaxMessageBytes int64
}

// Message is one message the sink took (its end of data got 250).
type Message struct {
	From       string
	Rcpts      []string
	Notify     [][]string // per recipient, the NOTIFY it came with
	ORcpt      []string   // per recipient, the ORCPT address
	Ret        string
	EnvID      string
	UTF8       bool
	RequireTLS bool
	Size       int64
	MessageID  string // the Message-ID field's value
	Data       []byte // with KeepData
	TLS        bool   // it came over TLS
	Auth       string // the user it authenticated as
	Remote     string // the client's address
	// Began is when the sink took its MAIL command: before the client
	// could have read the 354 that lets it send the data, so while the
	// client was alive. Time is when its data ended, which for a client
	// killed after sending the data can be later than its death.
	Began time.Time
	Time  time.Time
}

// Reply returns an error the sink sends as the reply code, enhanced
// status code ("5.1.1") and text.
func Reply(code int, enhanced, text string) error {
	e := &smtp.SMTPError{Code: code, Message: text}
	if p := strings.Split(enhanced, "."); len(p) == 3 {
		for i := range p {
			e.EnhancedCode[i], _ = strconv.Atoi(p[i])
		}
	} else {
		e.EnhancedCode = smtp.NoEnhancedCode
	}
	return e
}

// Server is a running sink.
type Server struct {
	// Addr is its host:port.
	Addr string

	opt Options
	srv *smtp.Server

	mu       sync.Mutex
	msgs     []Message
	arrived  chan struct{} // closed and replaced when a message arrives
	sessions int           // connections seen
}

// Start runs a sink on a free port of 127.0.0.1 until Close.
func Start(opt Options) (*Server, error) { return StartOn("127.0.0.1:0", opt) }

// StartOn runs a sink on addr until Close.
func StartOn(addr string, opt Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), opt: opt, arrived: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink.test"
	srv.TLSConfig = opt.TLSConfig
	srv.EnableDSN = opt.DSN
	srv.EnableSMTPUTF8 = opt.SMTPUTF8
	srv.EnableREQUIRETLS = opt.RequireTLS
	srv.AllowInsecureAuth = true
	srv.MaxRecipients = 1000
	srv.MaxMessageBytes = opt.MaxMessageBytes
	if srv.MaxMessageBytes == 0 {
		srv.MaxMessageBytes = 64 << 20
	}
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv
	go srv.Serve(ln)
	return s, nil
}

// Close stops the sink.
func (s *Server) Close() error { return s.srv.Close() }

// Messages returns what the sink took so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Count returns how many messages the sink took.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// Connections returns how many connections the sink accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Wait waits until the sink has taken at least n messages, or d has
// passed, and returns how many it has.
func (s *Server) Wait(n int, d time.Duration) int {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, ch := len(s.msgs), s.arrived
		s.mu.Unlock()
		if got >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			return got
		}
	}
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	_, tlsOn := c.TLSConnectionState()
	return &session{s: s, conn: c, tls: tlsOn}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	tls  bool
	auth string
	m    *Message
}

func (ss *session) Reset()        { ss.m = nil }
func (ss *session) Logout() error { return nil }

func (ss *session) AuthMechanisms() []string {
	if ss.s.opt.Auth == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.s.opt.Auth == nil || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if !ss.s.opt.Auth(user, pass) {
			return smtp.ErrAuthFailed
		}
		ss.auth = user
		return nil
	}), nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.opt.Auth != nil && ss.auth == "" {
		return smtp.ErrAuthRequired
	}
	if f := ss.s.opt.Mail; f != nil {
		if err := f(from); err != nil {
			return err
		}
	}
	_, tlsOn := ss.conn.TLSConnectionState()
	m := &Message{From: from, TLS: tlsOn, Auth: ss.auth, Remote: ss.conn.Conn().RemoteAddr().String(), Began: time.Now()}
	if opts != nil {
		m.Ret, m.EnvID, m.UTF8, m.RequireTLS = string(opts.Return), opts.EnvelopeID, opts.UTF8, opts.RequireTLS
	}
	ss.m = m
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if ss.m == nil {
		return Reply(503, "5.5.1", "MAIL first")
	}
	if f := ss.s.opt.Rcpt; f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	ss.m.Rcpts = append(ss.m.Rcpts, to)
	var notify []string
	orcpt := ""
	if opts != nil {
		for _, n := range opts.Notify {
			notify = append(notify, string(n))
		}
		orcpt = opts.OriginalRecipient
	}
	ss.m.Notify = append(ss.m.Notify, notify)
	ss.m.ORcpt = append(ss.m.ORcpt, orcpt)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if ss.m == nil || len(ss.m.Rcpts) == 0 {
		io.Copy(io.Discard, r)
		return Reply(503, "5.5.1", "no recipients")
	}
	var b bytes.Buffer
	n, err := io.Copy(&b, r)
	if err != nil {
		return err
	}
	m := *ss.m
	m.Size = n
	m.Time = time.Now()
	if hm, err := mail.ReadMessage(bytes.NewReader(b.Bytes())); err == nil {
		m.MessageID = strings.TrimSpace(hm.Header.Get("Message-Id"))
	}
	m.Data = b.Bytes()
	if f := ss.s.opt.Data; f != nil {
		if err := f(&m); err != nil {
			return err
		}
	}
	if !ss.s.opt.KeepData {
		m.Data = nil
	}
	if m.RequireTLS && !m.TLS {
		return errors.New("sink: REQUIRETLS without TLS")
	}
	s := ss.s
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	return nil
}
