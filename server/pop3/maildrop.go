package pop3

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// summaryChunk is how many messages' summaries are opened at once when a
// maildrop opens: only their sizes are kept, so memory stays bounded by
// the chunk, not the mailbox.
const summaryChunk = 512

// maildrop is a session's view of the account's INBOX (RFC 1939 §8:
// only INBOX is served, as POP3 servers do): the messages present at
// login, numbered from 1 in UID order for the whole session.
type maildrop struct {
	rd       *mailbox.Reader // immutable
	id       uint64          // immutable: INBOX's mailbox ID
	validity uint32          // immutable: INBOX's UIDVALIDITY
	msgs     []msg           // the slice is immutable; entries are the session goroutine's
}

// msg is one message of a maildrop.
type msg struct {
	m         store.Message // Summary dropped; SessionKey kept for reading
	size      int64         // plaintext size (the summary's)
	deleted   bool          // DELE
	retrieved bool          // RETR: \Seen at QUIT
}

// uidl is the message's unique-id (RFC 1939 §7 UIDL): UIDVALIDITY and
// UID, which together name one message of this mailbox for good, so the
// value stays the same across sessions and restarts and is never given
// to another message.
func (d *maildrop) uidl(i int) string {
	return fmt.Sprintf("%08x%08x", d.validity, d.msgs[i].m.UID)
}

// openMaildrop lists INBOX and the plaintext size of every message. A
// message whose summary cannot be built (it fails its integrity check,
// logged by server/mailbox) is left out: it could not be retrieved.
func (s *session) openMaildrop(ctx context.Context, login *account.Session) (*maildrop, *Error) {
	acct := login.Account()
	mb, err := s.srv.st.Mailbox(ctx, acct, store.Inbox)
	if err != nil {
		s.alog.Error("open INBOX", "err", err)
		return nil, errMailbox
	}
	// From here on removals by others reach this session (removed), so
	// none made while the listing runs is missed.
	s.mu.Lock()
	s.mailbox = mb.ID
	s.mu.Unlock()
	all, err := s.srv.st.Messages(ctx, acct, mb.ID, store.ListOptions{})
	if err != nil {
		s.alog.Error("list INBOX", "err", err)
		return nil, errMailbox
	}
	if len(all) > s.srv.lim.MaxMessages {
		s.alog.Warn("INBOX has more messages than a POP3 session serves; the newest wait for a later session",
			"messages", len(all), "served", s.srv.lim.MaxMessages)
		all = all[:s.srv.lim.MaxMessages]
	}
	d := &maildrop{
		rd:       s.srv.mbx.Reader(acct, login.Keyring(), s.alog),
		id:       mb.ID,
		validity: mb.UIDValidity,
		msgs:     make([]msg, 0, len(all)),
	}
	unreadable := 0
	for lo := 0; lo < len(all); lo += summaryChunk {
		hi := min(lo+summaryChunk, len(all))
		chunk, err := s.srv.st.Messages(ctx, acct, mb.ID, store.ListOptions{
			FromUID: all[lo].UID, ToUID: all[hi-1].UID, WithSummary: true,
		})
		if err != nil {
			s.alog.Error("list INBOX", "err", err)
			return nil, errMailbox
		}
		sums, errs, err := d.rd.Summaries(ctx, mb.ID, chunk)
		if err != nil {
			if ctx.Err() != nil {
				return nil, errShutdown
			}
			s.alog.Error("open summaries", "err", err)
			return nil, errMailbox
		}
		for i := range chunk {
			if sums[i] == nil {
				if !errors.Is(errs[i], store.ErrNotFound) {
					unreadable++
				}
				continue
			}
			m := chunk[i]
			m.Summary = nil
			d.msgs = append(d.msgs, msg{m: m, size: sums[i].Size})
		}
	}
	if unreadable > 0 {
		s.alog.Warn("messages that cannot be read are left out of the maildrop", "count", unreadable)
	}
	return d, nil
}

// stat counts the messages not deleted and their size.
func (d *maildrop) stat() (n int, size int64) {
	for i := range d.msgs {
		if !d.msgs[i].deleted {
			n++
			size += d.msgs[i].size
		}
	}
	return n, size
}

// msgArg resolves a message-number argument (RFC 1939 §3): a message
// deleted in this session or removed by another is not there.
func (s *session) msgArg(arg []byte) (int, *Error) {
	n, ok := parseNumber(arg, 1)
	if !ok {
		return 0, errSyntax
	}
	if n > len(s.drop.msgs) {
		return 0, errNoSuchMessage
	}
	i := n - 1
	if s.drop.msgs[i].deleted {
		return 0, errDeleted
	}
	if s.isGone(s.drop.msgs[i].m.UID) {
		return 0, errGone
	}
	return i, nil
}

// present reports whether message i is offered: not deleted, not gone.
func (s *session) present(i int, gone map[uint32]bool) bool {
	return !s.drop.msgs[i].deleted && !gone[s.drop.msgs[i].m.UID]
}

// goneSet returns a copy of the UIDs removed by others.
func (s *session) goneSet() map[uint32]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.gone) == 0 {
		return nil
	}
	g := make(map[uint32]bool, len(s.gone))
	for u := range s.gone {
		g[u] = true
	}
	return g
}

