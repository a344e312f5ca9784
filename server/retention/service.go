package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// Event is one audited act (no message content, ever). The auditor
// (server/audit, wired in cmd) keeps them in the hash-chained log.
type Event struct {
	Time   time.Time // set by the auditor if zero
	Actor  string    // "cli:USER", "sweeper", "user:ADDRESS" (the account's own session)
	Action string    // dotted, stable: "policy.import", "hold.place", "retention.destroy", …
	Scope  string    // "org", "domain:D", "user:A", "mailbox:A/NAME", "hold:ID"
	Reason string    // the operator's reason or the rule that decided
	Detail map[string]string
}

// Auditor records events.
type Auditor interface {
	// Record appends e durably. An error means the act happened but is
	// not recorded; the service logs it and reports it to the caller.
	Record(ctx context.Context, e Event) error
}

// Actors of acts the service does on its own.
const (
	ActorSweeper = "sweeper"
	actorSystem  = "system"
)

// Defaults.
const (
	// DefaultSettleInterval is how often pending states are computed
	// when nothing asks sooner.
	DefaultSettleInterval = 5 * time.Second
	// batch is how many messages one read, update or destroy handles.
	batch = 500
)

// Options configures a Service. Only Store is required.
type Options struct {
	// Store is the store whose retention the service manages. Required.
	Store store.Store
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Auditor records every act; nil records nothing.
	Auditor Auditor
	// SweepInterval is how often Run sweeps; 0 means Run never sweeps
	// on its own (Sweep still works).
	SweepInterval time.Duration
	// SettleInterval is how often Run computes pending states; 0 means
	// DefaultSettleInterval.
	SettleInterval time.Duration
	// OnDestroy, if not nil, is told of live messages the sweeper or an
	// erasure destroyed, so that sessions with the mailbox open learn
	// of it, and of the mailbox's HIGHESTMODSEQ before their removal
	// (every one of uids left with a higher mod-sequence; 0: not known),
	// which lets a QRESYNC session that holds the removal back keep a
	// mod-sequence up to it (imap.Server.ExpungedAbove). It must not
	// block.
	OnDestroy func(account string, mailbox uint64, uids []uint32, modseq uint64)
	// SweepPause paces the sweeper so that it does not crowd out
	// deliveries, which share the store's one writer: after each chunk it
	// destroys while mail is being delivered (through Store), it waits
	// SweepPause times as long as the chunk took; with no delivery since
	// the last chunk it goes on at once. 0 sweeps flat out (the CLI on a
	// stopped server); serve uses DefaultSweepPause.
	SweepPause float64
	// Now is the clock; nil means time.Now. Tests only.
	Now func() time.Time
}

// DefaultSweepPause keeps a sweep to about a fifth of the store's writer
// time while mail arrives. Measured (BenchmarkSweepWhileIngesting, a
// million due messages in 1,000 accounts, 2 cores): SMTP ingest of
// sealed 10 KiB messages ran at 161/s during the sweep and 170/s without
// it, side by side over eight alternating 20 s windows (-5%); the paced
// sweep destroyed 413 messages/s, the same sweep on a stopped server
// 2,491/s.
const DefaultSweepPause = 4

// Service applies retention policy to the store: it keeps the policy in
// memory, stamps deliveries, recomputes messages when the policy changes,
// sweeps, erases, and answers the officer's questions. Its methods are
// safe for concurrent use.
type Service struct {
	st        store.Store  // immutable
	log       *slog.Logger // immutable
	auditor   Auditor      // immutable; may be nil
	now       func() time.Time
	sweepEach time.Duration // immutable
	settleDur time.Duration // immutable
	onDestroy func(string, uint64, []uint32, uint64)
	pause     float64 // immutable

	pol atomic.Pointer[policy.Policy]

	// mu serialises what changes retention states in bulk: a policy
	// change with its walk, a settle, each batch of a sweep or erasure.
	// Deliveries never take it.
	mu sync.Mutex

	kick chan struct{} // buffered 1: settle soon

	// delivered counts Deliver calls through Store; the sweeper paces
	// itself only while it moves.
	delivered  atomic.Int64
	pacedSince int64 // delivered at the last pace; used by the sweeping goroutine under mu

	lastSweep atomic.Pointer[SweepReport]
}

