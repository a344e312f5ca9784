package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Idle session modes of sealbench imap -session-mode: what each idle
// session does after LOGIN before it waits.
const (
	modeLogin  = "login"  // nothing: logged in, no mailbox selected
	modeSelect = "select" // SELECT INBOX, then wait between commands
	modeIdle   = "idle"   // SELECT INBOX, then IDLE (RFC 2177)
	modeNotify = "notify" // SELECT INBOX, then NOTIFY SET (RFC 5465)
)

var sessionModes = []string{modeLogin, modeSelect, modeIdle, modeNotify}

// notifySet is the NOTIFY of mode notify: what a client that follows its
// selected mailbox and every other mailbox of the account asks for.
const notifySet = "NOTIFY SET STATUS (SELECTED (MessageNew MessageExpunge FlagChange)) " +
	"(PERSONAL (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"

// idleConn is one idle session, spoken to directly (the go-imap client
// has no NOTIFY): a connection that is logged in and then left waiting.
type idleConn struct {
	nc  net.Conn
	br  *bufio.Reader
	tag int
}

// openIdle connects, logs in and puts the session in mode.
func (l *imapLogin) openIdle(mode string) (*idleConn, error) {
	host, _, err := net.SplitHostPort(l.addr)
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{ServerName: host, InsecureSkipVerify: l.insecure}
	d := &net.Dialer{Timeout: l.timeout}
	var nc net.Conn
	if l.tls {
		nc, err = tls.DialWithDialer(d, "tcp", l.addr, tlsConf)
	} else {
		nc, err = d.Dial("tcp", l.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	c := &idleConn{nc: nc, br: bufio.NewReader(nc)}
	if err := c.setup(l, mode, tlsConf); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *idleConn) setup(l *imapLogin, mode string, tlsConf *tls.Config) error {
	c.nc.SetDeadline(time.Now().Add(l.timeout + time.Minute))
	if _, err := c.readLine(); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if l.startTLS {
		if err := c.command("STARTTLS", ""); err != nil {
			return err
		}
		tc := tls.Client(c.nc, tlsConf)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		c.nc, c.br = tc, bufio.NewReader(tc)
	}
	if err := c.command("LOGIN "+quote(l.user)+" "+quote(l.password), ""); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if mode != modeLogin {
		if err := c.command("SELECT INBOX", ""); err != nil {
			return err
		}
	}
	switch mode {
	case modeIdle:
		if err := c.command("IDLE", "+"); err != nil {
			return err
		}
	case modeNotify:
		if err := c.command(notifySet, ""); err != nil {
			return err
		}
	}
	c.nc.SetDeadline(time.Time{})
	return nil
}

// command sends a command and reads to its tagged OK, or to a line
// starting with stop if stop is not "".
func (c *idleConn) command(cmd, stop string) error {
	c.tag++
	tag := fmt.Sprintf("s%d", c.tag)
	if _, err := io.WriteString(c.nc, tag+" "+cmd+"\r\n"); err != nil {
		return err
	}
	name, _, _ := strings.Cut(cmd, " ")
	for {
		line, err := c.readLine()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if stop != "" && strings.HasPrefix(line, stop) {
			return nil
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if strings.HasPrefix(rest, "OK") {
				return nil
			}
			return fmt.Errorf("%s: %s", name, rest)
		}
	}
}

// maxIdleLine bounds a response line the idle sessions read.
const maxIdleLine = 64 << 10

func (c *idleConn) readLine() (string, error) {
	var sb strings.Builder
	for {
		part, err := c.br.ReadSlice('\n')
		sb.Write(part)
		if sb.Len() > maxIdleLine {
			return "", errors.New("response line too long")
		}
		if err == nil {
			return strings.TrimRight(sb.String(), "\r\n"), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
}

// close ends the session: DONE for IDLE, then LOGOUT, without waiting
// long for answers.
func (c *idleConn) close(mode string) {
	c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	if mode == modeIdle {
		io.WriteString(c.nc, "DONE\r\n")
	}
	c.command("LOGOUT", "* BYE")
	c.nc.Close()
}

// quote makes s an IMAP quoted string.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
