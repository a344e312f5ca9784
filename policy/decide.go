package policy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sealmail/sealmail/store"
)

// Policy is one consistent view of the retention policy: the presets in
// force (the highest version of each ID, shipped or imported), the
// assignments, the legal holds and the events, as of one policy
// generation. It is immutable and safe for concurrent use; Decide is a
// pure function of it and a message's metadata.
//
// How a message's retention is decided (docs/retention.md says the same
// for officers):
//
//   - Its class is the class of its mailbox's assignment, if that sets
//     one; else the class a special-use mailbox implies (\Trash: trash,
//     \Junk: spam); else the class it got at delivery (its origin).
//   - Every assignment that covers it applies: the organisation's, its
//     domain's, its account's and its mailbox's. From each, the preset's
//     rule for the class (or the preset's default rule) gives a minimum
//     and a maximum, each counted from the rule's start.
//   - Minimums are obligations. The longest wins, across all levels, and
//     the minimums of the origin class still apply after the class has
//     changed (moving a business letter into the trash does not shorten
//     its obligation).
//   - Maximums are preferences: the most specific level that sets one for
//     the class wins (a mailbox's beats its account's, which beats its
//     domain's, which beats the organisation's); within a level, the
//     shortest. A locked maximum applies at every level.
//   - Where the maximum ends before the minimum, the minimum wins (a
//     legal obligation beats storage limitation) and the decision says
//     Conflict.
//   - An active legal hold whose scope (and date range, on the arrival
//     time) covers the message beats every deletion.
type Policy struct {
	Gen      uint64
	presets  map[string]*Preset // in force, by ID
	assigns  []assignment
	holds    []holdRule // active holds
	events   map[string]map[string]time.Time
	boxClass map[boxKey]string
	// Problems are imported presets that failed to parse (and are
	// ignored); they were validated at import, so this means a newer
	// sealmail reads an older file differently.
	Problems []error
}

type boxKey struct {
	address string
	id      uint64
}

type assignment struct {
	store.Assignment
	scope  Scope
	preset *Preset
	zone   *time.Location
	fy     MonthDay
}

type holdRule struct {
	store.Hold
	scope Scope
}

// NewPolicy builds the view of generation gen from the shipped presets
// and what the store holds.
func NewPolicy(gen uint64, builtin []*Preset, imported []store.Preset, as []store.Assignment, hs []store.Hold, es []store.RetentionEvent) *Policy {
	p := &Policy{
		Gen:      gen,
		presets:  map[string]*Preset{},
		events:   map[string]map[string]time.Time{},
		boxClass: map[boxKey]string{},
	}
	for _, b := range builtin {
		p.presets[b.ID] = b
	}
	for _, sp := range imported {
		pr, err := ParsePreset(bytes.NewReader(sp.Source), sp.ID)
		if err != nil {
			p.Problems = append(p.Problems, err)
			continue
		}
		if cur := p.presets[pr.ID]; cur == nil || pr.Version > cur.Version {
			p.presets[pr.ID] = pr
		}
	}
	for _, a := range as {
		sc, err := ParseScope(a.Scope)
		pr := p.presets[a.Preset]
		if err != nil || pr == nil {
			p.Problems = append(p.Problems, fmt.Errorf("assignment of %s to %s ignored: %v", a.Preset, a.Scope, orMissing(err)))
			continue
		}
		x := assignment{Assignment: a, scope: sc, preset: pr, zone: pr.Zone, fy: pr.FiscalYear}
		if a.Zone != "" {
			if loc, err := loadZone(a.Zone); err == nil {
				x.zone = loc
			}
		}
		if a.FiscalYearStart != "" {
			if md, err := ParseMonthDay(a.FiscalYearStart); err == nil {
				x.fy = md
			}
		}
		if sc.Kind == ScopeMailbox && a.Class != "" {
			p.boxClass[boxKey{sc.Address, sc.MailboxID}] = a.Class
		}
		p.assigns = append(p.assigns, x)
	}
	for _, h := range hs {
		if !h.Active() {
			continue
		}
		sc, err := ParseScope(h.Scope)
		if err != nil {
			p.Problems = append(p.Problems, fmt.Errorf("hold %d: %v (it is applied to the whole organisation)", h.ID, err))
			sc = Scope{Kind: ScopeOrg} // a hold never silently covers less
		}
		p.holds = append(p.holds, holdRule{Hold: h, scope: sc})
	}
	for _, e := range es {
		m := p.events[e.Name]
		if m == nil {
			m = map[string]time.Time{}
			p.events[e.Name] = m
		}
		m[e.Scope] = e.At
	}
	return p
}

