package smtp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/sealmail/sealmail/server/account"
)

// AUTH (RFC 4954) on the submission listener: PLAIN (RFC 4616) and LOGIN
// (for old clients), only under TLS, with the account password or an
// app password, through the account service and its throttle, fixed
// failure delay and no-enumeration rules (server/account).

// maxAuthFailures is how many failed AUTH commands one connection may
// send before it is closed.
const maxAuthFailures = 3

// Replies of AUTH.
var (
	replyAuthOK = &Reply{235, "2.7.0", "Authentication successful"}
	// RFC 4954 §6: 538 when the mechanism needs an encrypted channel.
	replyAuthNeedsTLS   = &Reply{538, "5.7.11", "Encryption required: use STARTTLS first"}
	replyAuthFailed     = &Reply{535, "5.7.8", "Authentication credentials invalid"}
	replyAuthThrottled  = &Reply{454, "4.7.0", "Too many login attempts; try again later"}
	replyAuthTemporary  = &Reply{454, "4.7.0", "Temporary authentication failure"}
	replyAuthCancelled  = &Reply{501, "5.0.0", "Authentication cancelled"}
	replyAuthBadBase64  = &Reply{501, "5.5.2", "Cannot decode the response (base64)"}
	replyAuthMechanism  = &Reply{504, "5.5.4", "Unrecognized authentication type; use PLAIN or LOGIN"}
	replyAuthAlready    = &Reply{503, "5.5.1", "Already authenticated"}
	replyAuthInTx       = &Reply{503, "5.5.1", "AUTH is not allowed during a mail transaction"}
	replyAuthTooMany    = &Reply{421, "4.7.0", "Too many failed authentications, closing connection"}
	replyAuthNoIdentity = &Reply{535, "5.7.8", "Authorization identity must be empty or the user name"}
)

// auth runs one AUTH command. It reports false when the connection must
// close.
func (c *conn) auth(cmd command) bool {
	switch {
	case !c.tls:
		c.reply(replyAuthNeedsTLS)
		return !c.refused()
	case c.login != nil:
		c.reply(replyAuthAlready)
		return !c.refused()
	case c.tx != nil:
		c.reply(replyAuthInTx)
		return !c.refused()
	case c.helo == "":
		c.reply(replyNeedHelo)
		return !c.refused()
	}
	mech, initial, hasInitial := strings.Cut(cmd.arg, " ")
	var user string
	var secret []byte
	defer func() { clear(secret) }()
	switch strings.ToUpper(mech) {
	case "PLAIN":
		resp, rep := c.authResponse(initial, hasInitial, "")
		if rep != nil {
			return c.authRefused(rep)
		}
		defer clear(resp)
		// authzid NUL authcid NUL passwd (RFC 4616 §2).
		parts := bytes.SplitN(resp, []byte{0}, 3)
		if len(parts) != 3 {
			c.reply(replyAuthBadBase64)
			return !c.refused()
		}
		user = string(parts[1])
		if len(parts[0]) > 0 && string(parts[0]) != user {
			return c.authFailed(replyAuthNoIdentity)
		}
		secret = append([]byte(nil), parts[2]...)
	case "LOGIN":
		// draft-murchison-sasl-login: "Username:", then "Password:".
		resp, rep := c.authResponse(initial, hasInitial, "VXNlcm5hbWU6")
		if rep != nil {
			return c.authRefused(rep)
		}
		user = string(resp)
		clear(resp)
		resp, rep = c.authResponse("", false, "UGFzc3dvcmQ6")
		if rep != nil {
			return c.authRefused(rep)
		}
		secret = resp
	default:
		c.reply(replyAuthMechanism)
		return !c.refused()
	}
	// Shutdown cancels a login in progress (drain): it is no transaction.
	ctx, cancel := context.WithCancel(c.ctx)
	c.mu.Lock()
	c.authCancel = cancel
	c.mu.Unlock()
	sess, err := c.srv.sub.Accounts.Login(ctx, account.LoginRequest{
		Remote: c.raw.RemoteAddr().String(), Username: user, Secret: secret, Log: c.log,
	})
	c.mu.Lock()
	c.authCancel = nil
	c.mu.Unlock()
	interrupted := ctx.Err() != nil
	cancel()
	switch {
	case err == nil:
	case interrupted:
		if sess != nil {
			sess.Close()
		}
		c.reply(replyShutdown)
		return false
	case errors.Is(err, account.ErrBadCredentials):
		return c.authFailed(replyAuthFailed)
	case errors.Is(err, account.ErrThrottled):
		return c.authFailed(replyAuthThrottled)
	default:
		c.reply(replyAuthTemporary)
		return !c.refused()
	}
	// Submission needs no private key: wipe it now. The session stays,
	// so that revoking the credentials or deleting the account ends the
	// connection.
	sess.Keyring().Wipe()
	c.login, c.account = sess, sess.Account()
	c.log = c.log.With(keyAccount, c.account)
	c.stopWatch = context.AfterFunc(sess.Context(), func() {
		c.log.Info("login ended by the account service; closing", keyErr, context.Cause(sess.Context()))
		c.abort()
	})
	c.reply(replyAuthOK)
	return true
}

// authRefused answers an AUTH exchange that ended before the
// credentials were checked.
func (c *conn) authRefused(rep *Reply) bool {
	if rep == errAuthRead {
		return false
	}
	c.reply(rep)
	return !c.refused()
}

// authFailed answers a failed AUTH with rep; the maxAuthFailures-th
// gets 421 instead, and the connection closes.
func (c *conn) authFailed(rep *Reply) bool {
	c.authFails++
	if c.authFails >= maxAuthFailures {
		c.log.Info("too many failed authentications; closing")
		c.reply(replyAuthTooMany)
		return false
	}
	c.reply(rep)
	return !c.refused()
}

// errAuthRead: reading the client's response failed, and readFailed
// has said what there was to say; the connection closes.
var errAuthRead = &Reply{421, "4.4.2", "read failed"}

// authResponse returns the client's base64 response: the initial one
// if given ("=" is empty, RFC 4954 §4), else what it answers to a 334
// challenge (base64 text, may be empty). "*" cancels.
func (c *conn) authResponse(initial string, hasInitial bool, challenge string) ([]byte, *Reply) {
	if !hasInitial {
		c.reply(&Reply{334, "", challenge})
		line, err := c.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				return nil, replyLineTooLong
			}
			c.readFailed(err)
			return nil, errAuthRead
		}
		initial = string(line)
		clear(line)
	}
	if initial == "*" {
		return nil, replyAuthCancelled
	}
	if initial == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(initial)
	if err != nil {
		return nil, replyAuthBadBase64
	}
	return b, nil
}

// endLogin closes the login, if any.
func (c *conn) endLogin() {
	if c.stopWatch != nil {
		c.stopWatch()
	}
	if c.login != nil {
		c.login.Close()
	}
}
