package wire

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
)

// memBackend is an in-memory Session for driving the dispatcher in tests:
// one account, mailboxes of raw messages, sequence numbers per session,
// unilateral updates between sessions. It implements just enough of IMAP
// to be a real peer for the go-imap client and imaplib; it is not the
// product.
type memBackend struct {
	mu        sync.Mutex
	user      string
	pass      string
	mailboxes map[string]*memMailbox // guarded by mu
	nextUV    uint32                 // guarded by mu
	sessions  map[*memSession]bool   // guarded by mu

	// waker makes the sessions SessionWakers.
	waker bool

	// Observations for tests.
	appendReads   []int // sizes of the Read calls the last appender made
	appendStarted int   // Appender created
	logins        int
	lastSearch    *Search
	lastFetch     *Fetch
	lastNotify    *Notify
	quota         int64 // largest message APPEND takes; 0: any
	// blocked receives the error of the context of a SEARCH TEXT "block",
	// which waits for that context to end.
	blocked chan error
	// bye makes Poll end every session with BYE (a deleted mailbox).
	bye bool
}

type memMailbox struct {
	name        string
	uidValidity uint32
	uidNext     uint32
	modseq      uint64
	msgs        []*memMsg
	subscribed  bool
}

type memMsg struct {
	uid    uint32
	flags  []imap.Flag
	date   time.Time
	body   []byte
	modseq uint64
}

func newMemBackend() *memBackend {
	b := &memBackend{user: "user", pass: "pass", nextUV: 1, mailboxes: map[string]*memMailbox{}, sessions: map[*memSession]bool{}}
	b.createLocked("INBOX")
	return b
}

func (b *memBackend) createLocked(name string) *memMailbox {
	mb := &memMailbox{name: name, uidValidity: b.nextUV, uidNext: 1, modseq: 1}
	b.nextUV++
	b.mailboxes[name] = mb
	return mb
}

// deliver adds a message to a mailbox from outside any session.
func (b *memBackend) deliver(mailbox string, body string, flags ...imap.Flag) uint32 {
	b.mu.Lock()
	mb := b.mailboxes[mailbox]
	uid := mb.addLocked([]byte(body), flags, time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC))
	b.mu.Unlock()
	b.signal()
	return uid
}

func (mb *memMailbox) addLocked(body []byte, flags []imap.Flag, date time.Time) uint32 {
	mb.modseq++
	m := &memMsg{uid: mb.uidNext, flags: slices.Clone(flags), date: date, body: body, modseq: mb.modseq}
	mb.uidNext++
	mb.msgs = append(mb.msgs, m)
	return m.uid
}

func (b *memBackend) signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.sessions {
		select {
		case s.updates <- struct{}{}:
		default:
		}
		if s.onUpdates != nil {
			s.onUpdates()
		}
	}
}

func (b *memBackend) newSession(c *Conn) (Session, error) {
	s := &memSession{b: b, c: c, updates: make(chan struct{}, 1)}
	b.mu.Lock()
	b.sessions[s] = true
	waker := b.waker
	b.mu.Unlock()
	if waker {
		return wakingSession{s}, nil
	}
	return s, nil
}

type memSession struct {
	b       *memBackend
	c       *Conn
	authed  bool
	sel     *memMailbox
	ro      bool
	known   []uint32 // the client's view: UIDs by sequence number
	updates chan struct{}
	// onUpdates is the SessionWaker's function; guarded by b.mu.
	onUpdates func()
	saved     []uint32
	notify    bool
}

var _ Session = (*memSession)(nil)
var _ SessionSort = (*memSession)(nil)
var _ SessionQuota = (*memSession)(nil)
var _ SessionNotify = (*memSession)(nil)
var _ SessionThread = (*memSession)(nil)
var _ SessionSearchContext = (*memSession)(nil)
var _ SessionQResync = (*memSession)(nil)

func (s *memSession) Close() error {
	s.b.mu.Lock()
	delete(s.b.sessions, s)
	s.b.mu.Unlock()
	return nil
}

