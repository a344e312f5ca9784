// Package structure describes a message the way mail access protocols
// do: its envelope and its MIME body structure (RFC 9051 §7.5.2). It is a
// leaf package of plain types, shared by server/mailbox, which builds
// them from messages (and keeps them sealed in summaries), and by the
// IMAP wire layer, which writes them; POP3 and export read them too.
package structure

// Envelope is a message's envelope (RFC 9051 §7.5.2). Strings are the raw
// header values (unfolded, encoded-words left as they are), "" being NIL;
// Date, InReplyTo and MessageID are as they appear in the header.
type Envelope struct {
	Date, Subject                      string
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	InReplyTo, MessageID               string
}

// Address is one address of an envelope. A group is a start marker
// (Mailbox the group name, Host "") and an end marker (all empty).
// Name is the display name as written (quotes removed, encoded-words
// kept); ADL is an obsolete source route ("@a,@b").
type Address struct {
	Name, ADL, Mailbox, Host string
}

// IsGroupStart reports whether a is the start marker of a group.
func (a *Address) IsGroupStart() bool { return a.Host == "" && a.Mailbox != "" }

// IsGroupEnd reports whether a is the end marker of a group.
func (a *Address) IsGroupEnd() bool { return *a == Address{} }

// Param is one parameter of a MIME header field (their order is kept).
type Param struct {
	Name, Value string
}

// BodyStructure describes one MIME part for BODY and BODYSTRUCTURE (RFC
// 9051 §7.5.2). A multipart has Parts and Subtype; a message/rfc822 (or
// message/global) part has Envelope and Message. Strings "" are NIL
// (Encoding defaults to "7BIT").
type BodyStructure struct {
	Type, Subtype string
	Params        []Param
	ID            string
	Description   string
	Encoding      string
	Size          int64 // octets of the body, as transferred
	Lines         int64 // text/* and message/rfc822: LF count of the body
	Envelope      *Envelope
	Message       *BodyStructure
	Parts         []*BodyStructure

	// Extension data (BODYSTRUCTURE only).
	MD5               string
	Disposition       string
	DispositionParams []Param
	Language          []string
	Location          string

	// Where the part lies in the message, for section extraction; not
	// written by protocols. Offsets count from the start of the message:
	// the part's MIME header is [HeaderStart, BodyStart) (blank line
	// included), its body [BodyStart, End). A message/rfc822 part's
	// Message starts at the part's BodyStart.
	HeaderStart, BodyStart, End int64
	// DecodedSize is the size of the body once its transfer encoding is
	// removed (BINARY.SIZE, RFC 3516); -1 if the encoding is unknown.
	// Multiparts have 0.
	DecodedSize int64
}

// IsMultipart reports whether bs is a multipart.
func (bs *BodyStructure) IsMultipart() bool { return len(bs.Parts) > 0 }

// IsMessage reports whether bs encapsulates a message (message/rfc822 or
// message/global) whose structure is known.
func (bs *BodyStructure) IsMessage() bool { return bs.Message != nil }
