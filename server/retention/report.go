package retention

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// ComplianceReport is the officer's overview of a scope: the policy in
// force over it and, per account and class, how much mail is kept, why,
// and what the sweeper will destroy. Metadata only.
type ComplianceReport struct {
	Scope     string    `json:"scope"`
	Generated time.Time `json:"generated"`
	Gen       uint64    `json:"policy_generation"`
	// Assignments that apply to some of the scope (those above it and
	// those inside it); Holds the active holds that cover some of it.
	Assignments []AssignmentInfo `json:"assignments"`
	Holds       []HoldInfo       `json:"holds"`
	// LastSweep is the last sweep this service ran (nil: none since it
	// started, or a stopped server's CLI).
	LastSweep *SweepReport    `json:"last_sweep,omitempty"`
	Total     ReportCounts    `json:"total"`
	Accounts  []AccountReport `json:"accounts"`
}

// AccountReport is one owner's part of a ComplianceReport: a live account,
// or the vault a deleted one left (Former).
type AccountReport struct {
	Account string         `json:"account"`
	Former  uint64         `json:"deleted_account,omitempty"`
	Total   ReportCounts   `json:"total"`
	Classes []ClassCounts  `json:"classes"`
	index   map[string]int // Classes by class
}

// ClassCounts counts one class of an account's mail.
type ClassCounts struct {
	Class string `json:"class"`
	ReportCounts
}

// ReportCounts counts messages by their materialised retention state.
// A message may count in several of the state columns (held and under
// its minimum, say).
type ReportCounts struct {
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"`
	// Vaulted: removed by its user (or restricted by an erasure) and
	// kept in the hidden vault.
	Vaulted int `json:"vaulted"`
	// UnderMinimum: its keep-until lies ahead (an obligation keeps it);
	// Locked: that keep-until comes from a locked rule.
	UnderMinimum int `json:"under_minimum"`
	Locked       int `json:"locked"`
	// Held: a legal hold covers it.
	Held int `json:"held"`
	// Conflict: a maximum ends before a minimum; the minimum wins.
	Conflict int `json:"conflict"`
	// NoMaximum: in a mailbox with no maximum: kept until its user
	// deletes it.
	NoMaximum int `json:"no_maximum"`
	// Pending: its state is not computed yet (it counts as protected).
	Pending int `json:"pending"`
	// DueNow: the next sweep destroys it; DueBytes their sealed size.
	DueNow   int   `json:"due_now"`
	DueBytes int64 `json:"due_bytes"`
	// NextDue is the earliest time after now at which the sweeper will
	// destroy one of them (zero: none is scheduled).
	NextDue time.Time `json:"next_due,omitzero"`
}

func (c *ReportCounts) add(m store.RetainedMessage, conflict bool, now time.Time) {
	r := m.Retention
	c.Messages++
	c.Bytes += m.SealedSize
	if m.Vaulted {
		c.Vaulted++
	}
	if r.KeepUntil.After(now) {
		c.UnderMinimum++
		if r.Locked {
			c.Locked++
		}
	}
	if r.Held {
		c.Held++
	}
	if conflict {
		c.Conflict++
	}
	if !m.Vaulted && r.DeleteAfter.IsZero() {
		c.NoMaximum++
	}
	if r.Pending {
		c.Pending++
	}
	switch {
	case dueNow(r, m.Vaulted, now):
		c.DueNow++
		c.DueBytes += m.SealedSize
	case !r.Held && !r.Pending:
		c.later(dueAt(r, m.Vaulted), now)
	}
}

// later keeps t as NextDue if it is the earliest time after now so far.
func (c *ReportCounts) later(t, now time.Time) {
	if t.IsZero() || !t.After(now) || t.Equal(store.Forever) {
		return
	}
	if c.NextDue.IsZero() || t.Before(c.NextDue) {
		c.NextDue = t
	}
}

// merge adds o's counts to c.
func (c *ReportCounts) merge(o ReportCounts, now time.Time) {
	c.Messages += o.Messages
	c.Bytes += o.Bytes
	c.Vaulted += o.Vaulted
	c.UnderMinimum += o.UnderMinimum
	c.Locked += o.Locked
	c.Held += o.Held
	c.Conflict += o.Conflict
	c.NoMaximum += o.NoMaximum
	c.Pending += o.Pending
	c.DueNow += o.DueNow
	c.DueBytes += o.DueBytes
	c.later(o.NextDue, now)
}

// dueAt is when the sweeper may destroy a message whose state is r: a
// live one at its delete-after (never before its keep-until), a vaulted
// one at its keep-until. Zero: never on its own.
func dueAt(r store.Retention, vaulted bool) time.Time {
	if vaulted {
		return r.KeepUntil
	}
	if r.DeleteAfter.IsZero() {
		return time.Time{}
	}
	if r.KeepUntil.After(r.DeleteAfter) {
		return r.KeepUntil
	}
	return r.DeleteAfter
}

func (a *AccountReport) add(m store.RetainedMessage, conflict bool, now time.Time) {
	class := classOrDefault(m.Retention.Class)
	if a.index == nil {
		a.index = map[string]int{}
	}
	i, ok := a.index[class]
	if !ok {
		i = len(a.Classes)
		a.index[class] = i
		a.Classes = append(a.Classes, ClassCounts{Class: class})
	}
	a.Classes[i].add(m, conflict, now)
	a.Total.add(m, conflict, now)
}

