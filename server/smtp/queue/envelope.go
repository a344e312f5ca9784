package queue

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Message is a message handed to the queue by submission (or made by
// the queue itself: a bounce to a remote sender).
type Message struct {
	// ID is the message's transaction id: unique, [a-z2-7], the Ref of
	// its trace records and the start of its entries' IDs.
	ID string
	// Account is the local account that submitted it; "" for the
	// queue's own notices.
	Account string
	// From is the envelope sender, canonical; "" for <> (notices, which
	// are never bounced).
	From string
	// Rcpts are all its recipients, remote and local.
	Rcpts []Rcpt
	// Size is the message's size in bytes, as it will be sent.
	Size int64
	// UTF8 is MAIL … SMTPUTF8 (RFC 6531): addresses or header fields
	// need it; a server that does not offer it cannot take the message.
	UTF8 bool
	// RequireTLS and TLSOptional: see Submitted in server/smtp.
	RequireTLS  bool
	TLSOptional bool
	// Ret and EnvID are MAIL's RET and ENVID (RFC 3461 §4.3, §4.4): ""
	// if not given. Ret is "FULL" or "HDRS".
	Ret   string
	EnvID string
}

// Rcpt is one recipient of a Message.
type Rcpt struct {
	Addr string // canonical address
	// Local: the caller delivers this recipient here itself; the queue
	// only sends the success notice it may ask for.
	Local bool
	// Notify is RCPT's NOTIFY (RFC 3461 §4.1), upper case: nil for the
	// default (failures and delays), or "NEVER", or some of "SUCCESS",
	// "FAILURE", "DELAY".
	Notify []string
	// ORcpt is RCPT's ORCPT (RFC 3461 §4.2), decoded: "rfc822;addr" or
	// "utf-8;addr". "" if not given.
	ORcpt string
}

// wantsNotice reports whether r asked for a notice of this kind
// ("SUCCESS", "FAILURE", "DELAY"). Without NOTIFY, failures and delays
// are reported (RFC 3461 §4.1 leaves it to the MTA; these are what
// senders expect).
func wantsNotice(notify []string, kind string) bool {
	if len(notify) == 0 {
		return kind == "FAILURE" || kind == "DELAY"
	}
	return slices.Contains(notify, kind)
}

// envelope is an entry's sealed state (store.QueueEntry.Meta): the
// message's envelope and the recipients still to deliver to, all of one
// destination domain. Recipients leave it as they are delivered or
// fail.
type envelope struct {
	Msg         string  `json:"msg"`
	Account     string  `json:"account,omitempty"`
	From        string  `json:"from"`
	Domain      string  `json:"domain"`
	Rcpts       []*rcpt `json:"rcpts"`
	Size        int64   `json:"size"`
	UTF8        bool    `json:"utf8,omitempty"`
	RequireTLS  bool    `json:"requiretls,omitempty"`
	TLSOptional bool    `json:"tlsoptional,omitempty"`
	Ret         string  `json:"ret,omitempty"`
	EnvID       string  `json:"envid,omitempty"`
	// Warned: the delay notice was sent.
	Warned bool `json:"warned,omitempty"`
	// Last is the last failure, for listings.
	Last string `json:"last,omitempty"`
}

// rcpt is one recipient still waiting.
type rcpt struct {
	Addr   string   `json:"addr"`
	Notify []string `json:"notify,omitempty"`
	ORcpt  string   `json:"orcpt,omitempty"`
}

func (s *sealer) encodeEnvelope(id string, e *envelope) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("queue: encode envelope: %w", err)
	}
	out := s.sealMeta(id, b)
	clear(b)
	return out, nil
}

func (s *sealer) decodeEnvelope(id string, meta []byte) (*envelope, error) {
	b, err := s.openMeta(id, meta)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("queue: entry %s: envelope: %w", id, err)
	}
	return &e, nil
}

// domainOf returns the domain of a canonical address.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// addrs returns the recipients' addresses.
func addrs(rs []*rcpt) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Addr
	}
	return out
}
