package wire

import (
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// UpdateWriter writes the untagged responses of a Session: the data of
// FETCH and STORE, EXPUNGE, unilateral updates from Poll, and NOTIFY's.
// Methods return the connection's write error, which is sticky: once one
// fails the client is gone or the stream is broken, and the dispatcher
// closes the connection after the command.
type UpdateWriter struct {
	c        *Conn
	vanished imap.UIDSet // EXPUNGEs held for one VANISHED (QRESYNC)
	fetch    *FetchResponse
}

func (w *UpdateWriter) enc() *encoder { return &w.c.enc }

// begin closes what a previous response left open (an unclosed FETCH,
// held VANISHED UIDs) before another response starts.
func (w *UpdateWriter) begin() {
	if w.fetch != nil {
		w.fetch.Close()
	}
	w.flushVanished()
}

// end is called by the dispatcher when the Session's method returns.
func (w *UpdateWriter) end() error {
	w.begin()
	return w.c.enc.err
}

func (w *UpdateWriter) flushVanished() {
	if len(w.vanished) == 0 {
		return
	}
	e := w.enc()
	e.raw("* VANISHED ")
	e.set(w.vanished)
	e.crlf()
	w.vanished = nil
}

// Err returns the first write error.
func (w *UpdateWriter) Err() error { return w.c.enc.err }

// Exists writes "* n EXISTS".
func (w *UpdateWriter) Exists(n uint32) error {
	w.begin()
	e := w.enc()
	e.raw("* ")
	e.number(n)
	e.raw(" EXISTS\r\n")
	return e.err
}

// Recent writes "* n RECENT" to IMAP4rev1 clients; for IMAP4rev2 clients
// (which have no \Recent) it writes nothing.
func (w *UpdateWriter) Recent(n uint32) error {
	if w.c.Enabled(imap.CapIMAP4rev2) {
		return w.Err()
	}
	w.begin()
	e := w.enc()
	e.raw("* ")
	e.number(n)
	e.raw(" RECENT\r\n")
	return e.err
}

// Expunge reports that the message seq (with UID uid) is gone. It writes
// "* seq EXPUNGE", or, once the client enabled QRESYNC, adds uid to one
// "* VANISHED" response written before the next response of another kind
// (RFC 7162 §3.2.10). The Session gives them in the order that keeps
// sequence numbers valid (each seq as the client numbers messages after
// the previous EXPUNGE).
func (w *UpdateWriter) Expunge(seq uint32, uid imap.UID) error {
	if w.c.Enabled(imap.CapQResync) {
		if w.fetch != nil {
			w.fetch.Close()
		}
		w.vanished.AddNum(uid)
		return w.Err()
	}
	w.begin()
	e := w.enc()
	e.raw("* ")
	e.number(seq)
	e.raw(" EXPUNGE\r\n")
	return e.err
}

// Vanished writes "* VANISHED [(EARLIER)] uids" (RFC 7162 §3.2.10).
func (w *UpdateWriter) Vanished(uids imap.UIDSet, earlier bool) error {
	if len(uids) == 0 {
		return w.Err()
	}
	w.begin()
	e := w.enc()
	e.raw("* VANISHED ")
	if earlier {
		e.raw("(EARLIER) ")
	}
	e.set(uids)
	e.crlf()
	return e.err
}

// Flags writes "* FLAGS (…)": the flags defined in the mailbox, again
// whenever a new keyword appears.
func (w *UpdateWriter) Flags(flags []imap.Flag) error {
	w.begin()
	e := w.enc()
	e.raw("* FLAGS ")
	e.flags(flags)
	e.crlf()
	return e.err
}

// PermanentFlags writes "* OK [PERMANENTFLAGS (…)]", again when a new
// keyword appears.
func (w *UpdateWriter) PermanentFlags(flags []imap.Flag) error {
	w.begin()
	e := w.enc()
	e.raw("* OK [PERMANENTFLAGS ")
	e.flags(flags)
	e.raw("] Flags permitted\r\n")
	return e.err
}

// HighestModSeq writes "* OK [HIGHESTMODSEQ n]".
func (w *UpdateWriter) HighestModSeq(n uint64) error {
	w.begin()
	e := w.enc()
	e.raw("* OK [HIGHESTMODSEQ ")
	e.number64(n)
	e.raw("] Highest\r\n")
	return e.err
}

// CopyUID writes "* OK [COPYUID …]" for MOVE (RFC 6851 §4.3).
func (w *UpdateWriter) CopyUID(d *imap.CopyData) error {
	if d == nil || len(d.SourceUIDs) == 0 {
		return w.Err()
	}
	w.begin()
	e := w.enc()
	e.raw("* OK [")
	e.raw(copyUIDCode(d))
	e.raw("] Moved\r\n")
	return e.err
}

func copyUIDCode(d *imap.CopyData) string {
	return "COPYUID " + strconv.FormatUint(uint64(d.UIDValidity), 10) + " " + d.SourceUIDs.String() + " " + d.DestUIDs.String()
}

// Alert writes "* OK [ALERT] text", which clients show to the user.
func (w *UpdateWriter) Alert(text string) error {
	w.begin()
	e := w.enc()
	e.raw("* OK [ALERT] ")
	e.raw(safeText(text))
	e.crlf()
	return e.err
}

// Status writes "* STATUS mailbox (…)" with items (NOTIFY, RFC 5465 §5).
func (w *UpdateWriter) Status(d *StatusData, items StatusItems) error {
	w.begin()
	w.c.writeStatusData(d, &items)
	return w.Err()
}

// NotificationOverflow writes "* OK [NOTIFICATIONOVERFLOW]": the Session
// dropped notifications and has cleared NOTIFY (RFC 5465 §5.8).
func (w *UpdateWriter) NotificationOverflow() error {
	w.begin()
	e := w.enc()
	e.raw("* OK [NOTIFICATIONOVERFLOW] Too many notifications; NOTIFY is off\r\n")
	return e.err
}

// List writes "* LIST …" (NOTIFY's MailboxName and SubscriptionChange).
func (w *UpdateWriter) List(d *ListData) error {
	w.begin()
	w.c.writeList(d, false)
	return w.Err()
}

// ContextChange is one position of an ADDTO or REMOVEFROM (RFC 5267 §4.3):
// Nums inserted at (or removed from) Position of the result (0 when the
// result is not sorted).
type ContextChange struct {
	Position uint32
	Nums     []uint32
}

// SearchUpdate is one change of a result kept current with RETURN
// (UPDATE).
type SearchUpdate struct {
	Tag        string
	UID        bool
	AddTo      []ContextChange
	RemoveFrom []ContextChange
}

// SearchUpdate writes "* ESEARCH (TAG …) [UID] ADDTO (…) REMOVEFROM (…)".
func (w *UpdateWriter) SearchUpdate(u *SearchUpdate) error {
	w.begin()
	e := w.enc()
	e.raw("* ESEARCH (TAG ")
	e.quoted(safeTag(u.Tag))
	e.byte(')')
	if u.UID {
		e.raw(" UID")
	}
	for _, part := range []struct {
		name string
		cs   []ContextChange
	}{{"ADDTO", u.AddTo}, {"REMOVEFROM", u.RemoveFrom}} {
		if len(part.cs) == 0 {
			continue
		}
		e.raw(" " + part.name + " (")
		for i, c := range part.cs {
			if i > 0 {
				e.sp()
			}
			e.number(c.Position)
			e.sp()
			e.numList(c.Nums)
		}
		e.byte(')')
	}
	e.crlf()
	return e.err
}

func safeTag(t string) string {
	for i := 0; i < len(t); i++ {
		if !isTagChar(t[i]) {
			return "*"
		}
	}
	return t
}

// Fetch begins "* seq FETCH (…)". Write its items, then Close it; a
// response left open is closed by the next one.
func (w *UpdateWriter) Fetch(seq uint32) *FetchResponse {
	w.begin()
	f := &FetchResponse{w: w, seq: seq}
	w.fetch = f
	return f
}

// FetchResponse writes the items of one FETCH response in the order its
// methods are called.
type FetchResponse struct {
	w      *UpdateWriter
	seq    uint32
	n      int
	closed bool
}

func (f *FetchResponse) item(name string) *encoder {
	e := f.w.enc()
	if f.closed {
		return &encoder{err: errUsedAfterClose}
	}
	if f.n == 0 {
		e.raw("* ")
		e.number(f.seq)
		e.raw(" FETCH (")
	} else {
		e.sp()
	}
	f.n++
	e.raw(name)
	e.sp()
	return e
}

var errUsedAfterClose = io.ErrClosedPipe

// Close ends the response.
func (f *FetchResponse) Close() error {
	if f.closed {
		return f.w.Err()
	}
	f.closed = true
	if f.w.fetch == f {
		f.w.fetch = nil
	}
	e := f.w.enc()
	if f.n == 0 {
		// A FETCH response needs at least one item; with none asked for
		// there is nothing to say.
		return e.err
	}
	e.raw(")\r\n")
	return e.err
}

// UID writes UID.
func (f *FetchResponse) UID(uid imap.UID) { f.item("UID").number(uint32(uid)) }

// Flags writes FLAGS.
func (f *FetchResponse) Flags(flags []imap.Flag) { f.item("FLAGS").flags(flags) }

// ModSeq writes MODSEQ (n).
func (f *FetchResponse) ModSeq(n uint64) {
	e := f.item("MODSEQ")
	e.byte('(')
	e.number64(n)
	e.byte(')')
}

// InternalDate writes INTERNALDATE.
func (f *FetchResponse) InternalDate(t time.Time) { f.item("INTERNALDATE").dateTime(t) }

// SaveDate writes SAVEDATE, NIL for the zero time (RFC 8514).
func (f *FetchResponse) SaveDate(t time.Time) {
	e := f.item("SAVEDATE")
	if t.IsZero() {
		e.raw("NIL")
		return
	}
	e.dateTime(t)
}

// RFC822Size writes RFC822.SIZE.
func (f *FetchResponse) RFC822Size(n int64) { f.item("RFC822.SIZE").int64(n) }

// EmailID writes EMAILID (id) (RFC 8474).
func (f *FetchResponse) EmailID(id string) {
	e := f.item("EMAILID")
	e.byte('(')
	e.raw(cleanObjectID(id))
	e.byte(')')
}

// ThreadID writes THREADID (id), or NIL when id is "".
func (f *FetchResponse) ThreadID(id string) {
	e := f.item("THREADID")
	if id == "" {
		e.raw("NIL")
		return
	}
	e.byte('(')
	e.raw(cleanObjectID(id))
	e.byte(')')
}

func cleanObjectID(id string) string {
	id = strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return -1
	}, id)
	if id == "" {
		return "-"
	}
	return id
}

