package imap

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// Compile-time check: a session is what the wire layer drives.
var (
	_ wire.Session      = (*session)(nil)
	_ wire.SessionWaker = (*session)(nil)
)

// session is one IMAP connection. The wire layer calls its methods one at
// a time from the connection's goroutine; the account service (when it
// ends the login) and Shutdown may wipe the keys at any time, and other
// sessions queue changes in the selected view. mu guards what those
// touch.
type session struct {
	srv     *Server       // immutable
	conn    *wire.Conn    // immutable
	log     *slog.Logger  // immutable: base logger (proto, cid, remote)
	updates chan struct{} // immutable; cap 1: something for Poll
	// onUpdates is the connection's wake-up (wire.SessionWaker), called
	// with every signal of updates; nil until set.
	onUpdates atomic.Pointer[func()]

	mu        sync.Mutex
	account   string           // guarded by mu; "" before login
	keys      keyring          // guarded by mu; nil before login and after wipe
	login     *account.Session // guarded by mu; holds keys; nil before login
	stopWatch func() bool      // guarded by mu; stops watching login's end
	// summaries counts this login's APPENDed messages whose summaries are
	// still being stored in the background (Server.added), which use
	// keys (counted by beginSummary): wipeKeys waits for them.
	summaries sync.WaitGroup
	alog      *slog.Logger    // guarded by mu; log with account
	reader    *mailbox.Reader // guarded by mu; nil before login
	sel       *selected       // guarded by mu
	closed    bool            // guarded by mu

	// notify is NOTIFY's settings (notify.go); nil when none. Used on
	// the session's goroutine only.
	notify *notifyState
	// pubKey is the public key APPEND last sealed to (keys.go); nil
	// before the first APPEND. Used on the session's goroutine only.
	pubKey *cachedKey
}

// selected is the session's selected mailbox.
type selected struct {
	st        *mailboxState // immutable
	v         *view         // immutable
	readOnly  bool          // immutable
	uidNext   uint32        // UIDNEXT at SELECT, for logs
	searchRes []uint32      // last SEARCH RETURN (SAVE) result, UIDs
	// contexts are the results kept current (RETURN (UPDATE), context.go),
	// dirty the messages to search again for them at the next Poll. Both
	// are used only on the session's goroutine.
	contexts []*searchContext
	dirty    map[uint32]struct{}
	// modseqTold: HIGHESTMODSEQ was sent for a CONDSTORE enabling
	// command (condstore.go); session goroutine only.
	modseqTold bool
	// toldModSeq is the highest mod-sequence the client may hold as its
	// HIGHESTMODSEQ since the last correction (condstore.go,
	// guardModSeq); session goroutine only.
	toldModSeq uint64
	// listed is SELECT's listing, kept for the Resync of a SELECT with
	// QRESYNC (qresync.go), which takes it; session goroutine only.
	listed []store.Message
}

// authState is what a command of the authenticated state needs.
type authState struct {
	account string
	keys    keyring
	rd      *mailbox.Reader
	log     *slog.Logger
}

// state returns what a command of the authenticated state needs.
func (s *session) state() (authState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil || s.account == "" {
		return authState{log: s.log}, errUnavailable
	}
	return authState{account: s.account, keys: s.keys, rd: s.reader, log: s.alog}, nil
}

// selectedState returns the selected mailbox as well. If it was deleted,
// the command ends with BYE (the client's UIDs name nothing any more).
func (s *session) selectedState() (authState, *selected, error) {
	a, err := s.state()
	if err != nil {
		return a, nil, err
	}
	s.mu.Lock()
	sel := s.sel
	s.mu.Unlock()
	if sel == nil {
		return a, nil, errNoSelected
	}
	a.log = a.log.With("mailbox", sel.st.currentName())
	if sel.st.isGone() {
		return a, nil, s.mailboxGone(a.log)
	}
	return a, sel, nil
}

// byeMailboxGone is the untagged BYE sent to a session whose selected
// mailbox was deleted by another session, in Dovecot's words.
const byeMailboxGone = "Selected mailbox was deleted, have to disconnect"

// mailboxGone is the error that ends a session whose selected mailbox was
// deleted under it: IMAP has no way for the server to close a selected
// mailbox (RFC 2180 §3.3), so the client is told with BYE and
// disconnected, as Dovecot does.
func (s *session) mailboxGone(log *slog.Logger) error {
	log.Info("selected mailbox was deleted; disconnecting")
	return &imap.Error{Type: imap.StatusResponseTypeBye, Text: byeMailboxGone}
}

