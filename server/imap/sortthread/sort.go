package sortthread

import (
	"cmp"
	"net/mail"
	"slices"
	"strings"
	"time"
)

// Message is what SORT and THREAD know of one message. Each criterion
// reads its own fields; the caller fills those the command needs (Needs
// says which). String keys are collation keys (Key), made by the helpers
// below.
type Message struct {
	Num uint32 // what the result lists: sequence number or UID
	Seq uint32 // sequence number: the last tie-breaker

	Arrival time.Time // INTERNALDATE (ARRIVAL)
	Sent    time.Time // SentDate (DATE; THREAD)
	Size    int64     // RFC822.SIZE (SIZE)

	// Subject is the key of the base subject (SUBJECT; THREAD): SubjectKey.
	Subject string
	// From, To and Cc are the keys of the first address's mailbox
	// (FROM, TO, CC): AddressKey.
	From, To, Cc string
	// DisplayFrom and DisplayTo are the keys of the first address's
	// display name (DISPLAYFROM, DISPLAYTO, RFC 5957): DisplayKey.
	DisplayFrom, DisplayTo string

	// THREAD=REFERENCES.
	MessageID  string   // FirstMessageID of Message-ID; "" if none
	References []string // References (see ThreadReferences), else In-Reply-To's first ID
	ReplyOrFwd bool     // the subject had a reply or forward marker (BaseSubject)
}

// Field is one kind of fact a sort criterion reads.
type Field int

// Fields of Message, as Needs reports them.
const (
	FieldArrival Field = 1 << iota
	FieldSent
	FieldSize
	FieldSubject
	FieldFrom
	FieldTo
	FieldCc
	FieldDisplayFrom
	FieldDisplayTo
	FieldThread // MessageID, References, ReplyOrFwd
)

// By is a sort criterion (RFC 5256 §3, RFC 5957).
type By int

// Criteria.
const (
	ByArrival By = iota
	ByCc
	ByDate
	ByFrom
	BySize
	BySubject
	ByTo
	ByDisplayFrom
	ByDisplayTo
)

// Criterion is one criterion of SORT, possibly reversed.
type Criterion struct {
	By      By
	Reverse bool
}

// Needs returns the fields the criteria read.
func Needs(crit []Criterion) Field {
	var f Field
	for _, c := range crit {
		switch c.By {
		case ByArrival:
			f |= FieldArrival
		case ByCc:
			f |= FieldCc
		case ByDate:
			f |= FieldSent
		case ByFrom:
			f |= FieldFrom
		case BySize:
			f |= FieldSize
		case BySubject:
			f |= FieldSubject
		case ByTo:
			f |= FieldTo
		case ByDisplayFrom:
			f |= FieldDisplayFrom
		case ByDisplayTo:
			f |= FieldDisplayTo
		}
	}
	return f
}

// Compare orders two messages by crit, then by sequence number.
func Compare(a, b *Message, crit []Criterion) int {
	for _, c := range crit {
		var r int
		switch c.By {
		case ByArrival:
			r = a.Arrival.Compare(b.Arrival)
		case ByCc:
			r = strings.Compare(a.Cc, b.Cc)
		case ByDate:
			r = a.Sent.Compare(b.Sent)
		case ByFrom:
			r = strings.Compare(a.From, b.From)
		case BySize:
			r = cmp.Compare(a.Size, b.Size)
		case BySubject:
			r = strings.Compare(a.Subject, b.Subject)
		case ByTo:
			r = strings.Compare(a.To, b.To)
		case ByDisplayFrom:
			r = strings.Compare(a.DisplayFrom, b.DisplayFrom)
		case ByDisplayTo:
			r = strings.Compare(a.DisplayTo, b.DisplayTo)
		}
		if c.Reverse {
			r = -r
		}
		if r != 0 {
			return r
		}
	}
	return cmp.Compare(a.Seq, b.Seq)
}

// Sort returns the Nums of msgs ordered by crit (RFC 5256 §3); msgs is
// left as it is.
func Sort(msgs []Message, crit []Criterion) []uint32 {
	order := make([]int32, len(msgs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return Compare(&msgs[a], &msgs[b], crit) })
	out := make([]uint32, len(msgs))
	for i, j := range order {
		out[i] = msgs[j].Num
	}
	return out
}

// SentDate returns a message's sent date (RFC 5256 §2.2): the date and
// time of its Date field, or its internal date when the field is missing
// or cannot be parsed.
func SentDate(dateField string, internal time.Time) time.Time {
	if dateField != "" {
		if t, err := mail.ParseDate(dateField); err == nil {
			return t
		}
	}
	return internal
}

// SubjectKey returns the collation key of a Subject field's base subject,
// and whether it was a reply or forward (see BaseSubject).
func SubjectKey(raw string) (key string, replyOrFwd bool) {
	base, re := BaseSubject(raw)
	return Key(base), re
}

// AddressKey returns the key of FROM, TO and CC (RFC 5256 §3): the
// addr-mailbox of the first address, as the envelope has it (for a group,
// the group's name); "" when there is no address.
func AddressKey(mailbox string) string {
	return Key(DecodeText(mailbox))
}

// DisplayKey returns the key of DISPLAYFROM and DISPLAYTO (RFC 5957 §2):
// the first address's display name, decoded; without one, its
// addr-mailbox "@" addr-host (the mailbox alone when there is no host, as
// for a group, whose mailbox is its name).
func DisplayKey(name, mailbox, host string) string {
	if d := strings.TrimSpace(collapseSpace(DecodeText(name))); d != "" {
		return Key(d)
	}
	if host == "" {
		return Key(DecodeText(mailbox))
	}
	return Key(DecodeText(mailbox) + "@" + DecodeText(host))
}
