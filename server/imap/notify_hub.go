package imap

import (
	"context"
	"strings"
	"sync"

	"github.com/sealmail/sealmail/store"
)

// changeKind is what happened to a mailbox.
type changeKind uint8

// Kinds of change. A change names its mailbox by account and store ID (and
// by name where the name is the news), never by content: it is what a
// store's change feed carries (a SQL backend's LISTEN/NOTIFY payload maps
// onto it one to one), so another process's changes can drive the same
// plumbing as this process's own.
const (
	changeNew         changeKind = iota + 1 // messages added (APPEND, COPY, MOVE, delivery)
	changeExpunge                           // messages removed (EXPUNGE, MOVE, POP3)
	changeFlags                             // flags changed (STORE, FETCH's \Seen, POP3)
	changeCreate                            // mailbox created: name
	changeDelete                            // mailbox deleted: name
	changeRename                            // mailbox renamed: oldName to name
	changeSubscribe                         // name subscribed
	changeUnsubscribe                       // name unsubscribed
)

// change is one event of the registry's change feed.
type change struct {
	kind    changeKind
	account string
	mailbox uint64 // store ID; 0 for a subscription of a name with no mailbox
	name    string // the mailbox's (new) name, for the mailbox and subscription kinds
	oldName string // changeRename only
}

// eventMask is a set of NOTIFY events (RFC 5465 §5).
type eventMask uint8

const (
	evMessageNew eventMask = 1 << iota
	evMessageExpunge
	evFlagChange
	evMailboxName
	evSubscriptionChange

	evMessages = evMessageNew | evMessageExpunge | evFlagChange
	evNames    = evMailboxName | evSubscriptionChange
)

// event returns the NOTIFY event a message change is, or 0.
func (k changeKind) event() eventMask {
	switch k {
	case changeNew:
		return evMessageNew
	case changeExpunge:
		return evMessageExpunge
	case changeFlags:
		return evFlagChange
	case changeCreate, changeDelete, changeRename:
		return evMailboxName
	case changeSubscribe, changeUnsubscribe:
		return evSubscriptionChange
	}
	return 0
}

// Bounds of one session's queue of notifications not yet written
// (notifySub). A session that falls further behind (a client that stops
// reading) gets [NOTIFICATIONOVERFLOW] and its NOTIFY is cleared (RFC 5465
// §5.8), so the memory a session holds is bounded whatever happens in its
// account.
const (
	// defaultMaxNotifyMailboxes bounds the mailboxes with a STATUS
	// pending: at most DefaultMaxMailboxes exist at once, so only an
	// account churning through mailboxes reaches it.
	defaultMaxNotifyMailboxes = DefaultMaxMailboxes + 24
	// defaultMaxNotifyNames bounds the LIST responses pending (mailbox
	// created, deleted, renamed, subscribed, unsubscribed).
	defaultMaxNotifyNames = 256
)

// notifyHub fans the change feed out to the sessions that have NOTIFY set
// for non-selected mailboxes, by account. Publishing takes the hub's lock
// and each subscriber's, briefly, and never blocks on a client: a
// subscriber queues, coalesced and bounded, and wakes its session.
type notifyHub struct {
	mu   sync.Mutex
	subs map[string]map[*notifySub]struct{} // guarded by mu; by account

	maxMailboxes int // immutable after newNotifyHub (tests lower it)
	maxNames     int // immutable after newNotifyHub (tests lower it)
}

func newNotifyHub() *notifyHub {
	return &notifyHub{
		subs:         map[string]map[*notifySub]struct{}{},
		maxMailboxes: defaultMaxNotifyMailboxes,
		maxNames:     defaultMaxNotifyNames,
	}
}

// notifySub is one session's queue of changes for its non-selected
// mailboxes: the mailboxes whose STATUS is due (with the events seen), and
// the name changes in order.
type notifySub struct {
	account string     // immutable
	events  eventMask  // immutable: the events any non-selected group asks for
	wake    func()     // immutable: signals the session's Updates
	hub     *notifyHub // immutable

	mu       sync.Mutex
	status   map[uint64]eventMask // guarded by mu; made when first written
	names    []change             // guarded by mu
	overflow bool                 // guarded by mu
}

// subscribe registers a subscriber for account's changes.
func (h *notifyHub) subscribe(account string, events eventMask, wake func()) *notifySub {
	sub := &notifySub{account: account, events: events, wake: wake, hub: h}
	h.mu.Lock()
	m := h.subs[account]
	if m == nil {
		m = map[*notifySub]struct{}{}
		h.subs[account] = m
	}
	m[sub] = struct{}{}
	h.mu.Unlock()
	return sub
}

// unsubscribe removes sub; its queue is dropped.
func (h *notifyHub) unsubscribe(sub *notifySub) {
	if sub == nil {
		return
	}
	h.mu.Lock()
	if m := h.subs[sub.account]; m != nil {
		delete(m, sub)
		if len(m) == 0 {
			delete(h.subs, sub.account)
		}
	}
	h.mu.Unlock()
}

// listening reports whether some session of account wants name events
// (so that RENAME lists the renamed children only when someone listens).
func (h *notifyHub) listening(account string, ev eventMask) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[account] {
		if sub.events&ev != 0 {
			return true
		}
	}
	return false
}

// publish queues c for every subscriber of its account that asked for
// its kind of event.
func (h *notifyHub) publish(c change) {
	ev := c.kind.event()
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[c.account] {
		if sub.events&ev != 0 {
			sub.add(c, ev)
		}
	}
}

// add queues one change and wakes the session; past the bounds it marks
// the queue overflowed and drops it.
func (sub *notifySub) add(c change, ev eventMask) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.overflow {
		return
	}
	if ev&evMessages != 0 {
		if _, ok := sub.status[c.mailbox]; !ok && len(sub.status) >= sub.hub.maxMailboxes {
			sub.overflowLocked()
			return
		}
		if sub.status == nil {
			sub.status = map[uint64]eventMask{}
		}
		sub.status[c.mailbox] |= ev
	} else {
		if len(sub.names) >= sub.hub.maxNames {
			sub.overflowLocked()
			return
		}
		sub.names = append(sub.names, c)
	}
	sub.wake()
}

func (sub *notifySub) overflowLocked() {
	sub.overflow = true
	sub.status = nil
	sub.names = nil
	sub.wake()
}

// take returns and clears what is queued.
func (sub *notifySub) take() (status map[uint64]eventMask, names []change, overflow bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	status, names, overflow = sub.status, sub.names, sub.overflow
	sub.status, sub.names = nil, nil
	return status, names, overflow
}

// publishRenamed puts a RENAME on the change feed: the mailbox, and each
// mailbox below it, which the store renamed with it (RFC 9051 §6.3.6). The
// children are listed only when some session listens for names.
func (s *session) publishRenamed(ctx context.Context, a authState, id uint64, oldName, newName string) {
	hub := s.srv.events
	hub.publish(change{kind: changeRename, account: a.account, mailbox: id, name: newName, oldName: oldName})
	if !hub.listening(a.account, evMailboxName) {
		return
	}
	mbs, err := s.srv.st.Mailboxes(ctx, a.account)
	if err != nil {
		a.log.Warn("notify rename", "err", err)
		return
	}
	prefix := newName + store.Delimiter
	for _, mb := range mbs {
		if strings.HasPrefix(mb.Name, prefix) {
			hub.publish(change{kind: changeRename, account: a.account, mailbox: mb.ID, name: mb.Name, oldName: oldName + mb.Name[len(newName):]})
		}
	}
}