// selectedGone reports whether the selected mailbox no longer exists. A
// deletion by this process is known already; one by another process (a
// CLI, another node of a shared store) shows as ErrNotFound from the
// store, so the store is asked.
func (s *session) selectedGone(ctx context.Context, a authState, sel *selected) bool {
	if sel.st.isGone() {
		return true
	}
	_, err := s.srv.st.MailboxByID(ctx, a.account, sel.st.key.id)
	if errors.Is(err, store.ErrNotFound) {
		sel.st.markGone()
		return true
	}
	return false
}

// selectedErr maps the failure of a store call on the selected mailbox:
// if the mailbox is gone the session ends with BYE, else as protoErr says.
func (s *session) selectedErr(ctx context.Context, a authState, sel *selected, op string, err error, attrs ...any) error {
	if errors.Is(err, store.ErrNotFound) && s.selectedGone(ctx, a, sel) {
		return s.mailboxGone(a.log)
	}
	return protoErr(a.log, op, err, attrs...)
}

// wake signals Updates (non-blocking: one pending signal is enough) and
// wakes the connection if it waits for its client in IDLE or with NOTIFY.
func (s *session) wake() {
	select {
	case s.updates <- struct{}{}:
	default:
	}
	if f := s.onUpdates.Load(); f != nil {
		(*f)()
	}
}

// OnUpdates implements wire.SessionWaker.
func (s *session) OnUpdates(f func()) { s.onUpdates.Store(&f) }

// Updates implements wire.Session.
func (s *session) Updates() <-chan struct{} { return s.updates }

// Close implements wire.Session: it ends the session and wipes keys.
func (s *session) Close() error {
	s.clearNotify()
	s.unselect()
	s.wipeKeys()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.srv.removeSession(s)
	return nil
}

// beginSummary counts a summary about to use the login's keyring
// (Server.added) in s.summaries, unless the keyring is gone or its wipe
// has begun: then it returns false, and no summary may start. Counting
// under s.mu, where wipeKeys takes the keyring, orders every Add before
// wipeKeys' Wait, also when Shutdown wipes from another goroutine.
func (s *session) beginSummary() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		return false
	}
	s.summaries.Add(1)
	return true
}

// wipeKeys ends the login and wipes its keyring; later commands fail
// until a new login.
func (s *session) wipeKeys() {
	s.mu.Lock()
	keys, login, stop := s.keys, s.login, s.stopWatch
	s.keys, s.login, s.stopWatch, s.reader = nil, nil, nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	if keys != nil {
		if h := s.srv.wipeHook; h != nil {
			h()
		}
		s.summaries.Wait() // at most maxAddedInFlight, each one commit
	}
	if login != nil {
		login.Close()
	}
	if keys != nil {
		keys.Wipe()
	}
}

// Unauthenticate implements wire.Session (RFC 8437).
func (s *session) Unauthenticate(ctx context.Context) error {
	s.clearNotify()
	s.unselect()
	s.wipeKeys()
	s.mu.Lock()
	s.account = ""
	s.alog = nil
	s.mu.Unlock()
	return nil
}

// Namespace implements wire.Session: one personal namespace.
func (s *session) Namespace(ctx context.Context) (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}},
	}, nil
}

// unselect leaves the selected mailbox, if any.
func (s *session) unselect() {
	s.mu.Lock()
	sel := s.sel
	s.sel = nil
	s.mu.Unlock()
	if sel == nil {
		return
	}
	sel.v.close()
	s.srv.reg.release(sel.st)
}