// Preview writes PREVIEW (RFC 8970): the text, or NIL when !ok (none
// available, or LAZY and not computed yet).
func (f *FetchResponse) Preview(text string, ok bool) {
	e := f.item("PREVIEW")
	if !ok {
		e.raw("NIL")
		return
	}
	e.string(text)
}

// Envelope writes ENVELOPE.
func (f *FetchResponse) Envelope(env *Envelope) { writeEnvelope(f.item("ENVELOPE"), env) }

// BodyStructure writes BODYSTRUCTURE, or BODY (no extension data) when
// !extended.
func (f *FetchResponse) BodyStructure(bs *BodyStructure, extended bool) {
	name := "BODY"
	if extended {
		name = "BODYSTRUCTURE"
	}
	writeBody(f.item(name), bs, extended)
}

// Section writes one BODY[…], BINARY[…] or RFC822… item: size bytes read
// from body, as a literal (a literal8 for BINARY). body must give exactly
// size bytes: if it gives fewer the response cannot be completed, the
// method returns an error and the connection is closed after the command.
// A plain BODY literal cannot carry NUL: give a BINARY item's content, or
// re-encode, when the part has NUL bytes.
func (f *FetchResponse) Section(s *BodySection, size int64, body io.Reader) error {
	e := f.item(sectionName(s))
	e.literalHeader(size, s.Binary)
	return e.copyLiteral(body, size)
}

