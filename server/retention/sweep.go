package retention

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/store"
)

// SweepOptions configure one sweep.
type SweepOptions struct {
	// DryRun lists what the sweep would destroy and destroys nothing.
	DryRun   bool
	Progress func(Progress)
}

// SweepReport says what a sweep destroyed (or would destroy).
type SweepReport struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	DryRun   bool          `json:"dry_run"`
	// Settled counts pending states computed before the sweep.
	Settled  int   `json:"settled"`
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"`
	// FromVault counts the destroyed messages that were in the
	// retention vault (the others were in mailboxes).
	FromVault int          `json:"from_vault"`
	Lines     []ImpactLine `json:"by_account_and_class,omitempty"`
	// Purge is what making the destruction real took (nil if nothing
	// was destroyed or the store needs none).
	Purge *store.PurgeReport `json:"purge,omitempty"`
}

// LastSweep returns the report of the last sweep that was not a dry run,
// or nil.
func (s *Service) LastSweep() *SweepReport { return s.lastSweep.Load() }

// Sweep destroys every message whose time has come and that no hold
// covers: a live message past its delete-after, a vaulted one past its
// keep-until. It works through the store's index in batches of up to
// store.MaxDestroyBatch, destroyed in chunks that share the deliveries'
// group commits, paced (Options.SweepPause). Then it has the store purge
// (store.Purger), so that what was destroyed is gone from its files.
//
// Audit, bounded whatever the numbers: one "retention.destroy" event per
// batch, written as soon as the batch is destroyed (counts per class,
// the rules, the accounts), and at the end one "retention.sweep" event
// per account with its totals and one for the whole sweep. A sweep that
// stops half-way (a crash, Ctrl-C, shutdown) has its batches recorded;
// the next one carries on.
func (s *Service) Sweep(ctx context.Context, actor string, opt SweepOptions) (SweepReport, error) {
	rep := SweepReport{Started: s.now().UTC(), DryRun: opt.DryRun}
	settled, err := s.Settle(ctx)
	rep.Settled = settled
	if err != nil {
		return rep, err
	}
	now := s.now()
	var im Impact
	totals := newTally()
	var after store.DueMessage
	var runErr error
	for {
		if runErr = ctx.Err(); runErr != nil {
			break
		}
		due, err := s.st.DueMessages(ctx, now, after, store.MaxDestroyBatch)
		if err != nil {
			runErr = err
			break
		}
		if len(due) == 0 {
			break
		}
		after = due[len(due)-1]
		if opt.DryRun {
			var order []store.Owner
			byOwner := map[store.Owner][]uint64{}
			for _, d := range due {
				if _, ok := byOwner[d.Owner]; !ok {
					order = append(order, d.Owner)
				}
				byOwner[d.Owner] = append(byOwner[d.Owner], d.ID)
			}
			for _, o := range order {
				if err := s.wouldDestroy(ctx, o, byOwner[o], now, &im); err != nil {
					return rep, err
				}
			}
		} else {
			ds, err := s.destroyBatch(ctx, due, now)
			if len(ds) > 0 {
				batch := newTally()
				for _, d := range ds {
					if d.MailboxID == 0 {
						rep.FromVault++
					}
					batch.add(d)
					totals.add(d)
					im.add(ownerName(d.Owner), classOrDefault(d.Class), d.SealedSize)
				}
				s.notifyDestroyed(ds)
				// The store has destroyed them; an audit failure is logged
				// (by audit) and does not undo or stop the sweep.
				_ = s.audit(ctx, Event{Actor: actor, Action: "retention.destroy", Scope: "org", Reason: "past its time", Detail: batch.detail()})
			}
			if err != nil {
				runErr = err
				break
			}
		}
		s.sweepProgress(ctx, opt, Progress{Phase: "sweeping", Done: im.Messages})
	}
	rep.Messages, rep.Bytes, rep.Lines = im.Messages, im.Bytes, im.Lines
	if !opt.DryRun {
		actx := context.WithoutCancel(ctx) // what was destroyed is recorded even if the sweep was stopped
		for _, o := range totals.order {
			_ = s.audit(actx, Event{Actor: actor, Action: "retention.sweep", Scope: "user:" + o.Address, Reason: "past its time", Detail: totals.owners[o].detail()})
		}
		if totals.all.messages > 0 {
			d := totals.all.detail()
			d["accounts"] = strconv.Itoa(len(totals.order))
			if runErr != nil {
				d["stopped"] = "before the end: " + clipText(runErr.Error(), 200)
			}
			_ = s.audit(actx, Event{Actor: actor, Action: "retention.sweep", Scope: "org", Reason: "past its time", Detail: d})
		}
	}
	if runErr != nil {
		return rep, runErr
	}
	if !opt.DryRun && im.Messages > 0 {
		if p, ok := s.st.(store.Purger); ok {
			s.sweepProgress(ctx, opt, Progress{Phase: "purging", Done: im.Messages})
			pr, err := p.Purge(ctx)
			if err != nil {
				return rep, fmt.Errorf("retention: purge after the sweep: %w", err)
			}
			rep.Purge = &pr
		}
	}
	rep.Duration = time.Since(rep.Started)
	if !opt.DryRun {
		r := rep
		s.lastSweep.Store(&r)
		s.log.Info("retention sweep", "messages", rep.Messages, "from_vault", rep.FromVault, "bytes", rep.Bytes, "duration", rep.Duration)
	}
	return rep, nil
}

