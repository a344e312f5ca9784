package imap

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/sealmail/sealmail/store"
)

// stateKey identifies one mailbox incarnation by its store ID, which
// survives RENAME and is never given to another mailbox (a mailbox deleted
// and created again has a new ID and UIDVALIDITY).
type stateKey struct {
	account string
	id      uint64
}

// registry holds the mailboxState of every mailbox that at least one
// session has selected.
type registry struct {
	mu     sync.Mutex
	states map[stateKey]*mailboxState // guarded by mu
}

func newRegistry() *registry {
	return &registry{states: make(map[stateKey]*mailboxState)}
}

// mailboxState is what the sessions of this process that have one mailbox
// selected share: the mailbox's UIDs as this process knows them (the
// server view), the keywords in use, and each session's view. Every
// change this process makes to the mailbox, and every delivery, goes
// through it (see the package doc).
type mailboxState struct {
	key  stateKey // immutable
	refs int      // guarded by registry.mu

	goneOnce sync.Once
	gone     chan struct{} // immutable; closed once the mailbox is deleted

	mu       sync.Mutex
	name     string              // guarded by mu; current name (RENAME updates it)
	loaded   bool                // guarded by mu: uids reflect the store
	uids     []uint32            // guarded by mu; ascending
	keywords map[string]struct{} // guarded by mu; every keyword seen
	views    map[*view]struct{}  // guarded by mu
	// modseqs is the newest MODSEQ queued per UID (made when first
	// written, emptied by EXPUNGE). Sessions report their STOREs after
	// the store commits them, in any order; an older change reported late
	// is not queued, so no client sees a message's MODSEQ go back.
	modseqs map[uint32]uint64 // guarded by mu
	// announced is the MODSEQ of each message announced as new since
	// the state was loaded, as the listing that announced it gave it
	// (made when first written, emptied by EXPUNGE): with modseqs, what
	// qresync.go's keptModSeq checks a listing against.
	announced map[uint32]uint64 // guarded by mu
	// reached is a mod-sequence at or below which every change of the
	// mailbox has reached this state, so that each view has it in its
	// SELECT listing or queued: the HIGHESTMODSEQ read before the
	// listing that loaded the state, then what keptModSeq (qresync.go)
	// found reading the store from reached, or reachedLocked counting
	// heard. It only grows, and spares the sessions that check after
	// it. (A view's own SELECT value is not the state's: a change made
	// before it but told after it reached that listing only.) heard
	// holds the mod-sequences above reached of the flag changes and new
	// messages the state was told of, at most heardMax, once a session
	// has checked (reachedLocked makes it): a mailbox no CONDSTORE client
	// has selected keeps none.
	reached uint64              // guarded by mu
	heard   map[uint64]struct{} // guarded by mu
}

// heardMax bounds mailboxState.heard (some tens of KB): past it,
// mod-sequences are not recorded until reached passes them, and checks
// read the store.
const heardMax = 1024

// noteHeardLocked records that the state was told of the change that
// took mod-sequence m.
func (s *mailboxState) noteHeardLocked(m uint64) {
	if s.heard == nil || m <= s.reached {
		return
	}
	if len(s.heard) >= heardMax {
		for k := range s.heard {
			if k <= s.reached {
				delete(s.heard, k)
			}
		}
		if len(s.heard) >= heardMax {
			return
		}
	}
	s.heard[m] = struct{}{}
}

// reachedLocked returns reached, raised first over the mod-sequences
// above it the state heard of in a row, without reading the store. A
// store gives every change of a mailbox the next mod-sequence (each
// message of a flag change or delivery its own), so a run without a gap
// is a run of changes told; a removal whose mod-sequence is not told
// (one made by another process, POP3 or retention; this server's own
// removals are told with theirs, expungedAt),
// or a change not told ends the run, and keptModSeq then reads the
// store. The caller holds s.mu.
func (s *mailboxState) reachedLocked() uint64 {
	if s.heard == nil {
		s.heard = map[uint64]struct{}{}
	}
	n := s.reached
	for {
		if _, ok := s.heard[n+1]; !ok {
			break
		}
		delete(s.heard, n+1)
		n++
	}
	s.reached = n
	return n
}