// SectionNil writes a section item as NIL (a part that does not exist).
func (f *FetchResponse) SectionNil(s *BodySection) { f.item(sectionName(s)).raw("NIL") }

// BinarySize writes BINARY.SIZE[part] n (RFC 3516).
func (f *FetchResponse) BinarySize(part []int, n int64) {
	f.item("BINARY.SIZE[" + partString(part) + "]").int64(n)
}

// sectionName is the name a response gives to s (without PEEK; with the
// origin of a partial fetch, RFC 9051 §7.5.2).
func sectionName(s *BodySection) string {
	if s.RFC822 != "" {
		return s.RFC822
	}
	var sb strings.Builder
	if s.Binary {
		sb.WriteString("BINARY[")
	} else {
		sb.WriteString("BODY[")
	}
	sb.WriteString(partString(s.Part))
	if s.Specifier != imap.PartSpecifierNone {
		if len(s.Part) > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(string(s.Specifier))
		if len(s.HeaderFields) > 0 {
			sb.WriteString(".FIELDS")
			if s.HeaderFieldsNot {
				sb.WriteString(".NOT")
			}
			sb.WriteString(" (")
			var buf strings.Builder
			for i, h := range s.HeaderFields {
				if i > 0 {
					sb.WriteByte(' ')
				}
				sb.WriteString(astringOf(h, &buf))
			}
			sb.WriteByte(')')
		}
	}
	sb.WriteByte(']')
	if s.Partial != nil {
		sb.WriteByte('<')
		sb.WriteString(strconv.FormatInt(s.Partial.Offset, 10))
		sb.WriteByte('>')
	}
	return sb.String()
}

