package imap

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/store"
)

// Compile-time check: NOTIFY is advertised because the session has it.
var _ wire.SessionNotify = (*session)(nil)

// notifyCaps are the capabilities of this file.
var notifyCaps = []imap.Cap{imap.CapNotify}

// maxNotifyNames bounds the mailbox names of one NOTIFY SET (SUBTREE and
// MAILBOXES filters together).
const maxNotifyNames = 1000

// notifyEvents are the events NOTIFY supports (RFC 5465 §5), as NOTIFY
// spells them; anything else is refused with BADEVENT listing these.
var notifyEvents = map[string]eventMask{
	"MessageNew":         evMessageNew,
	"MessageExpunge":     evMessageExpunge,
	"FlagChange":         evFlagChange,
	"MailboxName":        evMailboxName,
	"SubscriptionChange": evSubscriptionChange,
}

const badEventCode = "BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)"

// notifyState is a session's NOTIFY SET: what it is told of the selected
// mailbox while no command runs, and of which other mailboxes. Used on
// the session's goroutine only.
type notifyState struct {
	// selected is the events of the SELECTED or SELECTED-DELAYED group;
	// hasSelected is false without such a group (the selected mailbox is
	// then reported only after commands, as without NOTIFY).
	selected    eventMask
	hasSelected bool
	delayed     bool             // SELECTED-DELAYED: EXPUNGE waits for a command
	fetch       *wire.FetchItems // MessageNew's attributes for the selected mailbox; nil if none
	groups      []notifyGroup    // filters of other mailboxes, in the command's order
	sub         *notifySub       // nil when groups ask for nothing
}

// notifyGroup is one event group for mailboxes other than the selected one.
type notifyGroup struct {
	filter wire.NotifyFilter
	names  []string // SUBTREE, MAILBOXES: canonical names
	events eventMask
}

// matches reports whether the group covers a mailbox.
func (g *notifyGroup) matches(name string, subscribed bool, specialUse string) bool {
	switch g.filter {
	case wire.NotifyPersonal:
		return true
	case wire.NotifyInboxes:
		// Where deliveries go: INBOX, and the \Junk mailbox that SMTP
		// files spam in.
		return name == store.Inbox || specialUse == `\Junk`
	case wire.NotifySubscribed:
		return subscribed
	case wire.NotifySubtree:
		for _, n := range g.names {
			if name == n || strings.HasPrefix(name, n+store.Delimiter) {
				return true
			}
		}
	case wire.NotifyMailboxes:
		return slices.Contains(g.names, name)
	}
	return false
}

// group returns the first group that covers a mailbox, or nil.
func (n *notifyState) group(name string, subscribed bool, specialUse string) *notifyGroup {
	for i := range n.groups {
		if n.groups[i].matches(name, subscribed, specialUse) {
			return &n.groups[i]
		}
	}
	return nil
}

// Notify implements wire.SessionNotify (RFC 5465): NOTIFY SET replaces the
// session's settings, NOTIFY NONE clears them. With the STATUS indicator
// the current STATUS of every mailbox it covers (but the selected one) is
// written first.
func (s *session) Notify(ctx context.Context, w *wire.UpdateWriter, cmd *wire.Notify) error {
	a, err := s.state()
	if err != nil {
		return err
	}
	if cmd.None {
		s.clearNotify()
		return nil
	}
	n, err := parseNotifyGroups(cmd.Groups)
	if err != nil {
		return err
	}
	s.clearNotify()
	var events eventMask
	for _, g := range n.groups {
		events |= g.events
	}
	if events != 0 {
		// Subscribed before the initial STATUS is read, so that no change
		// falls between the two (one may be told twice).
		n.sub = s.srv.events.subscribe(a.account, events, s.wake)
	}
	s.notify = n
	if !cmd.Status || events&evMessages == 0 {
		return nil
	}
	mbs, err := s.srv.st.Mailboxes(ctx, a.account)
	if err != nil {
		return protoErr(a.log, "notify", err)
	}
	selID := s.selectedID()
	for i := range mbs {
		mb := &mbs[i]
		if mb.ID == selID {
			continue
		}
		g := n.group(mb.Name, mb.Subscribed, mb.SpecialUse)
		if g == nil || g.events&evMessages == 0 {
			continue
		}
		if err := w.Status(statusOf(mb), initialStatusItems(g.events)); err != nil {
			return err
		}
	}
	return nil
}