// New loads the policy from the store and returns a Service.
func New(ctx context.Context, opt Options) (*Service, error) {
	if opt.Store == nil {
		return nil, errors.New("retention: Options.Store is required")
	}
	s := &Service{
		st:        opt.Store,
		log:       opt.Logger,
		auditor:   opt.Auditor,
		now:       opt.Now,
		sweepEach: opt.SweepInterval,
		settleDur: opt.SettleInterval,
		onDestroy: opt.OnDestroy,
		pause:     opt.SweepPause,
		kick:      make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.settleDur <= 0 {
		s.settleDur = DefaultSettleInterval
	}
	if s.sweepEach < 0 {
		return nil, errors.New("retention: negative sweep interval")
	}
	if s.pause < 0 || s.pause > 100 {
		return nil, errors.New("retention: sweep pause out of range (0 to 100)")
	}
	if _, err := policy.Builtin(); err != nil {
		return nil, fmt.Errorf("retention: shipped presets: %w", err)
	}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Policy returns the policy in force.
func (s *Service) Policy() *policy.Policy { return s.pol.Load() }

// reload reads the policy from the store.
func (s *Service) reload(ctx context.Context) error {
	gen, err := s.st.PolicyGen(ctx)
	if err != nil {
		return fmt.Errorf("retention: load policy: %w", err)
	}
	builtin, _ := policy.Builtin()
	ps, err := s.st.Presets(ctx)
	if err != nil {
		return fmt.Errorf("retention: load presets: %w", err)
	}
	as, err := s.st.Assignments(ctx)
	if err != nil {
		return fmt.Errorf("retention: load assignments: %w", err)
	}
	hs, err := s.st.Holds(ctx)
	if err != nil {
		return fmt.Errorf("retention: load holds: %w", err)
	}
	es, err := s.st.RetentionEvents(ctx)
	if err != nil {
		return fmt.Errorf("retention: load events: %w", err)
	}
	p := policy.NewPolicy(gen, builtin, ps, as, hs, es)
	for _, e := range p.Problems {
		s.log.Warn("retention policy: " + e.Error())
	}
	s.pol.Store(p)
	return nil
}

// audit records e, filling in the time.
func (s *Service) audit(ctx context.Context, e Event) error {
	if s.auditor == nil {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	if err := s.auditor.Record(ctx, e); err != nil {
		s.log.Error("audit record failed: "+e.Action, "err", err)
		return &Error{Msg: fmt.Sprintf("%s happened but could not be audited; the server log has the cause", e.Action), Err: err}
	}
	return nil
}

// Error is a failure the operator caused or can act on; its text is safe
// to show (no storage detail).
type Error struct {
	Msg string
	Err error // may be nil
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func errorf(err error, format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...), Err: err}
}

// firstSweepAfter is when Run sweeps first: soon after a start, so that
// a server restarted more often than its sweep interval still sweeps.
const firstSweepAfter = 5 * time.Minute

// Run computes pending states every SettleInterval (and soon after a
// move), and sweeps every SweepInterval (the first time after at most
// firstSweepAfter), until ctx ends.
func (s *Service) Run(ctx context.Context) {
	settle := time.NewTicker(s.settleDur)
	defer settle.Stop()
	var (
		sweep <-chan time.Time
		timer *time.Timer
	)
	if s.sweepEach > 0 {
		timer = time.NewTimer(min(s.sweepEach, firstSweepAfter))
		defer timer.Stop()
		sweep = timer.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-settle.C:
		case <-s.kick:
		case <-sweep:
			if _, err := s.Sweep(ctx, ActorSweeper, SweepOptions{}); err != nil && ctx.Err() == nil {
				s.log.Error("retention sweep", "err", err)
			}
			timer.Reset(s.sweepEach)
			continue
		}
		if _, err := s.Settle(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("retention: computing pending states", "err", err)
		}
	}
}

// kickSettle asks Run to compute pending states soon.
func (s *Service) kickSettle() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Settle computes the state of every pending message and returns how
// many it updated.
func (s *Service) Settle(ctx context.Context) (int, error) {
	total := 0
	for round := 0; round < 1000; round++ {
		pend, err := s.st.PendingRetention(ctx, batch)
		if err != nil {
			return total, err
		}
		if len(pend) == 0 {
			return total, nil
		}
		byOwner := map[store.Owner][]uint64{}
		var order []store.Owner
		for _, p := range pend {
			if _, ok := byOwner[p.Owner]; !ok {
				order = append(order, p.Owner)
			}
			byOwner[p.Owner] = append(byOwner[p.Owner], p.ID)
		}
		progressed := 0
		for _, o := range order {
			n, err := s.recomputeIDs(ctx, o, byOwner[o])
			if err != nil {
				return total, err
			}
			progressed += n
		}
		total += progressed
		if progressed == 0 {
			return total, nil // what is left changes under our feet; next time
		}
	}
	return total, nil
}

// recomputeIDs recomputes the given messages of o.
func (s *Service) recomputeIDs(ctx context.Context, o store.Owner, ids []uint64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := newWalker(s, o)
	slices.Sort(ids)
	want := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var msgs []store.RetainedMessage
	for i := 0; i < len(ids); {
		rs, err := s.st.Retained(ctx, o, ids[i]-1, 64)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return 0, nil // the account is gone
			}
			return 0, err
		}
		if len(rs) == 0 {
			break
		}
		for _, r := range rs {
			if want[r.ID] {
				msgs = append(msgs, r)
			}
		}
		last := rs[len(rs)-1].ID
		for i < len(ids) && ids[i] <= last {
			i++
		}
	}
	return w.apply(ctx, msgs, true)
}

