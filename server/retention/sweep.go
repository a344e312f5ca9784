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
	Settled  int          `json:"settled"`
	Messages int          `json:"messages"`
	Bytes    int64        `json:"bytes"`
	Lines    []ImpactLine `json:"by_account_and_class,omitempty"`
	// Purge is what making the destruction real took (nil if nothing
	// was destroyed or the store needs none).
	Purge *store.PurgeReport `json:"purge,omitempty"`
}

// LastSweep returns the report of the last sweep that was not a dry run,
// or nil.
func (s *Service) LastSweep() *SweepReport { return s.lastSweep.Load() }

// Sweep destroys every message whose time has come and that no hold
// covers: a live message past its delete-after, a vaulted one past its
// keep-until. It works through the store's index in batches; each batch
// is one transaction, so deliveries interleave. Then it has the store
// purge (store.Purger), so that what was destroyed is gone from its
// files. Each batch of one account is audited with its counts per class
// and the rules that decided.
func (s *Service) Sweep(ctx context.Context, actor string, opt SweepOptions) (SweepReport, error) {
	rep := SweepReport{Started: s.now().UTC(), DryRun: opt.DryRun}
	settled, err := s.Settle(ctx)
	rep.Settled = settled
	if err != nil {
		return rep, err
	}
	now := s.now()
	var im Impact
	var after store.DueMessage
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		due, err := s.st.DueMessages(ctx, now, after, store.MaxDestroyBatch)
		if err != nil {
			return rep, err
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
		} else if err := s.destroyBatch(ctx, actor, due, now, &im); err != nil {
			return rep, err
		}
		if opt.Progress != nil {
			opt.Progress(Progress{Phase: "sweeping", Done: im.Messages})
		}
	}
	rep.Messages, rep.Bytes, rep.Lines = im.Messages, im.Bytes, im.Lines
	if !opt.DryRun && im.Messages > 0 {
		if p, ok := s.st.(store.Purger); ok {
			if opt.Progress != nil {
				opt.Progress(Progress{Phase: "purging", Done: im.Messages})
			}
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
		s.log.Info("retention sweep", "messages", rep.Messages, "bytes", rep.Bytes, "duration", rep.Duration)
	}
	return rep, nil
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
// so that each shares a group commit with deliveries instead of keeping
// them waiting.
const destroyChunk = 200

// destroyBatch destroys what is due of a batch of the index, in chunks,
// tells the sessions, and audits it per account.
func (s *Service) destroyBatch(ctx context.Context, actor string, due []store.DueMessage, now time.Time, im *Impact) error {
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
		if err != nil {
			return err
		}
		ds = append(ds, got...)
		if err := s.pace(ctx, time.Since(start)); err != nil {
			return err
		}
	}
	var order []store.Owner
	byOwner := map[store.Owner][]store.Destroyed{}
	for _, d := range ds {
		if _, ok := byOwner[d.Owner]; !ok {
			order = append(order, d.Owner)
		}
		byOwner[d.Owner] = append(byOwner[d.Owner], d)
	}
	for _, o := range order {
		s.destroyed(ctx, actor, "retention.destroy", o, byOwner[o], "past its time", im)
	}
	return nil
}

// destroyed notifies and audits destroyed messages of o.
func (s *Service) destroyed(ctx context.Context, actor, action string, o store.Owner, ds []store.Destroyed, reason string, im *Impact) {
	live := map[uint64][]uint32{}
	classes := map[string]int{}
	rules := map[string]bool{}
	var bytes int64
	vaulted := 0
	for _, d := range ds {
		im.add(ownerName(o), d.Class, d.SealedSize)
		bytes += d.SealedSize
		classes[classOrDefault(d.Class)]++
		if d.Rule != "" {
			rules[d.Rule] = true
		}
		if d.MailboxID != 0 {
			live[d.MailboxID] = append(live[d.MailboxID], d.UID)
		} else {
			vaulted++
		}
	}
	if s.onDestroy != nil && o.Former == 0 {
		for mbox, uids := range live {
			s.onDestroy(o.Address, mbox, uids)
		}
	}
	detail := map[string]string{
		"messages": strconv.Itoa(len(ds)), "bytes": strconv.FormatInt(bytes, 10),
		"from_vault": strconv.Itoa(vaulted), "classes": countList(classes), "rules": clipText(joinKeys(rules, " | "), 1024),
	}
	if o.Former != 0 {
		detail["deleted_account"] = strconv.FormatUint(o.Former, 10)
	}
	// The store has destroyed them; an audit failure is logged by audit
	// and does not undo or stop the sweep.
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
// deliveries meanwhile.
func (s *Service) pace(ctx context.Context, work time.Duration) error {
	if s.pause == 0 {
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