// parseNotifyGroups checks NOTIFY SET's groups and returns the settings.
func parseNotifyGroups(groups []wire.NotifyGroup) (*notifyState, error) {
	n := &notifyState{}
	names := 0
	for _, wg := range groups {
		var ev eventMask
		for _, e := range wg.Events {
			m, ok := notifyEvents[e.Name]
			if !ok {
				return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: badEventCode, Text: "Unsupported NOTIFY event " + e.Name}
			}
			ev |= m
			if e.Fetch != nil {
				if wg.Filter != wire.NotifySelected && wg.Filter != wire.NotifySelectedDelayed {
					return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "MessageNew fetch attributes are for the selected mailbox only"}
				}
			}
		}
		switch wg.Filter {
		case wire.NotifySelected, wire.NotifySelectedDelayed:
			if n.hasSelected {
				return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "SELECTED given twice"}
			}
			n.hasSelected = true
			n.selected = ev & evMessages
			n.delayed = wg.Filter == wire.NotifySelectedDelayed
			for _, e := range wg.Events {
				if e.Fetch != nil {
					it := *e.Fetch
					it.UID = true
					n.fetch = &it
				}
			}
			continue
		}
		g := notifyGroup{filter: wg.Filter, events: ev}
		for _, raw := range wg.Mailboxes {
			if names++; names > maxNotifyNames {
				return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many mailboxes in NOTIFY"}
			}
			name, err := canonicalName(raw)
			if err != nil {
				return nil, err
			}
			g.names = append(g.names, name)
		}
		n.groups = append(n.groups, g)
	}
	return n, nil
}

// clearNotify ends NOTIFY (NOTIFY NONE, a new NOTIFY SET, an overflow,
// the end of the login).
func (s *session) clearNotify() {
	if s.notify == nil {
		return
	}
	s.srv.events.unsubscribe(s.notify.sub)
	s.notify = nil
}

// selectedID returns the store ID of the selected mailbox, or 0.
func (s *session) selectedID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil {
		return 0
	}
	return s.sel.st.key.id
}

// statusOf is a mailbox's status for NOTIFY's STATUS responses.
func statusOf(mb *store.Mailbox) *wire.StatusData {
	return &wire.StatusData{
		Mailbox:       mb.Name,
		Messages:      mb.Messages,
		UIDNext:       imap.UID(mb.UIDNext),
		UIDValidity:   mb.UIDValidity,
		Unseen:        mb.Unseen,
		HighestModSeq: mb.HighestModSeq,
	}
}

// initialStatusItems are the items of the STATUS responses that NOTIFY SET
// STATUS writes (RFC 5465 §3.1), as Dovecot gives them: MESSAGES for
// message events, UIDNEXT and UIDVALIDITY for MessageNew, UIDVALIDITY
// and HIGHESTMODSEQ for FlagChange (CONDSTORE is advertised with NOTIFY).
func initialStatusItems(ev eventMask) wire.StatusItems {
	var it wire.StatusItems
	it.Messages = ev&(evMessageNew|evMessageExpunge) != 0
	it.UIDNext = ev&evMessageNew != 0
	it.UIDValidity = ev&(evMessageNew|evFlagChange) != 0
	it.HighestModSeq = ev&evFlagChange != 0
	return it
}

// updateStatusItems are the items of a STATUS written when a covered
// mailbox changed: the initial ones, UNSEEN where new mail or flags move
// it, and HIGHESTMODSEQ for a client that enabled CONDSTORE.
func updateStatusItems(ev eventMask, condstore bool) wire.StatusItems {
	it := initialStatusItems(ev)
	it.Unseen = ev&(evMessageNew|evFlagChange) != 0
	it.HighestModSeq = it.HighestModSeq || condstore
	return it
}

// pollAllow says which of the selected mailbox's pending changes one Poll
// may tell.
type pollAllow struct {
	expunge, news, flags bool
}

// allowAt returns what Poll may tell of the selected mailbox at a point:
// everything after a command or in IDLE, no EXPUNGE after FETCH, STORE
// and SEARCH by number (RFC 9051 §7.5.1); while no command runs (NOTIFY),
// the events of the SELECTED group, EXPUNGE only without -DELAYED (RFC
// 5465 §6).
func (s *session) allowAt(at wire.PollPoint) pollAllow {
	switch at {
	case wire.PollNoExpunge:
		return pollAllow{news: true, flags: true}
	case wire.PollNotify:
		n := s.notify
		if n == nil || !n.hasSelected {
			return pollAllow{}
		}
		return pollAllow{
			expunge: n.selected&evMessageExpunge != 0 && !n.delayed,
			news:    n.selected&evMessageNew != 0,
			flags:   n.selected&evFlagChange != 0,
		}
	}
	return pollAllow{expunge: true, news: true, flags: true}
}