func (s *memSession) Login(ctx context.Context, user string, pass []byte) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.logins++
	if user != s.b.user || string(pass) != s.b.pass {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Invalid credentials"}
	}
	s.authed = true
	return nil
}

func (s *memSession) Unauthenticate(ctx context.Context) error {
	s.authed, s.sel, s.known = false, nil, nil
	return nil
}

func (s *memSession) Namespace(ctx context.Context) (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: '/'}}}, nil
}

var errNoMailbox = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}

func (s *memSession) Select(ctx context.Context, cmd *Select) (*SelectData, error) {
	s.sel, s.known = nil, nil
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	mb := s.b.mailboxes[cmd.Mailbox]
	if mb == nil {
		return nil, errNoMailbox
	}
	s.sel, s.ro = mb, cmd.ReadOnly
	d := &SelectData{
		Flags:          []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft},
		PermanentFlags: []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft, imap.FlagWildcard},
		UIDNext:        imap.UID(mb.uidNext),
		UIDValidity:    mb.uidValidity,
		HighestModSeq:  mb.modseq,
		ReadOnly:       cmd.ReadOnly,
		List:           &ListData{Mailbox: mb.name, Delim: '/'},
	}
	for i, m := range mb.msgs {
		s.known = append(s.known, m.uid)
		if d.FirstUnseen == 0 && !slices.Contains(m.flags, imap.FlagSeen) {
			d.FirstUnseen = uint32(i + 1)
		}
	}
	d.Exists = uint32(len(s.known))
	return d, nil
}

// Resync writes the changes since the client's mod-sequence (no
// VANISHED: this Session does not remember expunged UIDs).
func (s *memSession) Resync(ctx context.Context, w *UpdateWriter, cmd *Select) error {
	q := cmd.QResync
	if q.UIDValidity != s.sel.uidValidity {
		return nil
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	for _, m := range s.sel.msgs {
		if m.modseq > q.ModSeq {
			f := w.Fetch(s.seqOf(m.uid))
			f.UID(imap.UID(m.uid))
			f.Flags(m.flags)
			f.ModSeq(m.modseq)
			f.Close()
		}
	}
	return w.Err()
}

func (s *memSession) seqOf(uid uint32) uint32 {
	for i, u := range s.known {
		if u == uid {
			return uint32(i + 1)
		}
	}
	return 0
}

func (s *memSession) Unselect(ctx context.Context, expunge bool) error {
	if expunge && !s.ro && s.sel != nil {
		s.b.mu.Lock()
		s.sel.msgs = slices.DeleteFunc(s.sel.msgs, func(m *memMsg) bool { return slices.Contains(m.flags, imap.FlagDeleted) })
		s.b.mu.Unlock()
		s.b.signal()
	}
	s.sel, s.known = nil, nil
	return nil
}

func (s *memSession) Create(ctx context.Context, cmd *Create) (*CreateData, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.mailboxes[cmd.Mailbox] != nil {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Mailbox exists"}
	}
	mb := s.b.createLocked(cmd.Mailbox)
	return &CreateData{MailboxID: fmt.Sprintf("M%d", mb.uidValidity)}, nil
}

func (s *memSession) Delete(ctx context.Context, name string) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.mailboxes[name] == nil {
		return errNoMailbox
	}
	delete(s.b.mailboxes, name)
	return nil
}

func (s *memSession) Rename(ctx context.Context, cmd *Rename) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	mb := s.b.mailboxes[cmd.Mailbox]
	if mb == nil {
		return errNoMailbox
	}
	delete(s.b.mailboxes, cmd.Mailbox)
	mb.name = cmd.NewName
	s.b.mailboxes[cmd.NewName] = mb
	return nil
}

func (s *memSession) Subscribe(ctx context.Context, name string, on bool) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	mb := s.b.mailboxes[name]
	if mb == nil {
		return errNoMailbox
	}
	mb.subscribed = on
	return nil
}