// walker recomputes the messages of one owner under the policy in force.
type walker struct {
	s     *Service
	o     store.Owner
	boxes map[uint64]store.Mailbox // live mailboxes; nil until needed
}

func newWalker(s *Service, o store.Owner) *walker { return &walker{s: s, o: o} }

// subject describes m for policy.Decide.
func (w *walker) subject(ctx context.Context, m store.RetainedMessage) (policy.Subject, error) {
	sub := policy.Subject{Address: w.o.Address, MailboxID: m.MailboxID, Arrival: m.Retention.Arrival, Origin: m.Retention.Origin}
	if m.Vaulted {
		// The class it had when it left its mailbox stays.
		sub.Class = m.Retention.Class
		return sub, nil
	}
	if w.boxes == nil {
		w.boxes = map[uint64]store.Mailbox{}
		if w.o.Former == 0 {
			mbs, err := w.s.st.Mailboxes(ctx, w.o.Address)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return sub, err
			}
			for _, mb := range mbs {
				w.boxes[mb.ID] = mb
			}
		}
	}
	sub.SpecialUse = w.boxes[m.MailboxID].SpecialUse
	return sub, nil
}

// apply decides each message under the policy in force and stores the
// states that change (all of them if force). The caller holds s.mu.
func (w *walker) apply(ctx context.Context, msgs []store.RetainedMessage, force bool) (int, error) {
	pol := w.s.Policy()
	var us []store.RetentionUpdate
	for _, m := range msgs {
		sub, err := w.subject(ctx, m)
		if err != nil {
			return 0, err
		}
		st := pol.Decide(sub).Stamp(sub, pol.Gen)
		if !force && !m.Retention.Pending && sameState(m.Retention, st) {
			continue
		}
		us = append(us, store.RetentionUpdate{ID: m.ID, Version: m.Version, Retention: st})
	}
	if len(us) == 0 {
		return 0, nil
	}
	return w.s.st.SetRetention(ctx, w.o, us)
}

