package smtp

import (
	"errors"
	"os"

	gosmtp "github.com/emersion/go-smtp"
)

// The replies this server gives. Every error a Session method returns is
// one of these (or go-smtp's own), so no internal error text reaches the
// wire; causes go to the log.
var (
	// RFC 5321 §3.6.2: refuse to relay.
	errRelayDenied = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}
	errNoSuchUser  = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	errBadRcpt     = &gosmtp.SMTPError{Code: 553, EnhancedCode: gosmtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	errBadSender   = &gosmtp.SMTPError{Code: 553, EnhancedCode: gosmtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax"}
	// RFC 6531 §3.7.4.1 / RFC 5248: X.6.7 non-ASCII address not permitted.
	errNeedUTF8 = &gosmtp.SMTPError{Code: 553, EnhancedCode: gosmtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address needs SMTPUTF8"}
	// RFC 3463 X.3.0: other or undefined mail system status.
	errTemporary   = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try again later"}
	errShutdown    = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	errMailboxFull = &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full, try again later"}
	errNeverFits   = &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 2, 2}, Message: "Message larger than the mailbox quota"}
	errTooBig      = gosmtp.ErrDataTooLarge // 552 5.3.4
	// The store cannot take this delivery in one transaction: retrying
	// the same message to the same recipients cannot help.
	errStoreTooLarge = &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 3, 4}, Message: "Message too big for the system to store"}
	// Postfix's smtpd_forbid_bare_newline answer, with a media code.
	errBareNewline = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 6, 11}, Message: "Bare CR or LF in message data; use CRLF line endings"}
	errLineTooLong = &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "Message line too long"}
	// RFC 5321 §6.3; RFC 3463 X.4.6 routing loop detected.
	errLoop   = &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 4, 6}, Message: "Too many Received fields, mail loop suspected"}
	errNoRcpt = &gosmtp.SMTPError{Code: 503, EnhancedCode: gosmtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	// RFC 5321 §4.5.3.2; RFC 3463 X.4.2 bad connection. The connection is
	// closed after it.
	errDataTimeout = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2}, Message: "Timeout reading message data, closing connection"}
	errConnLimit   = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0}, Message: "Too many connections, try again later"}
)

// Internal causes from the DATA scanner, mapped by dataError.
var (
	errScanBareNewline = errors.New("smtp: bare CR or LF in data")
	errScanLineTooLong = errors.New("smtp: data line too long")
	errScanTooBig      = errors.New("smtp: message too large")
	errScanLoop        = errors.New("smtp: too many Received fields")
)

// dataError maps an error from reading and checking message data to the
// reply. The second result says whether the cause is the client's (not
// worth more than a debug log line).
func dataError(err error) (*gosmtp.SMTPError, bool) {
	var se *gosmtp.SMTPError
	switch {
	case errors.Is(err, errScanBareNewline):
		return errBareNewline, true
	case errors.Is(err, errScanLineTooLong), errors.Is(err, gosmtp.ErrTooLongLine):
		return errLineTooLong, true
	case errors.Is(err, errScanTooBig):
		return errTooBig, true
	case errors.Is(err, errScanLoop):
		return errLoop, true
	case errors.Is(err, errDataTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return errDataTimeout, true
	case errors.Is(err, gosmtp.ErrDataReset):
		// RSET, EHLO or a broken BDAT transfer: go-smtp has answered.
		return errTemporary, true
	case errors.As(err, &se) && se.Code/100 == 5:
		// go-smtp's own size limit (552 5.3.4).
		return se, true
	}
	return errTemporary, false
}