func orMissing(err error) any {
	if err != nil {
		return err
	}
	return "no such preset"
}

// Preset returns the preset in force with this ID, or nil.
func (p *Policy) Preset(id string) *Preset { return p.presets[id] }

// Presets lists the presets in force, by ID.
func (p *Policy) Presets() []*Preset {
	out := make([]*Preset, 0, len(p.presets))
	for _, pr := range p.presets {
		out = append(out, pr)
	}
	slices.SortFunc(out, func(a, b *Preset) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// MailboxClass returns the class a mailbox's own assignment sets, or "".
func (p *Policy) MailboxClass(address string, mailbox uint64) string {
	return p.boxClass[boxKey{address, mailbox}]
}

// HasMailboxScopes reports whether an assignment or an active hold names
// one of address's mailboxes, so that deciding for its mail needs the
// mailbox's ID.
func (p *Policy) HasMailboxScopes(address string) bool {
	for _, a := range p.assigns {
		if a.scope.Kind == ScopeMailbox && a.scope.Address == address {
			return true
		}
	}
	for _, h := range p.holds {
		if h.scope.Kind == ScopeMailbox && h.scope.Address == address {
			return true
		}
	}
	return false
}

// HoldsOn returns the active holds covering all or part of an account.
func (p *Policy) HoldsOn(address string) []store.Hold {
	var out []store.Hold
	for _, h := range p.holds {
		if h.scope.CoversAccount(address) {
			out = append(out, h.Hold)
		}
	}
	return out
}

// Subject is what Decide needs to know of a message: metadata only.
type Subject struct {
	Address string // the account (canonical)
	// MailboxID is the mailbox the message is in, or was in before the
	// vault; 0 if unknown.
	MailboxID uint64
	// SpecialUse is that mailbox's special-use attribute, if it is
	// known and the message is in it.
	SpecialUse string
	Arrival    time.Time
	Origin     string // class at delivery; "" is default
	// Class, if not "", fixes the current class (a vaulted message keeps
	// the class it had).
	Class string
}

// Applied is one rule that applied to a message, and why.
type Applied struct {
	Preset     string // ID@VERSION
	Scope      string // the assignment's scope
	Level      int
	Rule       Rule
	ForOrigin  bool      // applied through the origin class (minimum only)
	Start      time.Time // zero: an event that has not happened
	KeepUntil  time.Time // zero: no minimum; store.Forever: until the event
	DeleteAt   time.Time // zero: no maximum (or not yet)
	UsedForMin bool      // this rule decided the minimum
	UsedForMax bool      // this rule decided the maximum
}

// Decision is the retention of one message.
type Decision struct {
	Class       string
	KeepUntil   time.Time // zero: none; store.Forever: until an event
	DeleteAfter time.Time // zero: none
	Locked      bool
	Producible  bool
	Held        bool
	Holds       []uint64
	// Conflict: the maximum ended before the minimum; the minimum won.
	Conflict bool
	Applied  []Applied
}

// ClassOf returns the current class of a message of s.
func (p *Policy) ClassOf(s Subject) string {
	if s.Class != "" {
		return s.Class
	}
	if c := p.boxClass[boxKey{s.Address, s.MailboxID}]; c != "" && s.MailboxID != 0 {
		return c
	}
	switch s.SpecialUse {
	case `\Trash`:
		return ClassTrash
	case `\Junk`:
		return ClassSpam
	}
	if s.Origin != "" {
		return s.Origin
	}
	return ClassDefault
}

// Decide decides the retention of a message of s.
func (p *Policy) Decide(s Subject) Decision {
	d := Decision{Class: p.ClassOf(s)}
	origin := s.Origin
	if origin == "" {
		origin = ClassDefault
	}
	minIdx := -1
	maxLevel := -1
	var maxIdx, lockedMaxIdx []int
	for i := range p.assigns {
		a := &p.assigns[i]
		if !a.scope.Covers(s.Address, s.MailboxID) {
			continue
		}
		classes := []string{d.Class}
		if origin != d.Class {
			classes = append(classes, origin)
		}
		for ci, c := range classes {
			r := a.preset.Rule(c)
			if r == nil {
				continue
			}
			if ci == 1 && r == a.preset.Rule(d.Class) {
				continue // the same rule through both classes: once is enough
			}
			ap := Applied{Preset: a.preset.Ref(), Scope: a.scope.Key(), Level: a.scope.Level(), Rule: *r, ForOrigin: ci == 1}
			start, known := p.start(a, r, s)
			if known {
				ap.Start = start.UTC()
			}
			if !r.Min.IsZero() {
				if known {
					ap.KeepUntil = r.Min.AddTo(start).UTC()
				} else {
					ap.KeepUntil = store.Forever
				}
			}
			if r.HasMax && ci == 0 && known {
				ap.DeleteAt = r.Max.AddTo(start).UTC()
			}
			d.Applied = append(d.Applied, ap)
			k := len(d.Applied) - 1
			if r.Producible {
				d.Producible = true
			}
			if !ap.KeepUntil.IsZero() {
				if r.Locked {
					d.Locked = true
				}
				if minIdx < 0 || ap.KeepUntil.After(d.Applied[minIdx].KeepUntil) {
					minIdx = k
				}
			}
			if r.HasMax && ci == 0 {
				if r.Locked {
					lockedMaxIdx = append(lockedMaxIdx, k)
				} else if ap.Level > maxLevel {
					maxLevel, maxIdx = ap.Level, []int{k}
				} else if ap.Level == maxLevel {
					maxIdx = append(maxIdx, k)
				}
			}
		}
	}
	if minIdx >= 0 {
		d.KeepUntil = d.Applied[minIdx].KeepUntil
		d.Applied[minIdx].UsedForMin = true
	}
	// The maximum: the shortest among the most specific level's and
	// every locked one. A rule whose start has not happened defers
	// deletion: if it decides, there is no maximum yet.
	best := -1
	for _, k := range append(maxIdx, lockedMaxIdx...) {
		ap := d.Applied[k]
		if best < 0 || earlierDelete(ap.DeleteAt, d.Applied[best].DeleteAt) {
			best = k
		}
	}
	if best >= 0 {
		d.Applied[best].UsedForMax = true
		d.DeleteAfter = d.Applied[best].DeleteAt
	}
	if !d.DeleteAfter.IsZero() && d.DeleteAfter.Before(d.KeepUntil) {
		d.Conflict = true
		d.DeleteAfter = d.KeepUntil
		if d.KeepUntil.Equal(store.Forever) {
			d.DeleteAfter = time.Time{}
		}
	}
	for _, h := range p.holds {
		if !h.scope.Covers(s.Address, s.MailboxID) {
			continue
		}
		if !h.From.IsZero() && s.Arrival.Before(h.From) || !h.To.IsZero() && !s.Arrival.Before(h.To) {
			continue
		}
		d.Held = true
		d.Holds = append(d.Holds, h.ID)
	}
	return d
}

// earlierDelete orders deletion times where zero (not yet known) is the
// latest of all.
func earlierDelete(a, b time.Time) bool {
	switch {
	case a.IsZero():
		return false
	case b.IsZero():
		return true
	}
	return a.Before(b)
}

// start returns when rule r's period starts for s, and false for an event
// that has not happened.
func (p *Policy) start(a *assignment, r *Rule, s Subject) (time.Time, bool) {
	arrival := s.Arrival
	switch r.Start.Kind {
	case StartEndOfYear:
		t := arrival.In(a.zone)
		return time.Date(t.Year()+1, time.January, 1, 0, 0, 0, 0, a.zone), true
	case StartEndOfFiscalYear:
		t := arrival.In(a.zone)
		b := time.Date(t.Year(), a.fy.Month, a.fy.Day, 0, 0, 0, 0, a.zone)
		if !t.Before(b) {
			b = time.Date(t.Year()+1, a.fy.Month, a.fy.Day, 0, 0, 0, 0, a.zone)
		}
		return b, true
	case StartEvent:
		at, ok := p.eventAt(r.Start.Event, s)
		if !ok {
			return time.Time{}, false
		}
		if at.Before(arrival) {
			at = arrival
		}
		return at.In(a.zone), true
	}
	return arrival.In(a.zone), true
}

// eventAt returns when the event happened for a scope covering s: the
// latest such time, so that a period never starts earlier than the last
// time the event happened.
func (p *Policy) eventAt(name string, s Subject) (time.Time, bool) {
	var at time.Time
	var ok bool
	for key, t := range p.events[name] {
		sc, err := ParseScope(key)
		if err != nil || !sc.Covers(s.Address, s.MailboxID) {
			continue
		}
		if !ok || t.After(at) {
			at, ok = t, true
		}
	}
	return at, ok
}

// Stamp turns a decision into the state the store keeps for the message.
func (d Decision) Stamp(s Subject, gen uint64) store.Retention {
	origin := s.Origin
	if origin == "" {
		origin = ClassDefault
	}
	return store.Retention{
		Arrival:     s.Arrival.UTC(),
		Origin:      origin,
		Class:       d.Class,
		KeepUntil:   d.KeepUntil,
		DeleteAfter: d.DeleteAfter,
		Rule:        d.RuleText(),
		Held:        d.Held,
		Locked:      d.Locked,
		Gen:         gen,
	}
}

// RuleText says, in at most store.MaxRuleLen bytes, which rules decided.
func (d Decision) RuleText() string {
	var parts []string
	for _, a := range d.Applied {
		switch {
		case a.UsedForMin && a.UsedForMax:
			parts = append(parts, fmt.Sprintf("min+max %s %s via %s", a.Preset, a.Rule, a.Scope))
		case a.UsedForMin:
			parts = append(parts, fmt.Sprintf("min %s %s via %s", a.Preset, a.Rule, a.Scope))
		case a.UsedForMax:
			parts = append(parts, fmt.Sprintf("max %s %s via %s", a.Preset, a.Rule, a.Scope))
		}
	}
	if d.Conflict {
		parts = append(parts, "conflict: min wins")
	}
	for _, h := range d.Holds {
		parts = append(parts, fmt.Sprintf("hold %d", h))
	}
	return clipUTF8(strings.Join(parts, "; "), store.MaxRuleLen)
}

// clipUTF8 shortens s to at most n bytes without splitting a character.
func clipUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Assignments lists the assignments as parsed (for people).
func (p *Policy) Assignments() []store.Assignment {
	out := make([]store.Assignment, len(p.assigns))
	for i, a := range p.assigns {
		out[i] = a.Assignment
	}
	return out
}

// ShortestMax returns the fewest whole days the policy keeps a message of
// address (of any account if address is "") before the sweeper may
// destroy it: the shortest maximum among the rules of the presets
// assigned to a scope that covers all or part of the account, counted
// from the start that ends it soonest. It is a lower bound (a minimum, a
// hold or a later start keeps mail longer), which is what RFC 2449's
// EXPIRE announces. ok is false when no such rule has a maximum: the
// server never destroys that mail on its own.
func (p *Policy) ShortestMax(address string) (days int, ok bool) {
	for _, a := range p.assigns {
		if address != "" && !a.scope.CoversAccount(address) {
			continue
		}
		for _, r := range a.preset.Rules {
			if !r.HasMax {
				continue
			}
			if d := r.Max.fewestDays(); !ok || d < days {
				days, ok = d, true
			}
		}
	}
	return days, ok
}
