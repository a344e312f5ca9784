package smtp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// maxPathLen is RFC 5321 §4.5.3.1.3's limit on a reverse or forward path.
const maxPathLen = 256

// session is one connection's SMTP state between greetings. go-smtp calls
// its methods from the connection's goroutine, except Data for BDAT, which
// runs on a goroutine of its own while the connection goroutine may call
// Reset or Logout: the transaction fields are therefore guarded by mu.
type session struct {
	s      *Server      // immutable
	c      *gosmtp.Conn // immutable
	tc     *trackedConn // immutable; may be nil
	log    *slog.Logger // immutable; carries cid and remote
	ip     net.IP       // immutable; may be nil
	helo   string       // immutable
	tls    bool         // immutable: STARTTLS makes a new session
	ctx    context.Context
	cancel context.CancelFunc // cancels ctx on Logout

	mu sync.Mutex
	tx transaction // guarded by mu
}

// transaction is one MAIL … DATA exchange.
type transaction struct {
	active   bool
	from     string
	utf8     bool
	sizeHint int64                 // MAIL FROM SIZE=, 0 if absent
	rcptText []string              // forward paths as given, for the Received field
	accounts []store.PublicAccount // distinct, in RCPT order
}

func newSession(s *Server, c *gosmtp.Conn) *session {
	nc := c.Conn()
	var ip net.IP
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.IP
	}
	_, isTLS := c.TLSConnectionState()
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{
		s:      s,
		c:      c,
		tc:     trackedOf(nc),
		ip:     ip,
		helo:   c.Hostname(),
		tls:    isTLS,
		ctx:    ctx,
		cancel: cancel,
		log:    s.log.With(keyCID, s.newCID(), keyRemote, nc.RemoteAddr().String()),
	}
	ss.log.Debug("session", keyHelo, sanitize(ss.helo), "tls", isTLS)
	return ss
}

// Reset implements gosmtp.Session. go-smtp calls it for RSET, EHLO, at
// the end of a DATA or BDAT transfer (after its reply) and on close.
func (ss *session) Reset() {
	ss.mu.Lock()
	ss.tx = transaction{}
	ss.mu.Unlock()
	if ss.tc != nil {
		ss.tc.endTx()
	}
}

// Logout implements gosmtp.Session.
func (ss *session) Logout() error {
	ss.cancel()
	ss.Reset()
	return nil
}

// Mail implements gosmtp.Session.
func (ss *session) Mail(from string, opts *gosmtp.MailOptions) error {
	if ss.s.state.Load() != serverRunning {
		return errShutdown
	}
	utf8Req := opts != nil && opts.UTF8
	if from != "" {
		if err := checkPath(from, utf8Req); err != nil {
			ss.log.Debug("MAIL refused", keyDomain, sanitize(domainOf(from)))
			return err
		}
	}
	tx := transaction{active: true, from: from, utf8: utf8Req}
	if opts != nil {
		tx.sizeHint = opts.Size
	}
	// A transaction open when Shutdown starts may finish; none may begin
	// after it.
	if ss.tc != nil && !ss.tc.beginTx() {
		return errShutdown
	}
	ss.mu.Lock()
	ss.tx = tx
	ss.mu.Unlock()
	return nil
}

// checkPath refuses envelope addresses that could not be written into a
// header safely: too long, control characters, invalid UTF-8, or non-ASCII
// without SMTPUTF8 (RFC 6531 §3.4).
func checkPath(addr string, utf8OK bool) error {
	if len(addr) > maxPathLen || !utf8.ValidString(addr) {
		return errBadSender
	}
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		if c < 0x20 || c == 0x7f {
			return errBadSender
		}
		if c >= 0x80 && !utf8OK {
			return errNeedUTF8
		}
	}
	return nil
}

// Rcpt implements gosmtp.Session. Every check happens here, before any
// data is read: relaying, unknown users and full mailboxes are refused per
// recipient.
func (ss *session) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	ss.mu.Lock()
	tx := ss.tx
	ss.mu.Unlock()
	if !tx.active {
		return errNoRcpt // go-smtp checks MAIL first; kept for safety
	}
	if len(to) > maxPathLen || !utf8.ValidString(to) {
		return errBadRcpt
	}
	if !tx.utf8 {
		for i := 0; i < len(to); i++ {
			if to[i] >= 0x80 {
				return errNeedUTF8
			}
		}
	}
	ctx, cancel := context.WithTimeout(ss.ctx, ss.s.lim.CommandTimeout)
	defer cancel()
	accounts, err := ss.s.rcpts.Resolve(ctx, ss.s.opt.Store, to)
	if err != nil {
		return ss.rcptError(to, err)
	}
	for _, a := range accounts {
		if err := quotaCheck(a, tx.sizeHint); err != nil {
			ss.log.Info("RCPT refused: quota", keyAccount, a.Address, keyResult, resultText(err))
			return err
		}
	}

	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.tx.active {
		return errNoRcpt
	}
	ss.tx.rcptText = append(ss.tx.rcptText, to)
	for _, a := range accounts {
		if !slices.ContainsFunc(ss.tx.accounts, func(b store.PublicAccount) bool { return b.Address == a.Address }) {
			ss.tx.accounts = append(ss.tx.accounts, a)
		}
	}
	return nil
}

// rcptError maps a resolution failure to its reply and logs it. Only the
// domain is logged for refused recipients: their local parts are the
// sender's business.
func (ss *session) rcptError(to string, err error) error {
	var reply *gosmtp.SMTPError
	switch {
	case errors.Is(err, policy.ErrRelayDenied):
		reply = errRelayDenied
	case errors.Is(err, policy.ErrNoSuchUser):
		reply = errNoSuchUser
	case errors.Is(err, policy.ErrBadAddress):
		reply = errBadRcpt
	default:
		ss.log.Error("RCPT failed", keyDomain, sanitize(domainOf(to)), keyErr, err)
		return errTemporary
	}
	ss.log.Info("RCPT refused", keyDomain, sanitize(domainOf(to)), keyResult, resultText(reply))
	return reply
}

// sealOverhead estimates what sealing adds to a message (key packet,
// packet headers, integrity tag), for quota checks before the message
// exists. Compression is not counted on: sealed mail is rarely smaller.
const sealOverhead = 1024

// quotaCheck refuses a recipient whose mailbox is full, or, when the
// client announced a size, cannot take that message now (452 4.2.2) or
// ever (552 5.2.2). The store enforces the quota again at commit.
func quotaCheck(a store.PublicAccount, sizeHint int64) *gosmtp.SMTPError {
	if a.QuotaBytes <= 0 {
		return nil
	}
	if sizeHint > 0 && sizeHint+sealOverhead > a.QuotaBytes {
		return errNeverFits
	}
	if a.UsedBytes+sizeHint >= a.QuotaBytes {
		return errMailboxFull
	}
	return nil
}

// resultText renders a reply for logs: "550 5.7.1"; nil is success.
func resultText(se *gosmtp.SMTPError) string {
	if se == nil {
		return "250 2.0.0"
	}
	ec := se.EnhancedCode
	if ec == gosmtp.EnhancedCodeNotSet || ec == gosmtp.NoEnhancedCode {
		return strconv.Itoa(se.Code)
	}
	return fmt.Sprintf("%d %d.%d.%d", se.Code, ec[0], ec[1], ec[2])
}