// matchPattern is a simple LIST matcher: * any, % any but "/".
func matchPattern(pat, name string) bool {
	if pat == "" {
		return name == ""
	}
	switch pat[0] {
	case '*':
		for i := 0; i <= len(name); i++ {
			if matchPattern(pat[1:], name[i:]) {
				return true
			}
		}
		return false
	case '%':
		for i := 0; i <= len(name); i++ {
			if matchPattern(pat[1:], name[i:]) {
				return true
			}
			if i < len(name) && name[i] == '/' {
				return false
			}
		}
		return false
	}
	return name != "" && name[0] == pat[0] && matchPattern(pat[1:], name[1:])
}

func (s *memSession) List(ctx context.Context, w *ListWriter, cmd *List) error {
	if len(cmd.Patterns) == 1 && cmd.Patterns[0] == "" {
		return w.List(&ListData{Delim: '/', Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}})
	}
	s.b.mu.Lock()
	var names []string
	for n, mb := range s.b.mailboxes {
		if (cmd.LSUB || cmd.Options.SelectSubscribed) && !mb.subscribed {
			continue
		}
		for _, p := range cmd.Patterns {
			if matchPattern(cmd.Ref+p, n) {
				names = append(names, n)
				break
			}
		}
	}
	sort.Strings(names)
	var out []*ListData
	for _, n := range names {
		mb := s.b.mailboxes[n]
		d := &ListData{Mailbox: n, Delim: '/', Attrs: []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}}
		if cmd.Options.ReturnStatus != nil {
			d.Status = &StatusData{Messages: uint32(len(mb.msgs)), UIDNext: imap.UID(mb.uidNext), UIDValidity: mb.uidValidity}
		}
		out = append(out, d)
	}
	s.b.mu.Unlock()
	for _, d := range out {
		if err := w.List(d); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSession) Status(ctx context.Context, cmd *Status) (*StatusData, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	mb := s.b.mailboxes[cmd.Mailbox]
	if mb == nil {
		return nil, errNoMailbox
	}
	d := &StatusData{Mailbox: mb.name, Messages: uint32(len(mb.msgs)), UIDNext: imap.UID(mb.uidNext), UIDValidity: mb.uidValidity, HighestModSeq: mb.modseq}
	for _, m := range mb.msgs {
		if !slices.Contains(m.flags, imap.FlagSeen) {
			d.Unseen++
		}
		d.Size += int64(len(m.body))
	}
	return d, nil
}

// memAppender collects the messages of one APPEND.
type memAppender struct {
	s    *memSession
	mb   string
	msgs []*memMsg
}