// astringOf returns s as an atom when it is one, else quoted (header
// field names are printable ASCII, checked by the parser).
func astringOf(s string, buf *strings.Builder) string {
	atom := s != ""
	for i := 0; i < len(s); i++ {
		if !isAstringChar(s[i]) {
			atom = false
			break
		}
	}
	if atom {
		return s
	}
	buf.Reset()
	buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			buf.WriteByte('\\')
		}
		buf.WriteByte(s[i])
	}
	buf.WriteByte('"')
	return buf.String()
}

func partString(part []int) string {
	var sb strings.Builder
	for i, p := range part {
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(strconv.Itoa(p))
	}
	return sb.String()
}

// writeEnvelope writes an envelope (RFC 9051 §7.5.2).
func writeEnvelope(e *encoder, env *Envelope) {
	if env == nil {
		e.raw("NIL")
		return
	}
	e.byte('(')
	e.nstring(env.Date)
	e.sp()
	e.nstring(env.Subject)
	for _, l := range [][]Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		e.sp()
		writeAddresses(e, l)
	}
	e.sp()
	e.nstring(env.InReplyTo)
	e.sp()
	e.nstring(env.MessageID)
	e.byte(')')
}

// writeAddresses writes "(" 1*address ")" (no spaces between addresses,
// as the grammar has it) or NIL.
func writeAddresses(e *encoder, l []Address) {
	if len(l) == 0 {
		e.raw("NIL")
		return
	}
	e.byte('(')
	for _, a := range l {
		e.byte('(')
		e.nstring(a.Name)
		e.sp()
		e.nstring(a.ADL)
		e.sp()
		e.nstring(a.Mailbox)
		e.sp()
		e.nstring(a.Host)
		e.byte(')')
	}
	e.byte(')')
}

// writeBody writes a body structure (RFC 9051 §7.5.2 "body"), with
// extension data when extended.
func writeBody(e *encoder, bs *BodyStructure, extended bool) {
	if bs == nil {
		e.raw("NIL")
		return
	}
	e.byte('(')
	if bs.IsMultipart() {
		for _, p := range bs.Parts {
			writeBody(e, p, extended)
		}
		e.sp()
		e.string(upperOr(bs.Subtype, "MIXED"))
		if extended {
			e.sp()
			writeParams(e, bs.Params)
			writeBodyExt(e, bs)
		}
		e.byte(')')
		return
	}
	typ, sub := upperOr(bs.Type, "TEXT"), upperOr(bs.Subtype, "PLAIN")
	e.string(typ)
	e.sp()
	e.string(sub)
	e.sp()
	writeParams(e, bs.Params)
	e.sp()
	e.nstring(bs.ID)
	e.sp()
	e.nstring(bs.Description)
	e.sp()
	e.string(upperOr(bs.Encoding, "7BIT"))
	e.sp()
	e.int64(bs.Size)
	switch {
	case typ == "MESSAGE" && (sub == "RFC822" || sub == "GLOBAL") && bs.Message != nil:
		e.sp()
		writeEnvelope(e, bs.Envelope)
		e.sp()
		writeBody(e, bs.Message, extended)
		e.sp()
		e.int64(bs.Lines)
	case typ == "TEXT":
		e.sp()
		e.int64(bs.Lines)
	}
	if extended {
		e.sp()
		e.nstring(bs.MD5)
		writeBodyExt(e, bs)
	}
	e.byte(')')
}

// writeBodyExt writes SP disposition SP language SP location.
func writeBodyExt(e *encoder, bs *BodyStructure) {
	e.sp()
	if bs.Disposition == "" {
		e.raw("NIL")
	} else {
		e.byte('(')
		e.string(strings.ToUpper(bs.Disposition))
		e.sp()
		writeParams(e, bs.DispositionParams)
		e.byte(')')
	}
	e.sp()
	switch len(bs.Language) {
	case 0:
		e.raw("NIL")
	case 1:
		e.string(bs.Language[0])
	default:
		e.byte('(')
		for i, l := range bs.Language {
			if i > 0 {
				e.sp()
			}
			e.string(l)
		}
		e.byte(')')
	}
	e.sp()
	e.nstring(bs.Location)
}

