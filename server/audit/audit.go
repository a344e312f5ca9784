package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// Event is one audited act. It never carries message content.
type Event struct {
	// Time is when it happened; the auditor sets it if zero.
	Time time.Time
	// Actor is who: "cli:USER" (the OS user), "sweeper", "imap:ADDRESS",
	// "smtp". Empty means the actor of the context (WithActor), else
	// "unknown".
	Actor string
	// Action is what, dotted and stable: "policy.import",
	// "policy.assign", "hold.place", "hold.release", "vault.move",
	// "vault.restore", "retention.destroy", "compliance.erase",
	// "escrow.init", "escrow.export", "account.create",
	// "account.delete", "slot.add", …
	Action string
	// Scope is what it was done to: "org", "domain:D", "user:A",
	// "mailbox:A/NAME", "message:A/MAILBOXID/UID", "hold:ID".
	Scope string
	// Reason is why: the operator's words or the rule that decided.
	Reason string
	// Detail holds a few more facts (class, rule, counts, legal basis),
	// never content.
	Detail map[string]string
}

// Bounds on one event. Text beyond them (actor, scope, reason, detail
// values) is cut and marked "…[truncated]", so that an act that happened
// is recorded whatever text came with it; an event that breaks the other
// bounds (a malformed action or detail key, too many details: mistakes
// in code, not in input) is refused with ErrInvalid.
const (
	MaxActorBytes  = 256
	MaxActionBytes = 64
	MaxScopeBytes  = 1024
	MaxReasonBytes = 4096
	MaxDetails     = 32
	MaxDetailKey   = 64
	MaxDetailValue = 1024
	// MaxBatch is the most events one RecordAll call takes.
	MaxBatch = store.MaxAuditBatch
)

// ErrInvalid: an event is malformed; nothing was recorded.
var ErrInvalid = errors.New("audit: invalid event")

// appendTimeout bounds one append, whatever the caller's context says.
const appendTimeout = 30 * time.Second

// An append that another writer (another process or node on the same
// store) beat is retried until appendTimeout: every conflict means the
// other writer made progress, so the log as a whole does. A fixed number
// of retries was not enough: a writer that appends without pause and is
// answered first each round can win every round, and the loser, whose
// head is always one append behind, lost 16 times in a row. Before each
// retry the loser waits a random time of up to conflictWait (attempt
// times conflictStep, at most conflictMax), so that the two are no
// longer in lockstep.
const (
	conflictStep = 200 * time.Microsecond
	conflictMax  = 20 * time.Millisecond
)

// conflictWait is how long to wait before retry attempt (from 1).
func conflictWait(attempt int) time.Duration {
	return rand.N(min(time.Duration(attempt)*conflictStep, conflictMax)) + 1
}

// Store is the part of store.Store the audit log needs.
type Store interface {
	AppendAudit(ctx context.Context, rs []store.AuditRecord) error
	AuditHead(ctx context.Context) (store.AuditHead, error)
	AuditRecords(ctx context.Context, from uint64, limit int) ([]store.AuditRecord, error)
}

var _ Store = (store.Store)(nil)