// view is one session's view of its selected mailbox (RFC 9051 §2.3.1.2):
// the UIDs it knows, whose positions are its sequence numbers, and what
// it has not been told yet. Other sessions' changes are queued here and
// applied when the session polls, at the points the protocol allows.
// Fields are guarded by st.mu; the session's own goroutine is the only
// one that changes uids.
type view struct {
	st       *mailboxState // immutable
	readOnly bool          // immutable
	wake     func()        // immutable: signals the session's Updates

	uids     []uint32              // the client's messages, ascending
	added    []uint32              // new messages not announced yet, ascending, above uids
	expunged map[uint32]struct{}   // in uids, gone, not announced yet
	flags    map[uint32]flagUpdate // flag changes not announced yet
	recent   map[uint32]struct{}   // \Recent in this session (RFC 3501 §2.3.2)
	keywords map[string]struct{}   // keywords announced in FLAGS

	// selModSeq is the HIGHESTMODSEQ SELECT told (read before its
	// listing, or the listing's highest MODSEQ if higher): every removal
	// the view is told of later has a higher mod-sequence. heldFloor, while expunged is not empty, is a
	// mod-sequence below every removal in it: what the client may hold
	// as its HIGHESTMODSEQ until it is told of them (RFC 7162 §3.2,
	// condstore.go's guardModSeq).
	selModSeq uint64
	heldFloor uint64
	// kept is the last mod-sequence qresync.go's keptModSeq found the
	// client may keep (it was told it, or was told no more): every
	// change at or below it had reached this state. 0: none since
	// SELECT.
	kept uint64
}

// dropLocked takes the messages gone reports from the view, with their
// \Recent and pending flag changes, and returns their EXPUNGE responses,
// highest sequence number first: each stays valid as written. One pass
// over uids closes the gaps. The caller holds v.st.mu.
func (v *view) dropLocked(gone func(uid uint32) bool) []expunge {
	var out []expunge
	for i := len(v.uids) - 1; i >= 0; i-- {
		if u := v.uids[i]; gone(u) {
			out = append(out, expunge{seq: uint32(i + 1), uid: u})
			delete(v.recent, u)
			delete(v.flags, u)
		}
	}
	if len(out) > 0 {
		v.uids = slices.DeleteFunc(v.uids, gone)
	}
	return out
}

type flagUpdate struct {
	flags  []string
	modseq uint64
}