func writeParams(e *encoder, ps []Param) {
	if len(ps) == 0 {
		e.raw("NIL")
		return
	}
	e.byte('(')
	for i, p := range ps {
		if i > 0 {
			e.sp()
		}
		e.string(strings.ToUpper(p.Name))
		e.sp()
		e.string(p.Value)
	}
	e.byte(')')
}

func upperOr(s, def string) string {
	if s == "" {
		return def
	}
	return strings.ToUpper(s)
}

// ListWriter writes the responses of one LIST or LSUB command.
type ListWriter struct {
	c   *Conn
	cmd *List
	uw  *UpdateWriter
}

// List writes one LIST (or LSUB) response, followed by its STATUS when
// the command asked for LIST-STATUS and d.Status is set.
func (w *ListWriter) List(d *ListData) error {
	w.uw.begin()
	w.c.writeList(d, w.cmd.LSUB)
	if d.Status != nil && w.cmd.Options.ReturnStatus != nil {
		st := *d.Status
		if st.Mailbox == "" {
			st.Mailbox = d.Mailbox
		}
		w.c.writeStatusData(&st, w.cmd.Options.ReturnStatus)
	}
	return w.c.enc.err
}

// writeList writes "* LIST (attrs) delim name [extended data]".
func (c *Conn) writeList(d *ListData, lsub bool) {
	e := &c.enc
	if lsub {
		e.raw("* LSUB (")
	} else {
		e.raw("* LIST (")
	}
	n := 0
	for _, a := range d.Attrs {
		if !validFlag(string(a)) {
			continue
		}
		if n > 0 {
			e.sp()
		}
		e.raw(string(a))
		n++
	}
	e.raw(") ")
	if d.Delim == 0 {
		e.raw("NIL")
	} else {
		e.quoted(string(d.Delim))
	}
	e.sp()
	e.mailbox(d.Mailbox)
	if d.ChildInfo || d.OldName != "" {
		e.raw(" (")
		if d.ChildInfo {
			e.raw(`"CHILDINFO" ("SUBSCRIBED")`)
		}
		if d.OldName != "" {
			if d.ChildInfo {
				e.sp()
			}
			e.raw(`"OLDNAME" (`)
			e.mailbox(d.OldName)
			e.byte(')')
		}
		e.byte(')')
	}
	e.crlf()
}

// writeStatusData writes "* STATUS mailbox (items)".
func (c *Conn) writeStatusData(d *StatusData, it *StatusItems) {
	e := &c.enc
	e.raw("* STATUS ")
	e.mailbox(d.Mailbox)
	e.raw(" (")
	n := 0
	item := func(name string) {
		if n > 0 {
			e.sp()
		}
		n++
		e.raw(name)
		e.sp()
	}
	if it.Messages {
		item("MESSAGES")
		e.number(d.Messages)
	}
	if it.Recent {
		item("RECENT")
		e.number(d.Recent)
	}
	if it.UIDNext {
		item("UIDNEXT")
		e.number(uint32(d.UIDNext))
	}
	if it.UIDValidity {
		item("UIDVALIDITY")
		e.number(d.UIDValidity)
	}
	if it.Unseen {
		item("UNSEEN")
		e.number(d.Unseen)
	}
	if it.Deleted {
		item("DELETED")
		e.number(d.Deleted)
	}
	if it.Size {
		item("SIZE")
		e.int64(d.Size)
	}
	if it.AppendLimit {
		item("APPENDLIMIT")
		limit := d.AppendLimit
		if limit <= 0 {
			limit = c.lim.AppendLimit
		}
		e.int64(limit)
	}
	if it.DeletedStorage {
		item("DELETED-STORAGE")
		e.int64(d.DeletedStorage)
	}
	if it.HighestModSeq {
		item("HIGHESTMODSEQ")
		e.number64(d.HighestModSeq)
	}
	if it.MailboxID && d.MailboxID != "" {
		item("MAILBOXID")
		e.byte('(')
		e.raw(cleanObjectID(d.MailboxID))
		e.byte(')')
	}
	e.raw(")\r\n")
}