// Options configures a Service. Only Store is required.
type Options struct {
	// Store keeps the log. Required.
	Store Store
	// Logger receives one line per record (its number, action, scope and
	// hash: an anchor for whoever keeps the logs) and errors. nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service appends to and reads the audit log. It is safe for concurrent
// use.
type Service struct {
	st  Store            // immutable
	log *slog.Logger     // immutable
	now func() time.Time // immutable

	// qmu guards the queue of RecordAll calls waiting for an append.
	qmu     sync.Mutex
	queue   []*waiter // guarded by qmu
	leading bool      // guarded by qmu: a caller is appending for the queue

	// mu is held by the one caller appending.
	mu     sync.Mutex
	head   store.AuditHead // guarded by mu; valid if loaded
	loaded bool            // guarded by mu
}

// New returns a Service.
func New(opt Options) (*Service, error) {
	if opt.Store == nil {
		return nil, errors.New("audit: Options.Store is required")
	}
	s := &Service{st: opt.Store, log: opt.Logger, now: opt.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

type actorKey struct{}

// WithActor returns a context whose events without an Actor are recorded
// as done by actor, e.g. "cli:alice" for a command an OS user ran.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor WithActor put in ctx, or "".
func ActorFrom(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// Record appends one event to the log. It returns once the record is
// durable. An act that happened and could not be recorded is an operator
// problem: callers report the error, they do not hide it.
func (s *Service) Record(ctx context.Context, e Event) error {
	return s.RecordAll(ctx, []Event{e})
}

// RecordAll appends events as consecutive records, in one durable
// transaction: all or none. At most MaxBatch events.
func (s *Service) RecordAll(ctx context.Context, es []Event) error {
	if len(es) == 0 {
		return nil
	}
	if len(es) > MaxBatch {
		return fmt.Errorf("%w: %d events in one batch, at most %d", ErrInvalid, len(es), MaxBatch)
	}
	now := s.now()
	norm := make([]Event, len(es))
	for i, e := range es {
		n, err := normalize(ctx, e, now)
		if err != nil {
			return err
		}
		norm[i] = n
	}
	// Group commit: the caller that finds no append running appends
	// what every caller queued meanwhile, in one transaction, then hands
	// the lead to the first caller still waiting. The act has happened,
	// so the caller's context does not cancel its record.
	w := &waiter{events: norm, done: make(chan error, 1), lead: make(chan struct{})}
	s.qmu.Lock()
	s.queue = append(s.queue, w)
	leading := !s.leading
	s.leading = true
	s.qmu.Unlock()
	if !leading {
		select {
		case err := <-w.done:
			return err
		case <-w.lead:
		}
	}
	batch := s.take()
	var events []Event
	for _, x := range batch {
		events = append(events, x.events...)
	}
	err := s.append(events)
	for _, x := range batch {
		x.done <- err
	}
	s.qmu.Lock()
	if len(s.queue) > 0 {
		close(s.queue[0].lead) // it leads now; s.leading stays set
	} else {
		s.leading = false
	}
	s.qmu.Unlock()
	return <-w.done
}

// waiter is a RecordAll call in the queue.
type waiter struct {
	events []Event
	done   chan error    // buffered 1: the outcome
	lead   chan struct{} // closed when this caller is to append for the queue
}

// take removes from the queue the waiters whose events the next append
// carries: the first, and those after it while they fit in MaxBatch.
func (s *Service) take() []*waiter {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	n, size := 0, 0
	for n < len(s.queue) && (n == 0 || size+len(s.queue[n].events) <= MaxBatch) {
		size += len(s.queue[n].events)
		n++
	}
	batch := append([]*waiter(nil), s.queue[:n]...)
	s.queue = s.queue[n:]
	return batch
}

// append appends events as consecutive records in one transaction,
// rereading the head and retrying when another process or node appended
// first.
func (s *Service) append(events []Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if !s.loaded {
			h, err := s.st.AuditHead(ctx)
			if err != nil {
				return fmt.Errorf("audit: read head: %w", err)
			}
			s.head, s.loaded = h, true
		}
		rs, err := chain(s.head, events)
		if err != nil {
			return err
		}
		err = s.st.AppendAudit(ctx, rs)
		if err == nil {
			last := rs[len(rs)-1]
			s.head = store.AuditHead{Seq: last.Seq, Hash: last.Hash, Time: last.Time}
			for _, r := range rs {
				s.log.Info(fmt.Sprintf("audit #%d %s %s by %s; hash %s", r.Seq, r.Action, r.Scope, r.Actor, hex.EncodeToString(r.Hash)))
			}
			return nil
		}
		// Another writer appended first: chain onto the head the store
		// found. Reading it again instead would give the head of the last
		// published snapshot, which lags a writer appending without
		// pause, so the retry would lose again. After any other failure,
		// read it again.
		var conflict *store.AuditConflict
		if errors.As(err, &conflict) {
			s.head = conflict.Head
		} else {
			s.loaded = false
		}
		if errors.Is(err, store.ErrConflict) {
			t := time.NewTimer(conflictWait(attempt + 1))
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				err = fmt.Errorf("%w (after %d attempts: %v)", err, attempt+1, ctx.Err())
			}
		}
		s.log.Error(fmt.Sprintf("audit: append of %d record(s) failed: %s %s", len(rs), events[0].Action, events[0].Scope), "err", err)
		return fmt.Errorf("audit: append: %w", err)
	}
}

// chain turns events into the records that follow head.
func chain(head store.AuditHead, es []Event) ([]store.AuditRecord, error) {
	prev, seq, last := head.Hash, head.Seq, head.Time
	if seq == 0 {
		prev = crypto.AuditGenesis()
	}
	rs := make([]store.AuditRecord, len(es))
	for i, e := range es {
		seq++
		t := e.Time
		if t.Before(last) {
			t = last // times never go backwards along the chain
		}
		r := store.AuditRecord{
			Seq: seq, Time: t, Actor: e.Actor, Action: e.Action, Scope: e.Scope, Reason: e.Reason,
			Detail: e.Detail, Prev: prev,
		}
		h, err := crypto.AuditHash(prev, entryOf(r))
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		r.Hash = h
		rs[i] = r
		prev, last = h, t
	}
	return rs, nil
}

func entryOf(r store.AuditRecord) crypto.AuditEntry {
	return crypto.AuditEntry{
		Seq: r.Seq, Time: r.Time, Actor: r.Actor, Action: r.Action, Scope: r.Scope, Reason: r.Reason, Detail: r.Detail,
	}
}

// normalize checks e, fills its time and actor, makes its text valid
// UTF-8 and copies its details.
func normalize(ctx context.Context, e Event, now time.Time) (Event, error) {
	if e.Time.IsZero() {
		e.Time = now
	}
	// One spelling per instant: UTC, no monotonic reading.
	e.Time = e.Time.UTC().Round(0)
	if e.Actor == "" {
		e.Actor = ActorFrom(ctx)
	}
	if e.Actor == "" {
		e.Actor = "unknown"
	}
	if !validAction(e.Action) {
		return Event{}, fmt.Errorf("%w: action %q is not dotted lower-case words", ErrInvalid, e.Action)
	}
	fields := []struct {
		name string
		s    *string
		max  int
	}{
		{"actor", &e.Actor, MaxActorBytes},
		{"scope", &e.Scope, MaxScopeBytes},
		{"reason", &e.Reason, MaxReasonBytes},
	}
	for _, f := range fields {
		*f.s = clip(strings.ToValidUTF8(*f.s, "\uFFFD"), f.max)
	}
	if len(e.Detail) > MaxDetails {
		return Event{}, fmt.Errorf("%w: %s has %d details, at most %d", ErrInvalid, e.Action, len(e.Detail), MaxDetails)
	}
	if len(e.Detail) > 0 {
		d := make(map[string]string, len(e.Detail))
		for k, v := range e.Detail {
			if !validDetailKey(k) {
				return Event{}, fmt.Errorf("%w: %s detail key %q", ErrInvalid, e.Action, k)
			}
			d[k] = clip(strings.ToValidUTF8(v, "\uFFFD"), MaxDetailValue)
		}
		e.Detail = d
	} else {
		e.Detail = nil
	}
	return e, nil
}

// truncated ends text that clip cut short.
const truncated = "…[truncated]"

// clip cuts s to at most max bytes, at a character boundary, ending it
// with truncated: an act that happened is recorded even if its text is
// too long (an operator's reason), never refused for it.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(truncated)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncated
}

// validAction accepts dotted lower-case words: "hold.place",
// "account.password-change".
func validAction(a string) bool {
	if len(a) == 0 || len(a) > MaxActionBytes || !strings.Contains(a, ".") {
		return false
	}
	for _, part := range strings.Split(a, ".") {
		if part == "" || part[0] == '-' {
			return false
		}
		for _, c := range part {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validDetailKey accepts short lower-case keys: "class", "legal_basis".
func validDetailKey(k string) bool {
	if k == "" || len(k) > MaxDetailKey || !utf8.ValidString(k) {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Head returns the last record's number, hash and time, from the store.
func (s *Service) Head(ctx context.Context) (store.AuditHead, error) {
	h, err := s.st.AuditHead(ctx)
	if err != nil {
		return store.AuditHead{}, fmt.Errorf("audit: read head: %w", err)
	}
	return h, nil
}

// readPage is how many records Records reads from the store at a time.
const readPage = 1000

// Records calls fn with every record from number from on, in order,
// until fn returns an error (which Records returns) or the log ends.
// Records appended while it runs may or may not be included.
func (s *Service) Records(ctx context.Context, from uint64, fn func(store.AuditRecord) error) error {
	from = max(from, 1)
	for {
		page, err := s.st.AuditRecords(ctx, from, readPage)
		if err != nil {
			return fmt.Errorf("audit: read from #%d: %w", from, err)
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < readPage {
			return nil
		}
		from = page[len(page)-1].Seq + 1
	}
}

// SeqAt returns the number of the first record whose time is t or later
// (times never go backwards along the chain), or the head's number + 1 if
// there is none.
func (s *Service) SeqAt(ctx context.Context, t time.Time) (uint64, error) {
	h, err := s.Head(ctx)
	if err != nil {
		return 0, err
	}
	lo, hi := uint64(1), h.Seq+1 // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		rs, err := s.st.AuditRecords(ctx, mid, 1)
		if err != nil {
			return 0, fmt.Errorf("audit: read #%d: %w", mid, err)
		}
		if len(rs) == 0 || rs[0].Seq != mid {
			return 0, fmt.Errorf("audit: record #%d is missing; run sealmail audit verify", mid)
		}
		if rs[0].Time.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}