// sweepProgress reports how far a sweep has come: to opt.Progress, and to
// the store.Progress ctx carries (store.ReportProgress: messages
// destroyed, or found due in a dry run; the total is not known ahead).
func (s *Service) sweepProgress(ctx context.Context, opt SweepOptions, p Progress) {
	if opt.Progress != nil {
		opt.Progress(p)
	}
	store.ReportProgress(ctx, int64(p.Done), 0)
}

// counts sums destroyed messages for the audit log.
type counts struct {
	messages, fromVault int
	bytes               int64
	classes             map[string]int
	rules               map[string]bool
}

func (c *counts) add(d store.Destroyed) {
	c.messages++
	c.bytes += d.SealedSize
	if d.MailboxID == 0 {
		c.fromVault++
	}
	if c.classes == nil {
		c.classes, c.rules = map[string]int{}, map[string]bool{}
	}
	c.classes[classOrDefault(d.Class)]++
	if d.Rule != "" && len(c.rules) < 32 {
		c.rules[d.Rule] = true
	}
}

func (c *counts) detail() map[string]string {
	return map[string]string{
		"messages": strconv.Itoa(c.messages), "bytes": strconv.FormatInt(c.bytes, 10),
		"from_vault": strconv.Itoa(c.fromVault), "classes": countList(c.classes), "rules": clipText(joinKeys(c.rules, " | "), 1024),
	}
}

// tally sums destroyed messages in all and per owner.
type tally struct {
	all    counts
	owners map[store.Owner]*counts
	order  []store.Owner
}

func newTally() *tally { return &tally{owners: map[store.Owner]*counts{}} }

func (t *tally) add(d store.Destroyed) {
	t.all.add(d)
	c := t.owners[d.Owner]
	if c == nil {
		c = &counts{}
		t.owners[d.Owner] = c
		t.order = append(t.order, d.Owner)
	}
	c.add(d)
}

// detail is the batch's detail: its counts and the accounts, the first
// maxListed of them with their counts.
func (t *tally) detail() map[string]string {
	const maxListed = 20
	d := t.all.detail()
	d["accounts"] = strconv.Itoa(len(t.order))
	var parts []string
	for i, o := range t.order {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("+%d more", len(t.order)-maxListed))
			break
		}
		parts = append(parts, fmt.Sprintf("%s:%d", ownerName(o), t.owners[o].messages))
	}
	d["account_list"] = strings.Join(parts, " ")
	return d
}

