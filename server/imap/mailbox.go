package imap

import (
	"errors"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/sealmail/sealmail/store"
)

// delim is the hierarchy delimiter as imapserver wants it.
const delim = '/'

// maxMailboxNameLen bounds mailbox names in bytes (UTF-8).
const maxMailboxNameLen = 512

// specialUses are the RFC 6154 attributes a mailbox may be created with.
var specialUses = map[imap.MailboxAttr]bool{
	imap.MailboxAttrArchive: true,
	imap.MailboxAttrDrafts:  true,
	imap.MailboxAttrJunk:    true,
	imap.MailboxAttrSent:    true,
	imap.MailboxAttrTrash:   true,
}

// canonicalName validates a decoded mailbox name and returns the stored
// form: "INBOX" in any case becomes INBOX (also as the first level of a
// hierarchy), a trailing delimiter is dropped. It refuses empty levels,
// wildcards, control characters and invalid UTF-8.
func canonicalName(name string) (string, error) {
	name = strings.TrimSuffix(name, store.Delimiter)
	if name == "" || len(name) > maxMailboxNameLen || !utf8.ValidString(name) {
		return "", errBadName
	}
	if strings.EqualFold(name, store.Inbox) {
		return store.Inbox, nil
	}
	if len(name) > len(store.Inbox) && strings.EqualFold(name[:len(store.Inbox)+1], store.Inbox+store.Delimiter) {
		name = store.Inbox + name[len(store.Inbox):]
	}
	for _, level := range strings.Split(name, store.Delimiter) {
		if level == "" {
			return "", errBadName
		}
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '*' || r == '%' || r == utf8.RuneError {
			return "", errBadName
		}
	}
	return name, nil
}

// parents returns the names above name, outermost first.
func parents(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == delim {
			out = append(out, name[:i])
		}
	}
	return out
}

// Create implements imapserver.Session. Missing parents are created too
// (RFC 9051 §6.3.4).
func (s *session) Create(name string, options *imap.CreateOptions) error {
	account, _, log, err := s.state()
	if err != nil {
		return err
	}
	name, err = canonicalName(name)
	if err != nil {
		return err
	}
	if name == store.Inbox {
		return protoErr(log, "create", store.ErrExists)
	}
	spec := store.MailboxSpec{Name: name}
	if options != nil && len(options.SpecialUse) > 0 {
		if len(options.SpecialUse) > 1 || !specialUses[options.SpecialUse[0]] {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode("USEATTR"), Text: "Unsupported special-use attribute"}
		}
		spec.SpecialUse = string(options.SpecialUse[0])
	}
	ctx := s.ctx()
	for _, p := range parents(name) {
		_, err := s.srv.st.CreateMailbox(ctx, account, store.MailboxSpec{Name: p})
		if err != nil && !errors.Is(err, store.ErrExists) {
			return protoErr(log, "create", err, "mailbox", p)
		}
	}
	_, err = s.srv.st.CreateMailbox(ctx, account, spec)
	return protoErr(log, "create", err, "mailbox", name)
}

// Delete implements imapserver.Session. Children are kept (RFC 9051 §6.3.5).
// Other sessions that have the mailbox selected are disconnected with BYE
// (RFC 2180 §3.3, as Dovecot does); this session, if it has it selected,
// is left with no mailbox selected.
func (s *session) Delete(name string) error {
	account, _, log, err := s.state()
	if err != nil {
		return err
	}
	name, err = canonicalName(name)
	if err != nil {
		return err
	}
	if name == store.Inbox {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "INBOX cannot be deleted"}
	}
	ctx := s.ctx()
	mb, err := s.srv.st.Mailbox(ctx, account, name)
	if err != nil {
		return protoErr(log, "delete", err, "mailbox", name)
	}
	if err := s.srv.st.DeleteMailbox(ctx, account, mb.ID); err != nil {
		return protoErr(log, "delete", err, "mailbox", name)
	}
	// Unselect before the registry marks the mailbox gone, so that the
	// Poll after this command does not send this session BYE.
	s.mu.Lock()
	own := s.sel != nil && s.sel.st.key.id == mb.ID
	s.mu.Unlock()
	if own {
		s.unselect()
	}
	s.srv.reg.deleted(account, mb.ID)
	return nil
}

