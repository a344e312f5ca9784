package smtp

import (
	"strconv"
	"strings"
)

// Reply is one SMTP reply (RFC 5321 §4.2): a three-digit code, an
// enhanced status code (RFC 3463; sent because ENHANCEDSTATUSCODES is
// offered, RFC 2034) and a text. Every reply this server sends is a Reply
// built in this package from fixed texts: no error's text ever reaches
// the wire. A Reply is an error, so policy code can return it.
type Reply struct {
	Code     int    // 200 … 599
	Enhanced string // "class.subject.detail", e.g. "5.7.1"; "" for replies that carry none (greeting, 354)
	Text     string // one line per "\n"-separated part; printable, no CR or LF inside a part
}

// Error implements error: the reply as it would be sent, on one line.
func (r *Reply) Error() string { return r.String() }

// String renders the first line of r: "550 5.7.1 Relaying denied".
func (r *Reply) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	if r.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(r.Enhanced)
	}
	if r.Text != "" {
		b.WriteByte(' ')
		text, _, _ := strings.Cut(r.Text, "\n")
		b.WriteString(text)
	}
	return b.String()
}

// Status renders the codes only, for logs: "550 5.7.1". A nil reply is
// success: "250 2.0.0".
func (r *Reply) Status() string {
	if r == nil {
		return "250 2.0.0"
	}
	if r.Enhanced == "" {
		return strconv.Itoa(r.Code)
	}
	return strconv.Itoa(r.Code) + " " + r.Enhanced
}

// Permanent reports whether r is a 5xx reply.
func (r *Reply) Permanent() bool { return r.Code >= 500 }

// appendReply appends r in wire form: every line but the last is
// "code-", the last "code ", each with the enhanced code (RFC 2034 §4),
// each ending in CRLF.
func appendReply(dst []byte, r *Reply) []byte {
	lines := strings.Split(r.Text, "\n")
	for i, line := range lines {
		dst = strconv.AppendInt(dst, int64(r.Code), 10)
		if i < len(lines)-1 {
			dst = append(dst, '-')
		} else {
			dst = append(dst, ' ')
		}
		if r.Enhanced != "" {
			dst = append(dst, r.Enhanced...)
			if line != "" {
				dst = append(dst, ' ')
			}
		}
		dst = append(dst, line...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// The replies of this server, by the command that gives them. Enhanced
// codes are RFC 3463's (and RFC 5248's registry); texts are short and say
// what the client can do.
var (
	// Connection.
	replyShutdown     = &Reply{421, "4.3.2", "Service shutting down, try again later"}
	replyConnLimit    = &Reply{421, "4.7.0", "Too many connections, try again later"}
	replyTimeout      = &Reply{421, "4.4.2", "Timeout, closing connection"}
	replyDataTimeout  = &Reply{421, "4.4.2", "Timeout reading message data, closing connection"}
	replyTooSlow      = &Reply{421, "4.4.2", "Message data arrives too slowly, closing connection"}
	replyTooManyErrs  = &Reply{421, "4.7.0", "Too many errors, closing connection"}
	replyTooManyProbe = &Reply{421, "4.7.0", "Too many unknown recipients, closing connection"}
	replyBye          = &Reply{221, "2.0.0", "Bye"}

	// Syntax and sequence (RFC 5321 §4.2.4, §4.3.2; RFC 3463 X.5.x).
	replyLineTooLong  = &Reply{500, "5.5.2", "Line too long"}
	replyBadCharacter = &Reply{500, "5.5.2", "Control character in command"}
	replyUnknownCmd   = &Reply{500, "5.5.2", "Command not recognized"}
	replySyntax       = &Reply{501, "5.5.4", "Syntax error in parameters or arguments"}
	replyNoArgs       = &Reply{501, "5.5.4", "This command takes no arguments"}
	replyNeedHelo     = &Reply{503, "5.5.1", "Say EHLO first"}
	replyNeedMail     = &Reply{503, "5.5.1", "Need MAIL before RCPT"}
	replyNestedMail   = &Reply{503, "5.5.1", "Transaction already open; RSET first"}
	replyNoTx         = &Reply{503, "5.5.1", "No transaction open"}
	replyBdatOpen     = &Reply{503, "5.5.1", "BDAT transfer in progress; send BDAT or RSET"}
	replyNoValidRcpt  = &Reply{554, "5.5.1", "No valid recipients"}
	replyParamUnknown = &Reply{555, "5.5.4", "Parameter not recognized or not implemented"}
	replyParamSyntax  = &Reply{501, "5.5.4", "Bad parameter syntax"}
	replyNotAvailable = &Reply{502, "5.5.1", "Command not available"}
	replyNoAuth       = &Reply{502, "5.5.1", "No authentication on this port (MX); clients submit mail on the submission port"}
	replyNoTLS        = &Reply{502, "5.5.1", "STARTTLS not available"}
	replyTLSActive    = &Reply{503, "5.5.1", "TLS already active"}
	replyTLSReady     = &Reply{220, "2.0.0", "Ready to start TLS"}

	// Success.
	replyOK        = &Reply{250, "2.0.0", "OK"}
	replySenderOK  = &Reply{250, "2.1.0", "Sender OK"}
	replyRcptOK    = &Reply{250, "2.1.5", "Recipient OK"}
	replyStartData = &Reply{354, "", "End data with <CR><LF>.<CR><LF>"}
	replyHelp      = &Reply{214, "2.0.0", "See RFC 5321; this server accepts mail for its own domains only"}

	// Envelope (RFC 5321 §3.6.2, RFC 3463 X.1.x, X.7.1).
	replyRelayDenied = &Reply{550, "5.7.1", "Relaying denied"}
	replyNoSuchUser  = &Reply{550, "5.1.1", "No such user here"}
	replyBadRcpt     = &Reply{553, "5.1.3", "Bad recipient address syntax"}
	replyBadSender   = &Reply{553, "5.1.7", "Bad sender address syntax"}
	// RFC 6531 §3.7.4.1; RFC 5248 X.6.7: non-ASCII address not permitted.
	replyNeedUTF8     = &Reply{553, "5.6.7", "Non-ASCII address needs SMTPUTF8"}
	replyTooManyRcpts = &Reply{452, "4.5.3", "Too many recipients"}
	replyRateLimited  = &Reply{451, "4.7.1", "Too much mail from your address; try again later"}

	// Data.
	replyTooBig      = &Reply{552, "5.3.4", "Message too big"}
	replyBareNewline = &Reply{550, "5.6.11", "Bare CR or LF in message data; use CRLF line endings"}
	replyNUL         = &Reply{550, "5.6.0", "NUL byte in message data"}
	replyLongLine    = &Reply{554, "5.6.0", "Message line too long"}
	// RFC 5321 §6.3; RFC 3463 X.4.6 routing loop detected.
	replyLoop = &Reply{554, "5.4.6", "Too many Received fields, mail loop suspected"}
	// RFC 3463 X.3.1: mail system full (here: memory for messages in
	// flight), a temporary condition.
	replyBusy = &Reply{452, "4.3.1", "Too much mail in progress, try again later"}

	// Delivery.
	replyTemporary   = &Reply{451, "4.3.0", "Temporary local problem, try again later"}
	replyMailboxFull = &Reply{452, "4.2.2", "Mailbox full, try again later"}
	replyNeverFits   = &Reply{552, "5.2.2", "Message larger than the mailbox quota"}
	// The store cannot take this delivery in one transaction: retrying
	// the same message to the same recipients cannot help.
	replyStoreTooLarge = &Reply{552, "5.3.4", "Message too big for the system to store"}
)
