package smtp

import (
	"fmt"
	"log/slog"
	"strings"
)

// Log keys. The first eight are the project's fixed keys; the rest are
// this package's, declared once here.
const (
	keyProto    = "proto"
	keyCID      = "cid"
	keyRemote   = "remote"
	keyAccount  = "account"
	keyMailbox  = "mailbox"
	keyUID      = "uid"
	keyErr      = "err"
	keyDuration = "duration"

	keyID     = "id"     // transaction id, also in the Received field
	keySize   = "size"   // message bytes as received
	keyRcpts  = "rcpts"  // accounts that get a copy
	keyResult = "result" // reply code and enhanced code, e.g. "250 2.0.0"
	keyDomain = "domain" // a recipient's or sender's domain (never the local part)
	keyHelo   = "helo"
	// keyRcptAccount is a local recipient's account in submission, where
	// account (from AUTH, on every line of the connection) is the sender.
	keyRcptAccount = "rcpt_account"
)

const (
	protoName       = "smtp"
	protoSubmission = "submission"
)

// libLogger adapts go-smtp's ErrorLog to slog. go-smtp reports broken
// connections there (debug) and recovered panics (error).
type libLogger struct{ log *slog.Logger }

func (l libLogger) Printf(format string, v ...any) { l.emit(fmt.Sprintf(format, v...)) }
func (l libLogger) Println(v ...any)               { l.emit(fmt.Sprintln(v...)) }

func (l libLogger) emit(msg string) {
	msg = strings.TrimSpace(msg)
	if strings.Contains(msg, "panic") {
		l.log.Error("go-smtp: "+firstLine(msg), keyErr, msg)
		return
	}
	l.log.Debug("go-smtp: " + firstLine(msg))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// domainOf returns the domain of an address, for logs that must not carry
// local parts.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