func (s *memSession) Append(ctx context.Context, cmd *Append) (Appender, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.mailboxes[cmd.Mailbox] == nil {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	s.b.appendStarted++
	s.b.appendReads = nil
	return &memAppender{s: s, mb: cmd.Mailbox}, nil
}

func (a *memAppender) AddMessage(ctx context.Context, m *AppendMessage) error {
	var buf bytes.Buffer
	p := make([]byte, 1024)
	for {
		n, err := m.Body.Read(p)
		buf.Write(p[:n])
		if n > 0 {
			a.s.b.mu.Lock()
			a.s.b.appendReads = append(a.s.b.appendReads, n)
			a.s.b.mu.Unlock()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if buf.Len() == 0 {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Empty message"}
	}
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	a.msgs = append(a.msgs, &memMsg{flags: m.Flags, date: date, body: buf.Bytes()})
	return nil
}

func (a *memAppender) OpenURL(ctx context.Context, url string) (io.ReadCloser, error) {
	if url == "/INBOX;UIDVALIDITY=1/;UID=1" {
		a.s.b.mu.Lock()
		defer a.s.b.mu.Unlock()
		for _, m := range a.s.b.mailboxes["INBOX"].msgs {
			if m.uid == 1 {
				return io.NopCloser(bytes.NewReader(m.body)), nil
			}
		}
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode("BADURL " + url), Text: "Bad URL"}
}

func (a *memAppender) Commit(ctx context.Context) (*AppendData, error) {
	a.s.b.mu.Lock()
	mb := a.s.b.mailboxes[a.mb]
	d := &AppendData{UIDValidity: mb.uidValidity}
	for _, m := range a.msgs {
		d.UIDs.AddNum(imap.UID(mb.addLocked(m.body, m.flags, m.date)))
	}
	a.s.b.mu.Unlock()
	a.s.b.signal()
	return d, nil
}

func (a *memAppender) Abort() { a.msgs = nil }

// CheckMessage refuses, before "+", messages over the test quota.
func (a *memAppender) CheckMessage(ctx context.Context, m *AppendMessage) error {
	a.s.b.mu.Lock()
	defer a.s.b.mu.Unlock()
	if a.s.b.quota > 0 && m.Size > a.s.b.quota {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota, Text: "Over quota"}
	}
	return nil
}

// resolve returns the (seq, message) pairs of a set in the client's view.
func (s *memSession) resolveLocked(set imap.NumSet, uid bool) []memRef {
	byUID := map[uint32]*memMsg{}
	for _, m := range s.sel.msgs {
		byUID[m.uid] = m
	}
	var out []memRef
	if imap.IsSearchRes(set) {
		for _, u := range s.saved {
			if seq := s.seqOf(u); seq != 0 && byUID[u] != nil {
				out = append(out, memRef{seq, byUID[u]})
			}
		}
		return out
	}
	n := uint32(len(s.known))
	for i, u := range s.known {
		seq := uint32(i + 1)
		var in bool
		switch st := set.(type) {
		case imap.SeqSet:
			in = containsStar(st, seq, n)
		case imap.UIDSet:
			var maxUID uint32
			if n > 0 {
				maxUID = s.known[n-1]
			}
			ss := make(imap.SeqSet, len(st))
			for j, r := range st {
				ss[j] = imap.SeqRange{Start: uint32(r.Start), Stop: uint32(r.Stop)}
			}
			in = containsStar(ss, u, maxUID)
		}
		if in && byUID[u] != nil {
			out = append(out, memRef{seq, byUID[u]})
		}
	}
	return out
}

func containsStar(set imap.SeqSet, n, max uint32) bool {
	for _, r := range set {
		a, b := r.Start, r.Stop
		if a == 0 {
			a = max
		}
		if b == 0 {
			b = max
		}
		if a > b {
			a, b = b, a
		}
		if n >= a && n <= b {
			return true
		}
	}
	return false
}

type memRef struct {
	seq uint32
	m   *memMsg
}

func (s *memSession) Fetch(ctx context.Context, w *UpdateWriter, cmd *Fetch) error {
	s.b.mu.Lock()
	s.b.lastFetch = cmd
	refs := s.resolveLocked(cmd.Set, cmd.UID)
	s.b.mu.Unlock()
	for _, r := range refs {
		m := r.m
		if cmd.ChangedSince != 0 && m.modseq <= cmd.ChangedSince {
			continue
		}
		seen := false
		if cmd.Items.SetsSeen() && !s.ro && !slices.Contains(m.flags, imap.FlagSeen) {
			s.b.mu.Lock()
			m.flags = append(m.flags, imap.FlagSeen)
			s.b.mu.Unlock()
			seen = true
		}
		f := w.Fetch(r.seq)
		if cmd.Items.UID {
			f.UID(imap.UID(m.uid))
		}
		if cmd.Items.Flags || seen {
			f.Flags(m.flags)
		}
		if cmd.Items.InternalDate {
			f.InternalDate(m.date)
		}
		if cmd.Items.RFC822Size {
			f.RFC822Size(int64(len(m.body)))
		}
		if cmd.Items.ModSeq {
			f.ModSeq(m.modseq)
		}
		if cmd.Items.Envelope {
			f.Envelope(memEnvelope(m.body))
		}
		if cmd.Items.BodyStructure || cmd.Items.Body {
			hdr, _, _ := bytes.Cut(m.body, []byte("\r\n\r\n"))
			f.BodyStructure(&BodyStructure{Type: "text", Subtype: "plain", Params: []Param{{Name: "charset", Value: "us-ascii"}},
				Size: int64(len(m.body) - len(hdr) - 4), Lines: int64(bytes.Count(m.body, []byte("\n")) - bytes.Count(hdr, []byte("\n")) - 1)}, cmd.Items.BodyStructure)
		}
		for _, sec := range cmd.Items.Sections {
			data := m.body
			hdr, text, _ := bytes.Cut(m.body, []byte("\r\n\r\n"))
			switch {
			case len(sec.Part) > 1:
				f.SectionNil(sec)
				continue
			case sec.Specifier == imap.PartSpecifierHeader:
				data = append(hdr, "\r\n\r\n"...)
			case sec.Specifier == imap.PartSpecifierText:
				data = text
			}
			if p := sec.Partial; p != nil {
				off := min(p.Offset, int64(len(data)))
				data = data[off:min(off+p.Size, int64(len(data)))]
			}
			if err := f.Section(sec, int64(len(data)), bytes.NewReader(data)); err != nil {
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

func memEnvelope(body []byte) *Envelope {
	env := &Envelope{}
	hdr, _, _ := bytes.Cut(body, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(hdr), "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "subject":
			env.Subject = v
		case "date":
			env.Date = v
		case "message-id":
			env.MessageID = v
		case "from":
			if user, host, ok := strings.Cut(strings.Trim(v, "<>"), "@"); ok {
				env.From = []Address{{Mailbox: user, Host: host}}
			}
		}
	}
	env.Sender, env.ReplyTo = env.From, env.From
	return env
}

func (s *memSession) Store(ctx context.Context, w *UpdateWriter, cmd *Store) (*StoreData, error) {
	if s.ro {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Read-only"}
	}
	s.b.mu.Lock()
	refs := s.resolveLocked(cmd.Set, cmd.UID)
	var modified imap.UIDSet
	var changed []memRef
	for _, r := range refs {
		m := r.m
		if cmd.HasUnchangedSince && m.modseq > cmd.UnchangedSince {
			modified.AddNum(imap.UID(m.uid))
			continue
		}
		switch cmd.Flags.Op {
		case imap.StoreFlagsSet:
			m.flags = slices.Clone(cmd.Flags.Flags)
		case imap.StoreFlagsAdd:
			for _, f := range cmd.Flags.Flags {
				if !slices.Contains(m.flags, f) {
					m.flags = append(m.flags, f)
				}
			}
		case imap.StoreFlagsDel:
			m.flags = slices.DeleteFunc(m.flags, func(f imap.Flag) bool { return slices.Contains(cmd.Flags.Flags, f) })
		}
		s.sel.modseq++
		m.modseq = s.sel.modseq
		changed = append(changed, r)
	}
	s.b.mu.Unlock()
	if !cmd.Flags.Silent {
		for _, r := range changed {
			f := w.Fetch(r.seq)
			f.Flags(r.m.flags)
			if cmd.UID {
				f.UID(imap.UID(r.m.uid))
			}
			f.Close()
		}
	}
	s.b.signal()
	if modified != nil {
		return &StoreData{Modified: modified}, nil
	}
	return nil, nil
}

func (s *memSession) Expunge(ctx context.Context, w *UpdateWriter, uids imap.UIDSet) error {
	if s.ro {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Read-only"}
	}
	s.b.mu.Lock()
	s.sel.msgs = slices.DeleteFunc(s.sel.msgs, func(m *memMsg) bool {
		return slices.Contains(m.flags, imap.FlagDeleted) && (uids == nil || uids.Contains(imap.UID(m.uid)))
	})
	s.b.mu.Unlock()
	s.b.signal()
	return s.syncView(w, true)
}

// syncView brings the client's view up to date: EXPUNGE for gone
// messages (if allowed), EXISTS for new ones.
func (s *memSession) syncView(w *UpdateWriter, expunge bool) error {
	if s.sel == nil {
		return nil
	}
	s.b.mu.Lock()
	present := map[uint32]bool{}
	var all []uint32
	for _, m := range s.sel.msgs {
		present[m.uid] = true
		all = append(all, m.uid)
	}
	s.b.mu.Unlock()
	if expunge {
		for i := len(s.known) - 1; i >= 0; i-- {
			if !present[s.known[i]] {
				if err := w.Expunge(uint32(i+1), imap.UID(s.known[i])); err != nil {
					return err
				}
				s.known = slices.Delete(s.known, i, i+1)
			}
		}
	}
	var last uint32
	if n := len(s.known); n > 0 {
		last = s.known[n-1]
	}
	grew := false
	for _, u := range all {
		if u > last {
			s.known = append(s.known, u)
			grew = true
		}
	}
	if grew {
		return w.Exists(uint32(len(s.known)))
	}
	return nil
}

func (s *memSession) Copy(ctx context.Context, cmd *Copy) (*imap.CopyData, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	dst := s.b.mailboxes[cmd.Mailbox]
	if dst == nil {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	d := &imap.CopyData{UIDValidity: dst.uidValidity}
	for _, r := range s.resolveLocked(cmd.Set, cmd.UID) {
		d.SourceUIDs.AddNum(imap.UID(r.m.uid))
		d.DestUIDs.AddNum(imap.UID(dst.addLocked(r.m.body, r.m.flags, r.m.date)))
	}
	return d, nil
}

func (s *memSession) Move(ctx context.Context, w *UpdateWriter, cmd *Copy) error {
	d, err := s.Copy(ctx, cmd)
	if err != nil {
		return err
	}
	if err := w.CopyUID(d); err != nil {
		return err
	}
	s.b.mu.Lock()
	s.sel.msgs = slices.DeleteFunc(s.sel.msgs, func(m *memMsg) bool { return d.SourceUIDs.Contains(imap.UID(m.uid)) })
	s.b.mu.Unlock()
	s.b.signal()
	return s.syncView(w, true)
}

func (s *memSession) match(k *SearchKey, seq uint32, m *memMsg) bool {
	switch k.Op {
	case SearchAll:
		return true
	case SearchAnd:
		for i := range k.Keys {
			if !s.match(&k.Keys[i], seq, m) {
				return false
			}
		}
		return true
	case SearchOr:
		return s.match(&k.Keys[0], seq, m) || s.match(&k.Keys[1], seq, m)
	case SearchNot:
		return !s.match(&k.Keys[0], seq, m)
	case SearchSeqSet:
		if imap.IsSearchRes(k.Set) {
			return slices.Contains(s.saved, m.uid)
		}
		return containsStar(k.Set.(imap.SeqSet), seq, uint32(len(s.known)))
	case SearchUID:
		if imap.IsSearchRes(k.Set) {
			return slices.Contains(s.saved, m.uid)
		}
		return k.Set.(imap.UIDSet).Contains(imap.UID(m.uid))
	case SearchFlag:
		return slices.Contains(m.flags, imap.Flag(k.Value))
	case SearchNotFlag:
		return !slices.Contains(m.flags, imap.Flag(k.Value))
	case SearchText, SearchBody, SearchSubject, SearchFrom:
		return bytes.Contains(bytes.ToLower(m.body), bytes.ToLower([]byte(k.Value)))
	case SearchLarger:
		return uint64(len(m.body)) > k.Num
	case SearchSmaller:
		return uint64(len(m.body)) < k.Num
	case SearchModSeq:
		return m.modseq >= k.Num
	}
	return false
}

func (s *memSession) Search(ctx context.Context, cmd *Search) (*SearchData, error) {
	if k := cmd.Key.Keys; len(k) == 1 && k[0].Op == SearchText && k[0].Value == "block" {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
		s.b.blocked <- ctx.Err()
		return nil, ctx.Err()
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.lastSearch = cmd
	d := &SearchData{}
	var uids []uint32
	for _, r := range s.resolveLocked(imap.SeqSet{{Start: 1, Stop: 0}}, false) {
		if s.match(&cmd.Key, r.seq, r.m) {
			uids = append(uids, r.m.uid)
			if cmd.UID {
				d.Nums = append(d.Nums, r.m.uid)
			} else {
				d.Nums = append(d.Nums, r.seq)
			}
			d.ModSeq = max(d.ModSeq, r.m.modseq)
		}
	}
	if !usesModSeq(&cmd.Key) {
		d.ModSeq = 0
	}
	if cmd.Return.Save {
		s.saved = uids
	}
	return d, nil
}

func (s *memSession) Sort(ctx context.Context, cmd *Sort) (*SearchData, error) {
	d, err := s.Search(ctx, &Search{UID: cmd.UID, Key: cmd.Key})
	if err != nil {
		return nil, err
	}
	// Sort by size, then arrival: enough to check ESORT's ordering.
	s.b.mu.Lock()
	size := map[uint32]int{}
	for _, r := range s.resolveLocked(imap.SeqSet{{Start: 1, Stop: 0}}, false) {
		if cmd.UID {
			size[r.m.uid] = len(r.m.body)
		} else {
			size[r.seq] = len(r.m.body)
		}
	}
	s.b.mu.Unlock()
	sort.SliceStable(d.Nums, func(i, j int) bool { return size[d.Nums[i]] < size[d.Nums[j]] })
	if len(cmd.Criteria) > 0 && cmd.Criteria[0].Reverse {
		slices.Reverse(d.Nums)
	}
	return d, nil
}

func (s *memSession) ThreadAlgorithms() []imap.ThreadAlgorithm {
	return []imap.ThreadAlgorithm{imap.ThreadOrderedSubject}
}

func (s *memSession) Thread(ctx context.Context, cmd *Thread) ([]ThreadNode, error) {
	d, err := s.Search(ctx, &Search{UID: cmd.UID, Key: cmd.Key})
	if err != nil || len(d.Nums) == 0 {
		return nil, err
	}
	// One thread: the first message, the others replying in a chain.
	root := ThreadNode{Num: d.Nums[0]}
	cur := &root
	for _, n := range d.Nums[1:] {
		cur.Children = []ThreadNode{{Num: n}}
		cur = &cur.Children[0]
	}
	return []ThreadNode{root}, nil
}

func (s *memSession) GetQuota(ctx context.Context, root string) (*QuotaData, error) {
	if root != "" {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such quota root"}
	}
	return &QuotaData{Root: "", Resources: []QuotaResource{{Name: imap.QuotaResourceStorage, Usage: 10, Limit: 1024}}}, nil
}

func (s *memSession) GetQuotaRoot(ctx context.Context, mailbox string) ([]string, []QuotaData, error) {
	q, _ := s.GetQuota(ctx, "")
	return []string{""}, []QuotaData{*q}, nil
}

func (s *memSession) SetQuota(ctx context.Context, cmd *SetQuota) (*QuotaData, error) {
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm, Text: "Quotas are set by the administrator"}
}

func (s *memSession) Notify(ctx context.Context, w *UpdateWriter, cmd *Notify) error {
	s.b.mu.Lock()
	s.b.lastNotify = cmd
	s.b.mu.Unlock()
	s.notify = !cmd.None
	return nil
}

func (s *memSession) CancelUpdate(ctx context.Context, tags []string) error { return nil }

func (s *memSession) Updates() <-chan struct{} { return s.updates }

// wakingSession is a memSession that is a SessionWaker.
type wakingSession struct{ *memSession }

func (s wakingSession) OnUpdates(f func()) {
	s.b.mu.Lock()
	s.onUpdates = f
	s.b.mu.Unlock()
}

func (s *memSession) Poll(ctx context.Context, w *UpdateWriter, at PollPoint) error {
	s.b.mu.Lock()
	bye := s.b.bye
	s.b.mu.Unlock()
	if bye && s.sel != nil {
		return &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Selected mailbox was deleted, have to disconnect"}
	}
	return s.syncView(w, at != PollNoExpunge)
}
