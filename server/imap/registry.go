package imap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/sealmail/sealmail/store"
)

// stateKey identifies one mailbox incarnation by its store ID, which
// survives RENAME and is never given to another mailbox (a mailbox deleted
// and created again has a new ID and UIDVALIDITY).
type stateKey struct {
	account string
	id      uint64
}

// registry holds the mailboxState of every mailbox that is selected by at
// least one session or is being notified.
type registry struct {
	mu     sync.Mutex
	states map[stateKey]*mailboxState // guarded by mu
}

func newRegistry() *registry {
	return &registry{states: make(map[stateKey]*mailboxState)}
}

// mailboxState is the in-process state of one mailbox shared by the sessions
// that have it selected: its UIDs in ascending order and its tracker.
type mailboxState struct {
	key  stateKey // immutable
	refs int      // guarded by registry.mu

	goneOnce sync.Once
	gone     chan struct{} // immutable; closed once the mailbox is deleted

	mu      sync.Mutex
	name    string                     // guarded by mu; current name (RENAME updates it)
	uids    []uint32                   // guarded by mu; the server view, ascending
	tracker *imapserver.MailboxTracker // guarded by mu; nil until loaded
	loadErr error                      // guarded by mu
}

// acquire returns the state of mailbox mb of account, loading its UIDs from
// the store the first time. The caller must release it.
func (r *registry) acquire(ctx context.Context, st Store, account string, mb store.Mailbox) (*mailboxState, error) {
	k := stateKey{account, mb.ID}
	r.mu.Lock()
	s := r.states[k]
	if s != nil {
		s.refs++
		r.mu.Unlock()
		s.mu.Lock()
		err := s.loadErr
		s.mu.Unlock()
		if err != nil {
			r.release(s)
			return nil, err
		}
		return s, nil
	}
	s = &mailboxState{key: k, refs: 1, name: mb.Name, gone: make(chan struct{})}
	s.mu.Lock()
	r.states[k] = s
	r.mu.Unlock()

	msgs, err := st.Messages(ctx, account, mb.ID, store.ListOptions{})
	if err == nil {
		s.uids = make([]uint32, len(msgs))
		for i, m := range msgs {
			s.uids[i] = m.UID
		}
		s.tracker = imapserver.NewMailboxTracker(uint32(len(s.uids)))
	} else {
		s.loadErr = fmt.Errorf("imap: load mailbox: %w", err)
	}
	s.mu.Unlock()
	if err != nil {
		r.release(s)
		return nil, s.loadErr
	}
	return s, nil
}

// lookup returns an existing state or nil; a non-nil result must be released.
func (r *registry) lookup(account string, id uint64) *mailboxState {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.states[stateKey{account, id}]
	if s != nil {
		s.refs++
	}
	return s
}

func (r *registry) release(s *mailboxState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.refs--
	if s.refs == 0 && r.states[s.key] == s {
		delete(r.states, s.key)
	}
}

// deleted tells the sessions that have mailbox id selected that it is
// gone (see mailboxState.markGone). The state leaves the registry, so a
// late acquire of the same ID starts afresh (and fails in the store).
func (r *registry) deleted(account string, id uint64) {
	r.mu.Lock()
	s := r.states[stateKey{account, id}]
	if s != nil {
		delete(r.states, s.key)
	}
	r.mu.Unlock()
	if s != nil {
		s.markGone()
	}
}

// renamed updates the names of the account's states after RENAME of
// oldName (and its children) to newName. Names are for logs only: the
// states are keyed by ID, which RENAME keeps.
func (r *registry) renamed(account, oldName, newName string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, s := range r.states {
		if k.account != account {
			continue
		}
		s.mu.Lock()
		switch {
		case s.name == oldName:
			s.name = newName
		case strings.HasPrefix(s.name, oldName+store.Delimiter):
			s.name = newName + s.name[len(oldName):]
		}
		s.mu.Unlock()
	}
}

// markGone records that the mailbox was deleted. Sessions that have it
// selected are told with BYE at their next command, or at once if they
// are in IDLE; none of them reaches the store through it again.
func (s *mailboxState) markGone() { s.goneOnce.Do(func() { close(s.gone) }) }

// isGone reports whether markGone was called.
func (s *mailboxState) isGone() bool {
	select {
	case <-s.gone:
		return true
	default:
		return false
	}
}

// currentName returns the mailbox's current name.
func (s *mailboxState) currentName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.name
}

// syncNew announces messages with UIDs above the last known one.
func (s *mailboxState) syncNew(ctx context.Context, st Store, log *slog.Logger) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracker == nil {
		return nil
	}
	var from uint32 = 1
	if n := len(s.uids); n > 0 {
		from = s.uids[n-1] + 1
	}
	msgs, err := st.Messages(ctx, s.key.account, s.key.id, store.ListOptions{FromUID: from})
	if errors.Is(err, store.ErrNotFound) {
		s.markGone() // deleted by a session of another process
		return nil
	}
	if err != nil {
		return err
	}
	for _, m := range msgs {
		s.appendLocked(m.UID, log)
	}
	return nil
}

// appendLocked adds uid at the end of the view and queues one EXISTS.
func (s *mailboxState) appendLocked(uid uint32, log *slog.Logger) {
	if n := len(s.uids); n > 0 && uid <= s.uids[n-1] {
		if uid < s.uids[n-1] && s.indexLocked(uid) < 0 {
			log.Warn("message committed out of UID order; announced at next SELECT",
				"account", s.key.account, "mailbox", s.name, "uid", uid)
		}
		return
	}
	s.uids = append(s.uids, uid)
	s.tracker.QueueNumMessages(uint32(len(s.uids)))
}

// reconcileLocked makes the view match the store's UIDs (ascending):
// vanished messages are expunged, new ones above the last UID appended.
func (s *mailboxState) reconcileLocked(uids []uint32, log *slog.Logger) {
	present := make(map[uint32]struct{}, len(uids))
	for _, u := range uids {
		present[u] = struct{}{}
	}
	var gone []uint32
	for _, u := range s.uids {
		if _, ok := present[u]; !ok {
			gone = append(gone, u)
		}
	}
	s.expungeLocked(gone)
	for _, u := range uids {
		s.appendLocked(u, log)
	}
}

// expungeLocked removes uids (ascending, any subset) from the view, queueing
// EXPUNGE for every session, highest sequence number first so that each
// queued number is valid when it is applied.
func (s *mailboxState) expungeLocked(uids []uint32) {
	if len(uids) == 0 {
		return
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	for i := len(uids) - 1; i >= 0; i-- {
		idx := s.indexLocked(uids[i])
		if idx < 0 {
			continue
		}
		s.uids = append(s.uids[:idx], s.uids[idx+1:]...)
		s.tracker.QueueExpunge(uint32(idx + 1))
	}
}

// indexLocked returns the index of uid in the view, or -1.
func (s *mailboxState) indexLocked(uid uint32) int {
	i := sort.Search(len(s.uids), func(i int) bool { return s.uids[i] >= uid })
	if i < len(s.uids) && s.uids[i] == uid {
		return i
	}
	return -1
}