// Poll implements wire.Session: it writes what other sessions and
// deliveries changed in the selected mailbox since the client was last
// told, as far as at allows (no EXPUNGE after FETCH, STORE or SEARCH by
// sequence number, RFC 9051 §7.5.1). A mailbox deleted meanwhile ends the
// session with BYE.
func (s *session) Poll(ctx context.Context, w *wire.UpdateWriter, at wire.PollPoint) error {
	s.mu.Lock()
	sel, log := s.sel, s.alog
	s.mu.Unlock()
	if sel == nil {
		return s.pollNotify(ctx, w)
	}
	if sel.st.isGone() {
		return s.mailboxGone(log.With("mailbox", sel.st.currentName()))
	}
	allow := s.allowAt(at)
	if allow == (pollAllow{}) {
		return s.pollNotify(ctx, w) // the selected mailbox waits for a command
	}
	p := s.plan(sel, allow)
	if err := sel.contextsExpunged(w, p.expunges); err != nil {
		return err
	}
	if err := p.write(w, sel, s.conn.Enabled(imap.CapCondStore), !s.conn.Enabled(imap.CapIMAP4rev2)); err != nil {
		return err
	}
	if err := guardModSeq(w, sel); err != nil {
		return err
	}
	if err := s.notifyFetch(ctx, w, p.added); err != nil {
		return err
	}
	if err := s.correctModSeq(ctx, w, sel); err != nil {
		return err
	}
	if err := s.pollNotify(ctx, w); err != nil {
		return err
	}
	if len(sel.contexts) == 0 {
		return nil
	}
	sel.markDirty(p.added...)
	for _, f := range p.fetches {
		sel.markDirty(f.uid)
	}
	return s.updateContexts(ctx, w, sel)
}

// pollPlan is what one Poll tells the client, computed under the
// mailbox's lock and written after it is released (a slow client must
// not hold other sessions up).
type pollPlan struct {
	expunges []expunge // in the order to write
	exists   uint32
	recent   uint32
	told     bool     // exists and recent are to be written
	added    []uint32 // the new messages announced
	flags    []string
	readOnly bool
	fetches  []flagFetch
}

type expunge struct {
	seq uint32
	uid uint32
}

type flagFetch struct {
	seq, uid uint32
	flags    []string
	modseq   uint64
	recent   bool
}

// plan applies the view's pending changes that allow lets it tell and
// returns what to tell.
func (s *session) plan(sel *selected, allow pollAllow) *pollPlan {
	v := sel.v
	st := v.st
	st.mu.Lock()
	defer st.mu.Unlock()
	p := &pollPlan{readOnly: v.readOnly}
	if allow.expunge && len(v.expunged) > 0 {
		p.expunges = v.dropLocked(func(u uint32) bool {
			_, ok := v.expunged[u]
			return ok
		})
		clear(v.expunged)
		v.heldFloor = 0
	}
	if allow.news && len(v.added) > 0 {
		added := v.added
		v.added = nil
		recent := s.srv.recent.claim(st.key, added, added[len(added)-1]+1, !v.readOnly)
		for _, u := range recent {
			v.setRecent(u)
		}
		v.uids = append(v.uids, added...)
		p.added = added
		p.exists = uint32(len(v.uids))
		p.recent = uint32(len(v.recent))
		p.told = true
	}
	p.flags = v.newKeywordsLocked()
	if allow.flags && len(v.flags) > 0 {
		for u, f := range v.flags {
			seq := v.seqLocked(u)
			if seq == 0 {
				continue
			}
			_, rec := v.recent[u]
			p.fetches = append(p.fetches, flagFetch{seq: seq, uid: u, flags: f.flags, modseq: f.modseq, recent: rec})
		}
		clear(v.flags)
		sortFetches(p.fetches)
	}
	return p
}

func sortFetches(f []flagFetch) {
	slices.SortFunc(f, func(a, b flagFetch) int { return cmp.Compare(a.seq, b.seq) })
}

// write writes the plan.
func (p *pollPlan) write(w *wire.UpdateWriter, sel *selected, condstore, rev1 bool) error {
	for _, e := range p.expunges {
		if err := w.Expunge(e.seq, imap.UID(e.uid)); err != nil {
			return err
		}
	}
	if p.flags != nil {
		fl := mailboxFlags(p.flags)
		w.Flags(fl)
		if !p.readOnly {
			w.PermanentFlags(append(fl, imap.FlagWildcard))
		}
	}
	if p.told {
		w.Exists(p.exists)
		w.Recent(p.recent)
	}
	for _, f := range p.fetches {
		fr := w.Fetch(f.seq)
		fr.UID(imap.UID(f.uid))
		fr.Flags(fetchFlags(f.flags, f.recent && rev1))
		if condstore && f.modseq > 0 {
			fr.ModSeq(f.modseq)
			sel.told(f.modseq)
		}
		fr.Close()
	}
	return w.Err()
}