// stat implements STAT (RFC 1939 §5).
func (s *session) stat(cmd *command) *Error {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	n, size := s.count()
	s.c.ok(strconv.Itoa(n) + " " + itoa64(size))
	return nil
}

// count is STAT's: messages offered and their size.
func (s *session) count() (n int, size int64) {
	gone := s.goneSet()
	for i := range s.drop.msgs {
		if s.present(i, gone) {
			n++
			size += s.drop.msgs[i].size
		}
	}
	return n, size
}

// list implements LIST (RFC 1939 §5).
func (s *session) list(cmd *command) *Error {
	return s.listing(cmd, func(i int) string { return itoa64(s.drop.msgs[i].size) })
}

// uidl implements UIDL (RFC 1939 §7).
func (s *session) uidl(cmd *command) *Error {
	return s.listing(cmd, s.drop.uidl)
}

// listing is LIST and UIDL: one message, or every message offered.
func (s *session) listing(cmd *command, value func(i int) string) *Error {
	switch len(cmd.args) {
	case 0:
		n, size := s.count()
		s.c.ok(plural(n, "message") + " (" + itoa64(size) + " octets)")
		gone := s.goneSet()
		for i := range s.drop.msgs {
			if s.present(i, gone) {
				s.c.line(strconv.Itoa(i+1) + " " + value(i))
			}
		}
		s.c.end()
		return nil
	case 1:
		i, e := s.msgArg(cmd.args[0])
		if e == errDeleted {
			e = errNoSuchMessage
		}
		if e != nil {
			return e
		}
		s.c.ok(strconv.Itoa(i+1) + " " + value(i))
		return nil
	default:
		return errSyntax
	}
}

// dele implements DELE (RFC 1939 §5): the message is removed at QUIT.
func (s *session) dele(cmd *command) *Error {
	if len(cmd.args) != 1 {
		return errSyntax
	}
	i, e := s.msgArg(cmd.args[0])
	if e != nil {
		return e
	}
	s.drop.msgs[i].deleted = true
	s.c.ok("Message " + strconv.Itoa(i+1) + " deleted")
	return nil
}

// rset implements RSET (RFC 1939 §5).
func (s *session) rset(cmd *command) *Error {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	for i := range s.drop.msgs {
		s.drop.msgs[i].deleted = false
	}
	n, size := s.count()
	s.c.ok(plural(n, "message") + " (" + itoa64(size) + " octets)")
	return nil
}

// noop implements NOOP (RFC 1939 §5).
func (s *session) noop(cmd *command) *Error {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	s.c.ok("")
	return nil
}

// quitTrans implements QUIT in the TRANSACTION state: the UPDATE state
// (RFC 1939 §6). Messages retrieved get \Seen (as Dovecot does), then
// the deleted ones are removed through the store's Expunge, the same
// decision IMAP's EXPUNGE takes (mail under retention goes to the
// vault). Other sessions are told. A connection that ends without QUIT
// removes nothing.
func (s *session) quitTrans(cmd *command) *Error {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	s.quit = true
	if s.ahead != nil {
		s.ahead.stop()
		s.ahead = nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.srv.ctx), updateTimeout)
	defer cancel()
	gone := s.goneSet()
	acct := s.drop.rd.Account()
	var seen, del []uint32
	for i := range s.drop.msgs {
		m := &s.drop.msgs[i]
		switch {
		case gone[m.m.UID]:
		case m.deleted:
			del = append(del, m.m.UID)
		case m.retrieved && !store.HasFlag(m.m.Flags, store.FlagSeen):
			seen = append(seen, m.m.UID)
		}
	}
	// In chunks: one store transaction each, whatever the maildrop's size.
	for lo := 0; lo < len(seen); lo += seenChunk {
		chunk := seen[lo:min(lo+seenChunk, len(seen))]
		res, err := s.srv.st.StoreFlags(ctx, acct, s.drop.id, store.FlagUpdate{UIDs: chunk, Op: store.FlagsAdd, Flags: []string{store.FlagSeen}})
		if err != nil {
			s.alog.Warn("setting \\Seen on retrieved messages", "err", err)
			break
		}
		if s.srv.changes != nil && len(res.Changed) > 0 {
			s.srv.changes.FlagsChanged(acct, s.drop.id, res.Changed)
		}
	}
	removed := 0
	if len(del) > 0 {
		res, err := s.srv.st.Expunge(ctx, acct, s.drop.id, del)
		if err != nil {
			s.alog.Error("removing deleted messages", "mailbox", "INBOX", "err", err)
			return errUpdate
		}
		uids := res.UIDs
		removed = len(uids)
		s.alog.Info("removed messages", "mailbox", "INBOX", "count", removed)
		if s.srv.changes != nil {
			s.srv.changes.ExpungedAt(acct, s.drop.id, res)
		}
		s.srv.expunged(acct, s.drop.id, uids, s)
	}
	s.c.ok("Bye (" + plural(removed, "message") + " deleted)")
	return nil
}

// updateTimeout bounds QUIT's changes to the store.
const updateTimeout = time.Minute

// seenChunk is how many messages get \Seen in one store call at QUIT.
const seenChunk = 1000

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// plural is "1 message", "2 messages".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