// sameState reports whether a stored state already says what st says.
func sameState(a, b store.Retention) bool {
	return a.Class == b.Class && a.KeepUntil.Equal(b.KeepUntil) && a.DeleteAfter.Equal(b.DeleteAfter) &&
		a.Held == b.Held && a.Locked == b.Locked && a.Rule == b.Rule
}

// Progress says how far a long operation is.
type Progress struct {
	Phase string `json:"phase"`
	Done  int    `json:"done"`
	Total int    `json:"total,omitempty"` // 0 when unknown
}

// owners lists whose messages a scope covers: live accounts and the
// vaults of deleted ones.
func (s *Service) owners(ctx context.Context, sc policy.Scope) ([]store.Owner, error) {
	var out []store.Owner
	switch sc.Kind {
	case policy.ScopeUser, policy.ScopeMailbox:
		if _, err := s.st.PublicAccount(ctx, sc.Address); err == nil {
			out = append(out, store.Owner{Address: sc.Address})
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if sc.Kind == policy.ScopeMailbox {
			return out, nil
		}
	default:
		as, err := s.st.PublicAccounts(ctx)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if sc.CoversAccount(a.Address) {
				out = append(out, store.Owner{Address: a.Address})
			}
		}
	}
	fs, err := s.st.FormerAccounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		if sc.CoversAccount(f.Address) {
			out = append(out, f.Owner)
		}
	}
	return out, nil
}

// walkScope recomputes every message a scope covers and returns how many
// changed. The caller holds s.mu.
func (s *Service) walkScope(ctx context.Context, sc policy.Scope, progress func(Progress)) (int, error) {
	owners, err := s.owners(ctx, sc)
	if err != nil {
		return 0, err
	}
	changed, seen := 0, 0
	for i, o := range owners {
		w := newWalker(s, o)
		var after uint64
		for {
			if err := ctx.Err(); err != nil {
				return changed, err
			}
			ms, err := s.st.Retained(ctx, o, after, batch)
			if errors.Is(err, store.ErrNotFound) {
				break // deleted meanwhile
			}
			if err != nil {
				return changed, err
			}
			if len(ms) == 0 {
				break
			}
			after = ms[len(ms)-1].ID
			if sc.Kind == policy.ScopeMailbox {
				ms = onlyMailbox(ms, sc.MailboxID)
			}
			n, err := w.apply(ctx, ms, false)
			if err != nil {
				return changed, err
			}
			changed += n
			seen += len(ms)
		}
		if progress != nil {
			progress(Progress{Phase: "recomputing", Done: i + 1, Total: len(owners)})
		}
	}
	s.log.Info("retention: recomputed", "scope", sc.Key(), "messages", seen, "changed", changed)
	// Updates refused because something moved meanwhile are pending: the
	// next settle computes them.
	s.kickSettle()
	return changed, nil
}

func onlyMailbox(ms []store.RetainedMessage, id uint64) []store.RetainedMessage {
	out := ms[:0:0]
	for _, m := range ms {
		if m.MailboxID == id {
			out = append(out, m)
		}
	}
	return out
}

// Producible reports whether mail of class origin ("" for default)
// arriving now for address, in mailbox (0 for INBOX), falls under a rule
// marked producible: escrow, when enabled, also seals such mail to the
// organisation's key. Metadata only; safe to call at every delivery.
func (s *Service) Producible(address string, mailbox uint64, origin string) bool {
	sub := policy.Subject{Address: address, MailboxID: mailbox, Arrival: s.now(), Origin: origin}
	return s.Policy().Decide(sub).Producible
}

// ExpireDays returns the fewest days the policy in force keeps mail of
// account (of any account if account is "") before a sweep may destroy
// it, ok false if it never does (policy.Policy.ShortestMax). POP3's
// EXPIRE capability announces it.
func (s *Service) ExpireDays(account string) (days int, ok bool) {
	return s.Policy().ShortestMax(account)
}
