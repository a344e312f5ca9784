package imap

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/store"
)

// delim is the hierarchy delimiter.
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

// depth is the number of levels of a name.
func depth(name string) int { return strings.Count(name, store.Delimiter) + 1 }

// checkLimits refuses names that would take the account beyond its
// mailbox limits (issue 9 item 17): adding new names to existing ones.
func (s *session) checkLimits(ctx context.Context, a authState, names []string) error {
	for _, n := range names {
		if depth(n) > s.srv.maxDepth {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Mailbox hierarchy too deep"}
		}
	}
	mbs, err := s.srv.st.Mailboxes(ctx, a.account)
	if err != nil {
		return protoErr(a.log, "create", err)
	}
	have := make(map[string]bool, len(mbs))
	for _, m := range mbs {
		have[m.Name] = true
	}
	n := len(mbs)
	for _, name := range names {
		if !have[name] {
			have[name] = true
			n++
		}
	}
	if n > s.srv.maxMailboxes {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many mailboxes"}
	}
	return nil
}

// Create implements wire.Session. Missing parents are created too (RFC
// 9051 §6.3.4).
func (s *session) Create(ctx context.Context, cmd *wire.Create) (*wire.CreateData, error) {
	a, err := s.state()
	if err != nil {
		return nil, err
	}
	name, err := canonicalName(cmd.Mailbox)
	if err != nil {
		return nil, err
	}
	if name == store.Inbox {
		return nil, protoErr(a.log, "create", store.ErrExists)
	}
	spec := store.MailboxSpec{Name: name}
	if len(cmd.SpecialUse) > 0 {
		if len(cmd.SpecialUse) > 1 || !specialUses[cmd.SpecialUse[0]] {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR", Text: "Unsupported special-use attribute"}
		}
		spec.SpecialUse = string(cmd.SpecialUse[0])
	}
	if err := s.checkLimits(ctx, a, append(parents(name), name)); err != nil {
		return nil, err
	}
	for _, p := range parents(name) {
		pm, err := s.srv.st.CreateMailbox(ctx, a.account, store.MailboxSpec{Name: p})
		if err != nil && !errors.Is(err, store.ErrExists) {
			return nil, protoErr(a.log, "create", err, "mailbox", p)
		}
		if err == nil {
			s.srv.events.publish(change{kind: changeCreate, account: a.account, mailbox: pm.ID, name: p})
		}
	}
	mb, err := s.srv.st.CreateMailbox(ctx, a.account, spec)
	if err != nil {
		return nil, protoErr(a.log, "create", err, "mailbox", name)
	}
	s.srv.events.publish(change{kind: changeCreate, account: a.account, mailbox: mb.ID, name: name})
	return &wire.CreateData{MailboxID: mailboxID(mb)}, nil
}

// Delete implements wire.Session. Children are kept (RFC 9051 §6.3.5), and
// so is the subscription (§6.3.7). Other sessions that have the mailbox
// selected are disconnected with BYE (RFC 2180 §3.3, as Dovecot does);
// this session, if it has it selected, is left with no mailbox selected.
func (s *session) Delete(ctx context.Context, mailbox string) error {
	a, err := s.state()
	if err != nil {
		return err
	}
	name, err := canonicalName(mailbox)
	if err != nil {
		return err
	}
	if name == store.Inbox {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "INBOX cannot be deleted"}
	}
	mb, err := s.srv.st.Mailbox(ctx, a.account, name)
	if err != nil {
		return protoErr(a.log, "delete", err, "mailbox", name)
	}
	if err := s.srv.st.DeleteMailbox(ctx, a.account, mb.ID); err != nil {
		return protoErr(a.log, "delete", err, "mailbox", name)
	}
	// Unselect before the registry marks the mailbox gone, so that the
	// Poll after this command does not send this session BYE.
	s.mu.Lock()
	own := s.sel != nil && s.sel.st.key.id == mb.ID
	s.mu.Unlock()
	if own {
		s.unselect()
	}
	s.srv.reg.deleted(a.account, mb.ID)
	s.srv.recent.forget(stateKey{a.account, mb.ID})
	s.srv.events.publish(change{kind: changeDelete, account: a.account, mailbox: mb.ID, name: name})
	return nil
}

// Rename implements wire.Session. Renaming INBOX moves its messages to
// the new mailbox and leaves INBOX empty (RFC 9051 §6.3.6).
func (s *session) Rename(ctx context.Context, cmd *wire.Rename) error {
	a, err := s.state()
	if err != nil {
		return err
	}
	oldName, err := canonicalName(cmd.Mailbox)
	if err != nil {
		return err
	}
	newName, err := canonicalName(cmd.NewName)
	if err != nil {
		return err
	}
	if newName == store.Inbox || strings.HasPrefix(newName, store.Inbox+store.Delimiter) && oldName == store.Inbox {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Cannot rename to INBOX"}
	}
	if oldName == newName || strings.HasPrefix(newName, oldName+store.Delimiter) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Cannot rename a mailbox into itself"}
	}
	old, err := s.srv.st.Mailbox(ctx, a.account, oldName)
	if err != nil {
		return protoErr(a.log, "rename", err, "mailbox", oldName)
	}
	if _, err := s.srv.st.Mailbox(ctx, a.account, newName); err == nil {
		return protoErr(a.log, "rename", store.ErrExists)
	}
	if err := s.checkRenameLimits(ctx, a, oldName, newName); err != nil {
		return err
	}
	for _, p := range parents(newName) {
		pm, err := s.srv.st.CreateMailbox(ctx, a.account, store.MailboxSpec{Name: p})
		if err != nil && !errors.Is(err, store.ErrExists) {
			return protoErr(a.log, "rename", err, "mailbox", p)
		}
		if err == nil {
			s.srv.events.publish(change{kind: changeCreate, account: a.account, mailbox: pm.ID, name: p})
		}
	}
	if oldName == store.Inbox {
		return s.renameInbox(ctx, a, old, newName)
	}
	if err := s.srv.st.RenameMailbox(ctx, a.account, old.ID, newName); err != nil {
		return protoErr(a.log, "rename", err, "mailbox", oldName)
	}
	s.srv.reg.renamed(a.account, oldName, newName)
	s.publishRenamed(ctx, a, old.ID, oldName, newName)
	return nil
}