// acquire returns the state of mailbox mb of account, creating it if
// needed. The caller must release it.
func (r *registry) acquire(account string, mb store.Mailbox) *mailboxState {
	k := stateKey{account, mb.ID}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.states[k]
	if s == nil {
		s = &mailboxState{
			key: k, name: mb.Name, gone: make(chan struct{}),
			keywords: map[string]struct{}{}, views: map[*view]struct{}{},
		}
		r.states[k] = s
	}
	s.refs++
	return s
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
// oldName (and its children) to newName. Names are for logs and LIST
// only: the states are keyed by ID, which RENAME keeps.
func (r *registry) renamed(account, oldName, newName string) {
	r.mu.Lock()
	states := make([]*mailboxState, 0, len(r.states))
	for k, s := range r.states {
		if k.account == account {
			states = append(states, s)
		}
	}
	r.mu.Unlock()
	for _, s := range states {
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

// markGone records that the mailbox was deleted and wakes its sessions:
// they are told with BYE at their next poll (at once in IDLE); none of
// them reaches the store through it again.
func (s *mailboxState) markGone() {
	s.goneOnce.Do(func() {
		close(s.gone)
		s.mu.Lock()
		for v := range s.views {
			v.wake()
		}
		s.mu.Unlock()
	})
}

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

// open makes a view for a session selecting the mailbox. msgs is a full
// listing of the mailbox that the caller made while holding s.mu (so no
// change can slip between it and the view); the server view is
// reconciled with it first: messages gone from the store (expunged by
// another process) are expunged for the other views, new ones announced.
// The caller holds s.mu.
func (s *mailboxState) openLocked(msgs []store.Message, readOnly bool, wake func()) *view {
	s.reconcileLocked(msgs)
	// The maps are made when first written: an idle session in a quiet
	// mailbox keeps none.
	v := &view{st: s, readOnly: readOnly, wake: wake, uids: make([]uint32, len(msgs))}
	for i, m := range msgs {
		v.uids[i] = m.UID
	}
	for k := range s.keywords {
		v.addKeyword(k)
	}
	s.views[v] = struct{}{}
	return v
}

// close removes v from the state.
func (v *view) close() {
	v.st.mu.Lock()
	delete(v.st.views, v)
	v.st.mu.Unlock()
}

// reconcileLocked makes the server view match a full listing of the
// store.
func (s *mailboxState) reconcileLocked(msgs []store.Message) {
	present := make(map[uint32]struct{}, len(msgs))
	for _, m := range msgs {
		present[m.UID] = struct{}{}
		s.noteKeywordsLocked(m.Flags)
	}
	var gone []uint32
	for _, u := range s.uids {
		if _, ok := present[u]; !ok {
			gone = append(gone, u)
		}
	}
	s.expungeLocked(gone, nil, 0)
	var last uint32
	if n := len(s.uids); n > 0 {
		last = s.uids[n-1]
	}
	var added []uint32
	var late []uint32
	for _, m := range msgs {
		switch {
		case m.UID > last:
			added = append(added, m.UID)
			if s.loaded {
				s.noteAnnouncedLocked(m)
			}
		case !s.hasLocked(m.UID):
			late = append(late, m.UID)
		}
	}
	if len(late) > 0 {
		// Below a UID already announced: the sessions that have the
		// mailbox selected cannot be told without breaking their sequence
		// numbers (UIDs ascend with them); they see these at their next
		// SELECT. A store that commits UIDs in order never does this.
		s.uids = append(s.uids, late...)
		slices.Sort(s.uids)
	}
	s.addLocked(added)
	s.loaded = true
}

func (s *mailboxState) hasLocked(uid uint32) bool {
	_, ok := slices.BinarySearch(s.uids, uid)
	return ok
}

// sync lists the messages above the highest UID known and announces them.
func (s *mailboxState) sync(ctx context.Context, st Store) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded || s.isGone() {
		return nil
	}
	var from uint32 = 1
	if n := len(s.uids); n > 0 {
		from = s.uids[n-1] + 1
	}
	msgs, err := st.Messages(ctx, s.key.account, s.key.id, store.ListOptions{FromUID: from})
	if isNotFound(err) {
		s.mu.Unlock()
		s.markGone() // deleted by another process
		s.mu.Lock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("imap: list new messages: %w", err)
	}
	uids := make([]uint32, len(msgs))
	for i, m := range msgs {
		uids[i] = m.UID
		s.noteKeywordsLocked(m.Flags)
		s.noteAnnouncedLocked(m)
	}
	s.addLocked(uids)
	return nil
}

// noteAnnouncedLocked records the MODSEQ of a message announced as new.
func (s *mailboxState) noteAnnouncedLocked(m store.Message) {
	if s.announced == nil {
		s.announced = map[uint32]uint64{}
	}
	s.announced[m.UID] = m.ModSeq
	s.noteHeardLocked(m.ModSeq)
}

// addLocked appends new messages (ascending, above every known UID) to
// the server view and queues them for every view.
func (s *mailboxState) addLocked(uids []uint32) {
	if len(uids) == 0 {
		return
	}
	s.uids = append(s.uids, uids...)
	for v := range s.views {
		v.added = append(v.added, uids...)
		v.wake()
	}
}

// noteKeywordsLocked records the keywords of flags (the views announce
// new ones with FLAGS before using them).
func (s *mailboxState) noteKeywordsLocked(flags []string) {
	for _, f := range flags {
		if len(f) > 0 && f[0] != '\\' {
			if _, ok := s.keywords[f]; !ok {
				s.keywords[f] = struct{}{}
			}
		}
	}
}

// expungeLocked removes uids from the server view and queues EXPUNGE for
// every view but origin (which tells its client itself). before is the
// mailbox's HIGHESTMODSEQ read before the removal was made, or 0 if not
// known (a removal by another process or protocol): it bounds what the
// views' clients may be told until they hear of the removal.
func (s *mailboxState) expungeLocked(uids []uint32, origin *view, before uint64) {
	if len(uids) == 0 {
		return
	}
	for _, u := range uids {
		if i, ok := slices.BinarySearch(s.uids, u); ok {
			s.uids = slices.Delete(s.uids, i, i+1)
		}
		delete(s.modseqs, u)
		delete(s.announced, u)
	}
	for v := range s.views {
		if v == origin {
			continue
		}
		woke := false
		for _, u := range uids {
			delete(v.flags, u)
			if i, ok := slices.BinarySearch(v.added, u); ok {
				v.added = slices.Delete(v.added, i, i+1)
				continue
			}
			if _, ok := slices.BinarySearch(v.uids, u); ok {
				v.holdLocked(u, before)
				woke = true
			}
		}
		if woke {
			v.wake()
		}
	}
}

// holdLocked queues the removal of uid, made after the mailbox's
// HIGHESTMODSEQ was before (0: not known, the view's SELECT value is
// used), and lowers the floor of the held removals accordingly.
func (v *view) holdLocked(uid uint32, before uint64) {
	floor := v.selModSeq
	if before > 0 {
		floor = max(floor, before)
	}
	if len(v.expunged) == 0 {
		v.heldFloor = floor
	} else {
		v.heldFloor = min(v.heldFloor, floor)
	}
	if v.expunged == nil {
		v.expunged = map[uint32]struct{}{}
	}
	v.expunged[uid] = struct{}{}
}

// flagsLocked queues the new flags of changed messages for every view
// but origin that knows them.
func (s *mailboxState) flagsLocked(changed []store.Message, origin *view) {
	fresh := changed[:0:0]
	for _, m := range changed {
		s.noteKeywordsLocked(m.Flags)
		if m.ModSeq != 0 {
			s.noteHeardLocked(m.ModSeq)
			if m.ModSeq <= s.modseqs[m.UID] {
				continue // a later change of this message was queued first
			}
			if s.modseqs == nil {
				s.modseqs = map[uint32]uint64{}
			}
			s.modseqs[m.UID] = m.ModSeq
		}
		fresh = append(fresh, m)
	}
	changed = fresh
	for v := range s.views {
		if v == origin {
			continue
		}
		woke := false
		for _, m := range changed {
			if _, ok := slices.BinarySearch(v.uids, m.UID); ok {
				if _, gone := v.expunged[m.UID]; !gone {
					if v.flags == nil {
						v.flags = map[uint32]flagUpdate{}
					}
					v.flags[m.UID] = flagUpdate{flags: m.Flags, modseq: m.ModSeq}
					woke = true
				}
			}
		}
		if woke {
			v.wake()
		}
	}
}

// pendingFloorLocked returns n lowered below every change the view
// holds for its client: below a flag change's MODSEQ, below the MODSEQ a
// new message was announced with, to the floor of the held removals
// (condstore.go's guardModSeq), and to from (the value the client was
// given last) for a change whose mod-sequence is not known.
func (v *view) pendingFloorLocked(n, from uint64) uint64 {
	for _, f := range v.flags {
		if f.modseq > 0 {
			n = min(n, f.modseq-1)
		} else {
			n = min(n, from)
		}
	}
	for _, u := range v.added {
		if m := v.st.announced[u]; m > 0 {
			n = min(n, m-1)
		} else {
			n = min(n, from)
		}
	}
	if len(v.expunged) > 0 {
		n = min(n, max(v.heldFloor, 1))
	}
	return n
}

// supersedeLocked drops the queued flag change of uid if the client is
// being told flags of modseq or later by a command of its own (FETCH,
// STORE read them from the store), so that the older queued change does
// not follow them.
func (v *view) supersedeLocked(uid uint32, modseq uint64) {
	if f, ok := v.flags[uid]; ok && f.modseq <= modseq {
		delete(v.flags, uid)
	}
}

func (v *view) addKeyword(k string) {
	if v.keywords == nil {
		v.keywords = map[string]struct{}{}
	}
	v.keywords[k] = struct{}{}
}

// setRecent makes uid \Recent in the view.
func (v *view) setRecent(uid uint32) {
	if v.recent == nil {
		v.recent = map[uint32]struct{}{}
	}
	v.recent[uid] = struct{}{}
}

// seqLocked returns the sequence number of uid in the view, or 0.
func (v *view) seqLocked(uid uint32) uint32 {
	if i, ok := slices.BinarySearch(v.uids, uid); ok {
		return uint32(i + 1)
	}
	return 0
}

// newKeywordsLocked returns the keyword list to announce with FLAGS if
// the mailbox uses keywords the client has not been told of, else nil.
func (v *view) newKeywordsLocked() []string {
	fresh := false
	for k := range v.st.keywords {
		if _, ok := v.keywords[k]; !ok {
			v.addKeyword(k)
			fresh = true
		}
	}
	if !fresh {
		return nil
	}
	out := make([]string, 0, len(v.keywords))
	for k := range v.keywords {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// recentTracker keeps \Recent (RFC 3501 §2.3.2) in process: for every
// mailbox that received mail since the process started, the lowest UID
// that no session has claimed yet. A read-write SELECT, and a session
// that is the first to be told of new messages, claims them: they are
// \Recent in that session only. EXAMINE shows them without claiming.
// After a restart nothing is recent until new mail arrives, which RFC
// 9051 made an implementation matter (IMAP4rev2 has no \Recent).
type recentTracker struct {
	mu    sync.Mutex
	first map[stateKey]uint32 // guarded by mu
}

func newRecentTracker() *recentTracker { return &recentTracker{first: map[stateKey]uint32{}} }

// noteNew records a new message: if the mailbox has no entry, messages
// from uid on are recent.
func (t *recentTracker) noteNew(k stateKey, uid uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.first[k]; !ok {
		t.first[k] = uid
	}
}

// claim returns the uids (ascending) that are recent and, if take, makes
// them this caller's; uidNext is the mailbox's next UID, from which later
// messages are recent.
func (t *recentTracker) claim(k stateKey, uids []uint32, uidNext uint32, take bool) []uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.first[k]
	if !ok {
		if take {
			t.first[k] = uidNext
		}
		return nil
	}
	i, _ := slices.BinarySearch(uids, f)
	out := uids[i:]
	if take {
		next := f
		if len(out) > 0 {
			next = max(next, out[len(out)-1]+1)
		}
		t.first[k] = max(next, uidNext)
	}
	return out
}

// firstRecent returns the lowest unclaimed UID, or false if none is known.
func (t *recentTracker) firstRecent(k stateKey) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.first[k]
	return f, ok
}

// forget drops a deleted mailbox.
func (t *recentTracker) forget(k stateKey) {
	t.mu.Lock()
	delete(t.first, k)
	t.mu.Unlock()
}
