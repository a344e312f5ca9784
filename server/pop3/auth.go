package pop3

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/sealmail/sealmail/server/account"
)

// maxCredentialBytes bounds a user name or secret (the account service's
// bound too).
const maxCredentialBytes = 1024

// expire is the EXPIRE capability (RFC 2449 §6.7): the minimum number of
// days the server keeps a message (Options.Expiry), or NEVER if it never
// deletes mail on its own. Before login it is the fewest days of any
// account, with USER: the account's own follows its login. The sweeper
// deletes by retention policy, for every protocol alike, so a POP3
// client that leaves mail on the server learns that it may go.
func (s *session) expire() string {
	if s.srv.expiry == nil {
		return "EXPIRE NEVER"
	}
	account := ""
	if s.drop != nil {
		s.mu.Lock()
		account = s.account
		s.mu.Unlock()
	}
	days, ok := s.srv.expiry.ExpireDays(account)
	switch {
	case !ok:
		return "EXPIRE NEVER"
	case account == "":
		return fmt.Sprintf("EXPIRE %d USER", days)
	}
	return fmt.Sprintf("EXPIRE %d", days)
}

// capa implements CAPA (RFC 2449 §5), in both states. USER and SASL are
// offered only where a login may happen: on TLS, before login. STLS only
// on a plaintext connection with TLS configured. LOGIN-DELAY is not
// offered: the account service throttles failed attempts, it imposes no
// delay between successful logins. EXPIRE says how long the server keeps
// mail before its retention sweeper may destroy it (expire).
func (s *session) capa(cmd *command) *Error {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	s.c.ok("Capability list follows")
	s.c.line("TOP")
	s.c.line("UIDL")
	s.c.line("RESP-CODES")
	s.c.line("AUTH-RESP-CODE")
	s.c.line("PIPELINING")
	s.c.line(s.expire())
	if s.drop == nil {
		if s.tls {
			s.c.line("USER")
			s.c.line("SASL PLAIN")
		} else if s.srv.tls != nil {
			s.c.line("STLS")
		}
	}
	s.c.end()
	return nil
}

// userCmd implements USER (RFC 1939 §7). Before TLS it is refused, so
// that no client is led to send its password in the clear.
func (s *session) userCmd(cmd *command) *Error {
	if !s.tls {
		return errNeedTLS
	}
	if len(cmd.rest) == 0 || len(cmd.rest) > maxCredentialBytes {
		return errSyntax
	}
	s.user = string(cmd.rest)
	s.c.ok("Send PASS")
	return nil
}

// pass implements PASS (RFC 1939 §7): the rest of the line is the
// password, spaces included.
func (s *session) pass(cmd *command) *Error {
	secret := bytes.Clone(cmd.rest)
	wipe(cmd.rest)
	defer wipe(secret)
	if !s.tls {
		return errNeedTLS
	}
	user := s.user
	s.user = "" // a failed PASS needs a new USER
	if user == "" {
		return errNoUser
	}
	if len(secret) == 0 || len(secret) > maxCredentialBytes {
		return errAuthFailed
	}
	return s.doLogin(user, secret)
}