// notifyFetch writes MessageNew's FETCH responses for messages just
// announced in the selected mailbox (RFC 5465 §5.1), as a UID FETCH of
// the attributes the client gave. A failure is the FETCH's, logged.
func (s *session) notifyFetch(ctx context.Context, w *wire.UpdateWriter, added []uint32) error {
	n := s.notify
	if n == nil || n.fetch == nil || len(added) == 0 {
		return nil
	}
	var set imap.UIDSet
	for _, u := range added {
		set.AddNum(imap.UID(u))
	}
	err := s.Fetch(ctx, w, &wire.Fetch{UID: true, Set: set, Items: *n.fetch})
	if err != nil {
		if ie, ok := err.(*imap.Error); ok && ie.Type == imap.StatusResponseTypeBye {
			return err
		}
		s.log.Warn("notify fetch", "err", err)
	}
	return w.Err()
}

// pollNotify writes what NOTIFY asked to hear of mailboxes other than the
// selected one: a STATUS per changed mailbox its groups cover, a LIST per
// name change, or, after an overflow, NOTIFICATIONOVERFLOW (and NOTIFY
// is off).
func (s *session) pollNotify(ctx context.Context, w *wire.UpdateWriter) error {
	n := s.notify
	if n == nil || n.sub == nil {
		return nil
	}
	status, names, overflow := n.sub.take()
	if overflow {
		s.clearNotify()
		return w.NotificationOverflow()
	}
	if len(status) == 0 && len(names) == 0 {
		return nil
	}
	a, err := s.state()
	if err != nil {
		return nil
	}
	if err := s.notifyStatus(ctx, w, a, n, status); err != nil {
		return err
	}
	return s.notifyNames(ctx, w, a, n, names)
}

// notifyStatus writes the STATUS of changed mailboxes.
func (s *session) notifyStatus(ctx context.Context, w *wire.UpdateWriter, a authState, n *notifyState, status map[uint64]eventMask) error {
	if len(status) == 0 {
		return nil
	}
	selID := s.selectedID()
	condstore := s.conn.Enabled(imap.CapCondStore)
	for _, id := range slices.Sorted(maps.Keys(status)) {
		if id == selID {
			continue
		}
		mb, err := s.srv.st.MailboxByID(ctx, a.account, id)
		if isNotFound(err) {
			continue // deleted since; MailboxName tells of that
		}
		if err != nil {
			a.log.Warn("notify status", "err", err)
			continue
		}
		g := n.group(mb.Name, mb.Subscribed, mb.SpecialUse)
		if g == nil || g.events&status[id] == 0 {
			continue
		}
		if err := w.Status(statusOf(&mb), updateStatusItems(g.events, condstore)); err != nil {
			return err
		}
	}
	return nil
}

// notifyNames writes a LIST response per name change (RFC 5465 §5.4,
// §5.5): the mailbox as LIST shows it now (with \Subscribed when it is),
// OLDNAME after a RENAME, \NonExistent once deleted.
func (s *session) notifyNames(ctx context.Context, w *wire.UpdateWriter, a authState, n *notifyState, names []change) error {
	if len(names) == 0 {
		return nil
	}
	mbs, err := s.srv.st.Mailboxes(ctx, a.account)
	if err != nil {
		a.log.Warn("notify list", "err", err)
		return nil
	}
	subs, err := s.srv.st.Subscriptions(ctx, a.account)
	if err != nil {
		a.log.Warn("notify list", "err", err)
		return nil
	}
	t := newTree(mbs, subs)
	opts := &wire.ListOptions{ReturnSubscribed: true}
	for _, c := range names {
		var subscribed bool
		var specialUse string
		if e := t.byName[c.name]; e != nil {
			subscribed = e.subscribed
			if e.mb != nil {
				specialUse = e.mb.SpecialUse
			}
		}
		g := n.group(c.name, subscribed, specialUse)
		if g == nil && c.oldName != "" {
			g = n.group(c.oldName, subscribed, specialUse)
		}
		if g == nil || g.events&c.kind.event() == 0 {
			continue
		}
		var d *wire.ListData
		if l := t.list([]string{c.name}, opts); len(l) > 0 {
			d = l[0]
		} else {
			d = &wire.ListData{Mailbox: c.name, Delim: delim, Attrs: []imap.MailboxAttr{imap.MailboxAttrNonExistent}}
			if subscribed {
				d.Attrs = append(d.Attrs, imap.MailboxAttrSubscribed)
			}
		}
		d.OldName = c.oldName
		if err := w.List(d); err != nil {
			return err
		}
	}
	return nil
}