// Report builds the compliance report of a scope ("org" if empty): it
// reads every message the scope covers (metadata only, in batches), so
// it takes as long as a policy change's walk. The report itself is
// audited ("compliance.report", with its totals).
func (s *Service) Report(ctx context.Context, actor, scope string, progress func(Progress)) (ComplianceReport, error) {
	if scope == "" {
		scope = "org"
	}
	sc, err := s.ResolveScope(ctx, scope)
	if err != nil {
		return ComplianceReport{}, err
	}
	pol := s.Policy()
	now := s.now()
	rep := ComplianceReport{Scope: sc.String(), Generated: now.UTC(), Gen: pol.Gen, LastSweep: s.LastSweep(),
		Assignments: []AssignmentInfo{}, Holds: []HoldInfo{}, Accounts: []AccountReport{}}
	as, err := s.st.Assignments(ctx)
	if err != nil {
		return rep, err
	}
	for _, a := range as {
		asc, err := policy.ParseScope(a.Scope)
		if err == nil && overlaps(asc, sc) {
			rep.Assignments = append(rep.Assignments, AssignmentInfo{Preset: a.Preset, Scope: s.displayScope(ctx, a.Scope), Class: a.Class,
				Zone: a.Zone, FiscalYearStart: a.FiscalYearStart, Created: a.Created, By: a.By, Reason: a.Reason})
		}
	}
	hs, err := s.Holds(ctx)
	if err != nil {
		return rep, err
	}
	for _, h := range hs {
		hsc, err := policy.ParseScope(h.Scope)
		if err == nil && h.Active() && overlaps(hsc, sc) {
			rep.Holds = append(rep.Holds, h)
		}
	}
	owners, err := s.owners(ctx, sc)
	if err != nil {
		return rep, err
	}
	for i, o := range owners {
		ar, err := s.reportOwner(ctx, pol, sc, o, now)
		if err != nil {
			return rep, err
		}
		if ar.Total.Messages > 0 || o.Former == 0 {
			rep.Total.merge(ar.Total, now)
			rep.Accounts = append(rep.Accounts, ar)
		}
		if progress != nil {
			progress(Progress{Phase: "reading", Done: i + 1, Total: len(owners)})
		}
	}
	slices.SortStableFunc(rep.Accounts, func(a, b AccountReport) int {
		return cmp.Or(strings.Compare(a.Account, b.Account), cmp.Compare(a.Former, b.Former))
	})
	t := rep.Total
	err = s.audit(ctx, Event{Actor: actor, Action: "compliance.report", Scope: sc.Key(), Detail: map[string]string{
		"accounts":      strconv.Itoa(len(rep.Accounts)),
		"messages":      strconv.Itoa(t.Messages),
		"vaulted":       strconv.Itoa(t.Vaulted),
		"under_minimum": strconv.Itoa(t.UnderMinimum),
		"held":          strconv.Itoa(t.Held),
		"conflict":      strconv.Itoa(t.Conflict),
		"due_now":       strconv.Itoa(t.DueNow),
		"gen":           strconv.FormatUint(pol.Gen, 10),
	}})
	return rep, err
}

// reportOwner counts the messages of o that sc covers.
func (s *Service) reportOwner(ctx context.Context, pol *policy.Policy, sc policy.Scope, o store.Owner, now time.Time) (AccountReport, error) {
	ar := AccountReport{Account: o.Address, Former: o.Former, Classes: []ClassCounts{}}
	w := newWalker(s, o)
	var after uint64
	for {
		if err := ctx.Err(); err != nil {
			return ar, err
		}
		ms, err := s.st.Retained(ctx, o, after, batch)
		if errors.Is(err, store.ErrNotFound) {
			break // deleted meanwhile
		}
		if err != nil {
			return ar, err
		}
		if len(ms) == 0 {
			break
		}
		after = ms[len(ms)-1].ID
		if sc.Kind == policy.ScopeMailbox {
			ms = onlyMailbox(ms, sc.MailboxID)
		}
		for _, m := range ms {
			sub, err := w.subject(ctx, m)
			if err != nil {
				return ar, err
			}
			ar.add(m, pol.Decide(sub).Conflict, now)
		}
	}
	return ar, nil
}

// overlaps reports whether scopes a and b cover some mail in common:
// one contains the other.
func overlaps(a, b policy.Scope) bool {
	return contains(a, b) || contains(b, a)
}

// contains reports whether a covers everything b covers.
func contains(a, b policy.Scope) bool {
	switch a.Kind {
	case policy.ScopeOrg:
		return true
	case policy.ScopeDomain:
		if b.Kind == policy.ScopeDomain {
			return b.Domain == a.Domain
		}
		return b.Kind != policy.ScopeOrg && a.CoversAccount(b.Address)
	case policy.ScopeUser:
		return (b.Kind == policy.ScopeUser || b.Kind == policy.ScopeMailbox) && b.Address == a.Address
	case policy.ScopeMailbox:
		return b.Kind == policy.ScopeMailbox && b.Address == a.Address && b.MailboxID == a.MailboxID
	}
	return false
}