// auth implements AUTH (RFC 5034) with the PLAIN mechanism (RFC 4616).
// AUTH without arguments lists the mechanisms, as clients before RFC
// 5034 expect.
func (s *session) auth(cmd *command) *Error {
	if len(cmd.args) == 0 {
		s.c.ok("Mechanisms follow")
		if s.tls {
			s.c.line("PLAIN")
		}
		s.c.end()
		return nil
	}
	plainMech := bytes.EqualFold(cmd.args[0], []byte("PLAIN"))
	var initial []byte
	if len(cmd.args) == 2 {
		initial = bytes.Clone(cmd.args[1])
		defer wipe(initial)
	}
	wipe(cmd.rest) // the arguments are views of it
	if !s.tls {
		return errNeedTLS
	}
	if !plainMech {
		return errUnknownMech
	}
	s.user = ""
	if initial == nil {
		// RFC 5034 §4: an empty challenge, then the response on a line
		// of its own; "*" cancels.
		s.c.bw.WriteString("+ \r\n")
		if err := s.c.bw.Flush(); err != nil {
			return &Error{Text: "Write failed", Close: true}
		}
		line, err := s.c.readLine()
		if err != nil {
			if errors.Is(err, errLong) {
				return errBadPlain
			}
			return &Error{Text: "Authentication aborted", Close: true}
		}
		initial = bytes.Clone(line)
		wipe(line)
		defer wipe(initial)
		if string(initial) == "*" {
			return errAuthCanceled
		}
	} else if string(initial) == "=" {
		initial = initial[:0] // RFC 5034 §4: "=" is an empty response
	}
	plain := make([]byte, base64.StdEncoding.DecodedLen(len(initial)))
	defer wipe(plain)
	n, err := base64.StdEncoding.Decode(plain, initial)
	if err != nil {
		return errBadBase64
	}
	// RFC 4616 §2: [authzid] NUL authcid NUL passwd.
	parts := bytes.Split(plain[:n], []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 || len(parts[2]) == 0 ||
		len(parts[1]) > maxCredentialBytes || len(parts[2]) > maxCredentialBytes {
		return errBadPlain
	}
	user := string(parts[1])
	if len(parts[0]) != 0 && string(parts[0]) != user {
		return errAuthzid
	}
	return s.doLogin(user, parts[2])
}

// doLogin unlocks the account and opens its INBOX (the TRANSACTION state).
func (s *session) doLogin(user string, secret []byte) *Error {
	ctx, cancel := context.WithCancel(s.srv.ctx)
	defer cancel()
	// A client that hangs up stops the wait (the failure delay, the
	// unlock queue): watch the connection while the login runs.
	stopWatch := s.watchHangup(cancel)
	start := time.Now()
	login, err := s.srv.accounts.Login(ctx, account.LoginRequest{
		Remote: s.c.nc.RemoteAddr().String(), Username: user, Secret: secret, Log: s.log,
	})
	stopWatch()
	switch {
	case err == nil:
	case errors.Is(err, account.ErrBadCredentials):
		return errAuthFailed
	case errors.Is(err, account.ErrThrottled):
		return errThrottled
	default:
		if s.srv.ctx.Err() != nil {
			return errShutdown
		}
		return errUnavailable
	}
	s.mu.Lock()
	if s.stop {
		s.mu.Unlock()
		login.Close()
		return errShutdown
	}
	s.login = login
	s.account = login.Account()
	s.mu.Unlock()
	s.stopped = context.AfterFunc(login.Context(), func() { s.loginEnded(login) })
	s.alog = s.log.With("account", login.Account())
	cctx, cancelC := context.WithCancel(login.Context())
	stopC := context.AfterFunc(s.srv.ctx, cancelC)
	s.cctx, s.ccancel = cctx, func() { stopC(); cancelC() }
	s.lastRetr = -1
	drop, e := s.openMaildrop(cctx, login)
	if e != nil {
		s.stopped()
		s.stopped = nil
		s.ccancel()
		s.ccancel = nil
		s.mu.Lock()
		s.login = nil
		s.account = ""
		s.mu.Unlock()
		login.Close()
		return e
	}
	s.drop = drop
	s.alog.Info("maildrop opened", "mailbox", "INBOX", "messages", len(drop.msgs), "duration", time.Since(start))
	n, size := drop.stat()
	s.c.ok(plural(n, "message") + " (" + itoa64(size) + " octets)")
	return nil
}

// watchHangup cancels when the client closes the connection while a
// login runs (the read sees EOF). The reader is only peeked at, so a
// pipelined command stays for later. The returned func stops watching.
func (s *session) watchHangup(cancel context.CancelFunc) func() {
	if s.c.br.Buffered() > 0 {
		return func() {} // a pipelined command waits: the client is there
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_, err := s.c.br.Peek(1)
		select {
		case <-done:
		default:
			if err != nil {
				cancel()
			}
		}
	}()
	return func() {
		close(done)
		// Unblock the peek; the next read sets its own deadline.
		s.c.nc.SetReadDeadline(time.Now())
		<-finished
		s.c.nc.SetReadDeadline(time.Time{})
	}
}

// stls implements STLS (RFC 2595 §4).
func (s *session) stls(cmd *command) *Error {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	if s.tls {
		return errTLSActive
	}
	if s.srv.tls == nil {
		return errNoTLS
	}
	if s.c.br.Buffered() > 0 {
		// Bytes sent after STLS before the handshake would be taken as
		// commands of the TLS session (a plaintext injection).
		return errTLSPipeline
	}
	s.c.ok("Begin TLS negotiation")
	if err := s.c.bw.Flush(); err != nil {
		return &Error{Text: "Write failed", Close: true}
	}
	tc := tls.Server(s.c.nc, s.srv.tls)
	ctx, cancel := context.WithTimeout(s.srv.ctx, s.srv.lim.PreAuthIdle)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.log.Info("STLS handshake failed", "err", err)
		return &Error{Text: "TLS handshake failed", Close: true}
	}
	s.mu.Lock()
	s.c = newConn(tc, &s.srv.lim)
	s.mu.Unlock()
	s.tls = true
	s.user = ""
	return nil
}

// quitAuth implements QUIT in the AUTHORIZATION state.
func (s *session) quitAuth(cmd *command) *Error {
	s.c.ok("Bye")
	s.quit = true
	return nil
}