// Rename implements imapserver.Session. Renaming INBOX moves its messages to
// the new mailbox and leaves INBOX empty (RFC 9051 §6.3.6).
func (s *session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	account, _, log, err := s.state()
	if err != nil {
		return err
	}
	if oldName, err = canonicalName(oldName); err != nil {
		return err
	}
	if newName, err = canonicalName(newName); err != nil {
		return err
	}
	if newName == store.Inbox || strings.HasPrefix(newName, store.Inbox+store.Delimiter) && oldName == store.Inbox {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Cannot rename to INBOX"}
	}
	if oldName == newName || strings.HasPrefix(newName, oldName+store.Delimiter) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Cannot rename a mailbox into itself"}
	}
	ctx := s.ctx()
	old, err := s.srv.st.Mailbox(ctx, account, oldName)
	if err != nil {
		return protoErr(log, "rename", err, "mailbox", oldName)
	}
	if _, err := s.srv.st.Mailbox(ctx, account, newName); err == nil {
		return protoErr(log, "rename", store.ErrExists)
	}
	for _, p := range parents(newName) {
		_, err := s.srv.st.CreateMailbox(ctx, account, store.MailboxSpec{Name: p})
		if err != nil && !errors.Is(err, store.ErrExists) {
			return protoErr(log, "rename", err, "mailbox", p)
		}
	}
	if oldName == store.Inbox {
		return s.renameInbox(account, old, newName)
	}
	if err := s.srv.st.RenameMailbox(ctx, account, old.ID, newName); err != nil {
		return protoErr(log, "rename", err, "mailbox", oldName)
	}
	s.srv.reg.renamed(account, oldName, newName)
	return nil
}

// renameInbox moves INBOX's messages to a new mailbox newName; INBOX
// stays, empty (RFC 9051 §6.3.6).
func (s *session) renameInbox(account string, inbox store.Mailbox, newName string) error {
	_, _, log, _ := s.state()
	ctx := s.ctx()
	mb, err := s.srv.st.CreateMailbox(ctx, account, store.MailboxSpec{Name: newName})
	if err != nil {
		return protoErr(log, "rename", err, "mailbox", newName)
	}
	msgs, err := s.srv.st.Messages(ctx, account, inbox.ID, store.ListOptions{})
	if err != nil {
		return protoErr(log, "rename", err, "mailbox", store.Inbox)
	}
	if len(msgs) == 0 {
		return nil
	}
	uids := make([]uint32, len(msgs))
	for i, m := range msgs {
		uids[i] = m.UID
	}
	res, err := s.srv.st.MoveMessages(ctx, account, inbox.ID, mb.ID, uids)
	if err != nil {
		return protoErr(log, "rename", err, "mailbox", store.Inbox)
	}
	moved := make([]uint32, len(res.Pairs))
	for i, p := range res.Pairs {
		moved[i] = p.Src
	}
	s.srv.expunged(account, inbox.ID, moved)
	s.srv.syncMailbox(account, mb.ID)
	return nil
}

// Subscribe implements imapserver.Session.
func (s *session) Subscribe(name string) error { return s.setSubscribed(name, true) }

// Unsubscribe implements imapserver.Session.
func (s *session) Unsubscribe(name string) error { return s.setSubscribed(name, false) }

func (s *session) setSubscribed(name string, on bool) error {
	account, _, log, err := s.state()
	if err != nil {
		return err
	}
	if name, err = canonicalName(name); err != nil {
		return err
	}
	if on {
		// The store keeps subscriptions by name, whether or not the
		// mailbox exists; this server subscribes only existing ones.
		if _, err := s.srv.st.Mailbox(s.ctx(), account, name); err != nil {
			return protoErr(log, "subscribe", err, "mailbox", name)
		}
	}
	err = s.srv.st.SetSubscribed(s.ctx(), account, name, on)
	return protoErr(log, "subscribe", err, "mailbox", name)
}

// Status implements imapserver.Session.
func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	account, _, log, err := s.state()
	if err != nil {
		return nil, err
	}
	if name, err = canonicalName(name); err != nil {
		return nil, err
	}
	mb, err := s.srv.st.Mailbox(s.ctx(), account, name)
	if err != nil {
		return nil, protoErr(log, "status", err, "mailbox", name)
	}
	return s.statusData(mb, options), nil
}

