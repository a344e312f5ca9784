package wire

import (
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

// Mailbox names reach the Session in UTF-8. A client that enabled
// IMAP4rev2 or UTF8=ACCEPT sends UTF-8 (RFC 9051 §5.1, RFC 6855 §3); any
// other client sends modified UTF-7 (RFC 3501 §5.1.3). A name that is not
// valid in the client's encoding is refused with NO [CANNOT] before the
// Session sees it. 8-bit bytes from a client that enabled neither are
// taken as UTF-8 if they are UTF-8 (modified UTF-7 is 7-bit, so they
// cannot be meant as anything else; go-imap's client sends names so to
// servers that advertise IMAP4rev2, with "&" still escaped as "&-"), and
// refused otherwise, because guessing their charset would create
// mailboxes that other clients cannot name.

var (
	errNameNotMUTF7 = no(imap.ResponseCodeCannot, "Mailbox name is not valid modified UTF-7")
	errName8Bit     = no(imap.ResponseCodeCannot, "Mailbox name has 8-bit characters that are not UTF-8")
	errNameNotUTF8  = no(imap.ResponseCodeCannot, "Mailbox name is not valid UTF-8")
	errNameControl  = no(imap.ResponseCodeCannot, "Mailbox name contains a control character")
	errNameEmpty    = no(imap.ResponseCodeCannot, "Empty mailbox name")
)

// decodeMailbox returns the UTF-8 form of a mailbox name as the client
// sent it. "INBOX" in any case is INBOX (RFC 9051 §5.1).
func decodeMailbox(raw string, utf8Mode bool) (string, error) {
	name, err := decodeName(raw, utf8Mode)
	if err != nil {
		return "", err
	}
	if name == "" {
		return "", errNameEmpty
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "", errNameControl
		}
	}
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	return name, nil
}

func decodeName(raw string, utf8Mode bool) (string, error) {
	if utf8Mode {
		if !utf8.ValidString(raw) {
			return "", errNameNotUTF8
		}
		return raw, nil
	}
	eight := false
	for i := 0; i < len(raw); i++ {
		if raw[i] >= 0x80 {
			eight = true
			break
		}
	}
	if eight && !utf8.ValidString(raw) {
		return "", errName8Bit
	}
	name, err := decodeMUTF7With8bit(raw, eight)
	if err != nil {
		if containsControl(raw) {
			return "", errNameControl
		}
		return "", errNameNotMUTF7
	}
	return name, nil
}

func containsControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// decodePattern returns the UTF-8 form of a LIST pattern, or false when it
// cannot name any mailbox (it is not valid in the client's encoding): such
// a pattern matches nothing, as in Dovecot, rather than failing the LIST.
func decodePattern(raw string, utf8Mode bool) (string, bool) {
	p, err := decodeName(raw, utf8Mode)
	if err != nil {
		return "", false
	}
	return p, true
}

// encodeMailbox returns a UTF-8 mailbox name in the client's encoding.
func encodeMailbox(name string, utf8Mode bool) string {
	if utf8Mode {
		return strings.ToValidUTF8(name, "\uFFFD")
	}
	return encodeMUTF7(name)
}