// wouldDestroy counts what DestroyMessages would destroy of ids.
func (s *Service) wouldDestroy(ctx context.Context, o store.Owner, ids []uint64, now time.Time, im *Impact) error {
	want := map[uint64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	slices.Sort(ids)
	for i := 0; i < len(ids); {
		rs, err := s.st.Retained(ctx, o, ids[i]-1, 64)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			break
		}
		for _, r := range rs {
			if want[r.ID] && dueNow(r.Retention, r.Vaulted, now) {
				im.add(ownerName(o), r.Retention.Class, r.SealedSize)
			}
		}
		last := rs[len(rs)-1].ID
		for i < len(ids) && ids[i] <= last {
			i++
		}
	}
	return nil
}

// destroyChunk is how many messages one destroying call handles. Small,
// so that each shares a group commit with deliveries without making it
// much longer (BenchmarkSweepWhileIngesting: 50 kept SMTP ingest closer
// to its rate than 200).
const destroyChunk = 50

// destroyBatch destroys what is due of a batch of the index, in chunks,
// and returns what it destroyed (also when it stops on an error).
func (s *Service) destroyBatch(ctx context.Context, due []store.DueMessage, now time.Time) ([]store.Destroyed, error) {
	var ds []store.Destroyed
	for len(due) > 0 {
		n := min(len(due), destroyChunk)
		refs := make([]store.MessageRef, n)
		for i, d := range due[:n] {
			refs[i] = store.MessageRef{Owner: d.Owner, ID: d.ID}
		}
		due = due[n:]
		start := time.Now()
		s.mu.Lock()
		got, err := s.st.DestroyMessages(ctx, refs, store.DestroyOptions{Now: now, Due: true})
		s.mu.Unlock()
		ds = append(ds, got...)
		if err != nil {
			return ds, err
		}
		if err := s.pace(ctx, time.Since(start)); err != nil {
			return ds, err
		}
	}
	return ds, nil
}

// notifyDestroyed tells the sessions (Options.OnDestroy) which live
// messages went.
func (s *Service) notifyDestroyed(ds []store.Destroyed) {
	if s.onDestroy == nil {
		return
	}
	type key struct {
		account string
		mailbox uint64
	}
	var order []key
	live := map[key][]uint32{}
	before := map[key]uint64{} // below every removal's mod-sequence
	for _, d := range ds {
		if d.MailboxID == 0 || d.Owner.Former != 0 {
			continue
		}
		k := key{d.Owner.Address, d.MailboxID}
		b := d.ModSeq - min(d.ModSeq, 1) // 0 (not known) stays 0
		if _, ok := live[k]; !ok {
			order = append(order, k)
			before[k] = b
		}
		live[k] = append(live[k], d.UID)
		before[k] = min(before[k], b)
	}
	for _, k := range order {
		s.onDestroy(k.account, k.mailbox, live[k], before[k])
	}
}

// destroyed notifies and audits destroyed messages of one owner (an
// erasure's batch).
func (s *Service) destroyed(ctx context.Context, actor, action string, o store.Owner, ds []store.Destroyed, reason string, im *Impact) {
	var c counts
	for _, d := range ds {
		im.add(ownerName(o), classOrDefault(d.Class), d.SealedSize)
		c.add(d)
	}
	s.notifyDestroyed(ds)
	detail := c.detail()
	if o.Former != 0 {
		detail["deleted_account"] = strconv.FormatUint(o.Former, 10)
	}
	// The store has destroyed them; an audit failure is logged by audit
	// and does not undo them.
	_ = s.audit(ctx, Event{Actor: actor, Action: action, Scope: "user:" + o.Address, Reason: reason, Detail: detail})
}

func classOrDefault(c string) string {
	if c == "" {
		return "default"
	}
	return c
}

// countList renders counts as "a:1 b:2", sorted.
func countList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", k, m[k])
	}
	return b.String()
}

func joinKeys(m map[string]bool, sep string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, sep)
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}

// pace waits SweepPause times work, leaving the store's writer to
// deliveries meanwhile, if any arrived since the last chunk.
func (s *Service) pace(ctx context.Context, work time.Duration) error {
	if s.pause == 0 {
		return nil
	}
	s.mu.Lock()
	n := s.delivered.Load()
	busy := n != s.pacedSince
	s.pacedSince = n
	s.mu.Unlock()
	if !busy {
		return nil
	}
	t := time.NewTimer(time.Duration(float64(work) * s.pause))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