// checkRenameLimits checks the depth of every renamed name and the count
// of the parents RENAME creates.
func (s *session) checkRenameLimits(ctx context.Context, a authState, oldName, newName string) error {
	mbs, err := s.srv.st.Mailboxes(ctx, a.account)
	if err != nil {
		return protoErr(a.log, "rename", err)
	}
	extra := depth(newName) - depth(oldName)
	for _, m := range mbs {
		if m.Name == oldName || strings.HasPrefix(m.Name, oldName+store.Delimiter) {
			if depth(m.Name)+extra > s.srv.maxDepth {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Mailbox hierarchy too deep"}
			}
		}
	}
	names := parents(newName)
	if oldName == store.Inbox {
		names = append(names, newName)
	}
	return s.checkLimits(ctx, a, names)
}

// renameInbox moves INBOX's messages to a new mailbox newName; INBOX
// stays, empty (RFC 9051 §6.3.6).
func (s *session) renameInbox(ctx context.Context, a authState, inbox store.Mailbox, newName string) error {
	mb, err := s.srv.st.CreateMailbox(ctx, a.account, store.MailboxSpec{Name: newName})
	if err != nil {
		return protoErr(a.log, "rename", err, "mailbox", newName)
	}
	s.srv.events.publish(change{kind: changeCreate, account: a.account, mailbox: mb.ID, name: newName})
	msgs, err := s.srv.st.Messages(ctx, a.account, inbox.ID, store.ListOptions{})
	if err != nil {
		return protoErr(a.log, "rename", err, "mailbox", store.Inbox)
	}
	if len(msgs) == 0 {
		return nil
	}
	uids := make([]uint32, len(msgs))
	for i, m := range msgs {
		uids[i] = m.UID
	}
	_, removals, err := s.moveMessages(ctx, a, inbox.ID, mb.ID, uids)
	for _, r := range removals {
		s.srv.expungedAt(a.account, inbox.ID, r, nil, true)
	}
	if err != nil {
		return protoErr(a.log, "rename", err, "mailbox", store.Inbox)
	}
	return nil
}

// Subscribe implements wire.Session. SUBSCRIBE checks that the mailbox
// exists, as RFC 9051 §6.3.7 allows and Dovecot does; the subscription
// then outlives the mailbox. UNSUBSCRIBE takes any name, so a client can
// drop the subscription of a mailbox that is gone.
func (s *session) Subscribe(ctx context.Context, mailbox string, on bool) error {
	a, err := s.state()
	if err != nil {
		return err
	}
	name, err := canonicalName(mailbox)
	if err != nil {
		return err
	}
	if on {
		if _, err := s.srv.st.Mailbox(ctx, a.account, name); err != nil {
			return protoErr(a.log, "subscribe", err, "mailbox", name)
		}
	}
	if err := s.srv.st.SetSubscribed(ctx, a.account, name, on); err != nil {
		return protoErr(a.log, "subscribe", err, "mailbox", name)
	}
	kind := changeSubscribe
	if !on {
		kind = changeUnsubscribe
	}
	s.srv.events.publish(change{kind: kind, account: a.account, name: name})
	return nil
}

// Status implements wire.Session.
func (s *session) Status(ctx context.Context, cmd *wire.Status) (*wire.StatusData, error) {
	a, err := s.state()
	if err != nil {
		return nil, err
	}
	name, err := canonicalName(cmd.Mailbox)
	if err != nil {
		return nil, err
	}
	mb, err := s.srv.st.Mailbox(ctx, a.account, name)
	if err != nil {
		return nil, protoErr(a.log, "status", err, "mailbox", name)
	}
	return s.statusData(ctx, a, mb, &cmd.Items)
}

// statusData fills what items asks for. SIZE is the sealed size: sealing
// adds overhead and never compresses, so it is at least the sum of
// RFC822.SIZE as RFC 8438 requires. RECENT counts the messages no session
// has claimed (recentTracker).
func (s *session) statusData(ctx context.Context, a authState, mb store.Mailbox, items *wire.StatusItems) (*wire.StatusData, error) {
	d := &wire.StatusData{
		Mailbox:     mb.Name,
		Messages:    mb.Messages,
		UIDNext:     imap.UID(mb.UIDNext),
		UIDValidity: mb.UIDValidity,
		Unseen:      mb.Unseen,
		Deleted:     mb.Deleted,
		Size:        mb.SealedSize,
		MailboxID:   mailboxID(mb),
	}
	d.HighestModSeq = mb.HighestModSeq
	if items.HighestModSeq {
		d.HighestModSeq = s.statusModSeq(ctx, a, &mb)
	}
	if items.Recent {
		if first, ok := s.srv.recent.firstRecent(stateKey{a.account, mb.ID}); ok && first < mb.UIDNext {
			msgs, err := s.srv.st.Messages(ctx, a.account, mb.ID, store.ListOptions{FromUID: first})
			if err != nil {
				return nil, protoErr(a.log, "status", err, "mailbox", mb.Name)
			}
			d.Recent = uint32(len(msgs))
		}
	}
	return d, nil
}