// statusData fills every item options asks for (imapserver dereferences
// the pointers of requested items). SIZE is the sealed size: sealing adds
// overhead and never compresses, so it is at least the sum of RFC822.SIZE
// as RFC 8438 requires.
func (s *session) statusData(mb store.Mailbox, options *imap.StatusOptions) *imap.StatusData {
	d := &imap.StatusData{Mailbox: mb.Name}
	if options.NumMessages {
		d.NumMessages = ptr(mb.Messages)
	}
	if options.UIDNext {
		d.UIDNext = imap.UID(mb.UIDNext)
	}
	if options.UIDValidity {
		d.UIDValidity = mb.UIDValidity
	}
	if options.NumUnseen {
		d.NumUnseen = ptr(mb.Unseen)
	}
	if options.NumDeleted {
		d.NumDeleted = ptr(mb.Deleted)
	}
	if options.Size {
		d.Size = ptr(mb.SealedSize)
	}
	if options.AppendLimit {
		d.AppendLimit = ptr(s.srv.appendLimit)
	}
	if options.DeletedStorage {
		d.DeletedStorage = ptr(int64(0))
	}
	if options.NumRecent {
		d.NumRecent = ptr(uint32(0))
	}
	return d
}

func ptr[T any](v T) *T { return &v }

// listEntry is one name LIST may report: a mailbox or a missing parent.
type listEntry struct {
	name     string
	mb       *store.Mailbox // nil for a parent that does not exist
	children bool
	subChild bool // some descendant is subscribed
}

// List implements imapserver.Session (LIST, LSUB, LIST-EXTENDED,
// LIST-STATUS, SPECIAL-USE).
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	account, _, log, err := s.state()
	if err != nil {
		return err
	}
	if len(patterns) == 0 {
		// LIST "" "": the hierarchy delimiter and root (RFC 9051 §6.3.9).
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim, Mailbox: ""})
	}
	mbs, err := s.srv.st.Mailboxes(s.ctx(), account)
	if err != nil {
		return protoErr(log, "list", err)
	}
	entries := listEntries(mbs)
	for _, e := range entries {
		if !matchAny(e.name, ref, patterns) {
			continue
		}
		data, ok := listData(e, options)
		if !ok {
			continue
		}
		if options.ReturnStatus != nil && e.mb != nil {
			data.Status = s.statusData(*e.mb, options.ReturnStatus)
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if strings.EqualFold(name, store.Inbox) && imapserver.MatchList(store.Inbox, delim, strings.ToUpper(ref), strings.ToUpper(p)) {
			return true
		}
		if imapserver.MatchList(name, delim, ref, p) {
			return true
		}
	}
	return false
}

// listEntries returns every mailbox and every missing parent, sorted, with
// child information.
func listEntries(mbs []store.Mailbox) []*listEntry {
	byName := make(map[string]*listEntry, len(mbs))
	for i := range mbs {
		byName[mbs[i].Name] = &listEntry{name: mbs[i].Name, mb: &mbs[i]}
	}
	for i := range mbs {
		for _, p := range parents(mbs[i].Name) {
			e := byName[p]
			if e == nil {
				e = &listEntry{name: p}
				byName[p] = e
			}
			e.children = true
			if mbs[i].Subscribed {
				e.subChild = true
			}
		}
	}
	out := make([]*listEntry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// listData builds the LIST response of e, or false if the selection
// options exclude it.
func listData(e *listEntry, o *imap.ListOptions) (*imap.ListData, bool) {
	subscribed := e.mb != nil && e.mb.Subscribed
	special := e.mb != nil && e.mb.SpecialUse != ""
	data := &imap.ListData{Delim: delim, Mailbox: e.name}
	if o.SelectSubscribed && !subscribed {
		if !(o.SelectRecursiveMatch && e.subChild) {
			return nil, false
		}
		data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
	}
	if o.SelectSpecialUse && !special {
		return nil, false
	}
	if e.mb == nil {
		if o.SelectSubscribed && data.ChildInfo == nil {
			return nil, false
		}
		data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
		if o.SelectSubscribed || o.ReturnSubscribed {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		}
	}
	if e.children {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
	} else {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
	}
	if subscribed && (o.SelectSubscribed || o.ReturnSubscribed) {
		data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
	}
	if special {
		data.Attrs = append(data.Attrs, imap.MailboxAttr(e.mb.SpecialUse))
	}
	return data, true
}
