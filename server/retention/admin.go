package retention

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrWouldDestroy: the change would make the next sweep destroy
	// mail that it would not destroy now; repeat with Force to do it.
	ErrWouldDestroy = errors.New("retention: the change would destroy mail at the next sweep")
	// ErrLocked: the preset has locked rules, which cannot be removed.
	ErrLocked = errors.New("retention: locked")
	// ErrHeld: a legal hold covers the account.
	ErrHeld = errors.New("retention: under legal hold")
)

// PresetInfo describes a preset in force.
type PresetInfo struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Version     int           `json:"version"`
	Builtin     bool          `json:"builtin"`
	Description string        `json:"description,omitempty"`
	Notice      string        `json:"notice"`
	Sources     []string      `json:"sources"`
	Zone        string        `json:"zone,omitempty"`
	FiscalYear  string        `json:"fiscal_year_start"`
	Rules       []RuleInfo    `json:"rules"`
	Assigned    []string      `json:"assigned_to,omitempty"`
	Source      string        `json:"source,omitempty"` // the YAML, for `policy show`
	Imported    *ImportedInfo `json:"imported,omitempty"`
	Locked      bool          `json:"locked"`
}

// ImportedInfo says who imported a preset and when.
type ImportedInfo struct {
	By   string    `json:"by"`
	Time time.Time `json:"time"`
}

// RuleInfo is one rule of a preset.
type RuleInfo struct {
	Class      string `json:"class"`
	Min        string `json:"min"`
	Max        string `json:"max"` // "none" for no maximum
	Start      string `json:"start"`
	Locked     bool   `json:"locked,omitempty"`
	Producible bool   `json:"producible,omitempty"`
	Note       string `json:"note,omitempty"`
}

func ruleInfo(r policy.Rule) RuleInfo {
	ri := RuleInfo{Class: r.Class, Min: r.Min.String(), Max: "none", Start: r.Start.String(), Locked: r.Locked, Producible: r.Producible, Note: r.Note}
	if r.HasMax {
		ri.Max = r.Max.String()
	}
	return ri
}

// Presets lists the presets in force.
func (s *Service) Presets(ctx context.Context) ([]PresetInfo, error) {
	pol := s.Policy()
	imported, err := s.st.Presets(ctx)
	if err != nil {
		return nil, err
	}
	var out []PresetInfo
	for _, p := range pol.Presets() {
		out = append(out, s.presetInfo(ctx, pol, p, imported, false))
	}
	return out, nil
}

// Preset describes one preset in force, with its YAML source.
func (s *Service) Preset(ctx context.Context, id string) (PresetInfo, error) {
	pol := s.Policy()
	p := pol.Preset(id)
	if p == nil {
		return PresetInfo{}, errorf(nil, "no preset %q; `sealmail policy presets` lists them", id)
	}
	imported, err := s.st.Presets(ctx)
	if err != nil {
		return PresetInfo{}, err
	}
	return s.presetInfo(ctx, pol, p, imported, true), nil
}

func (s *Service) presetInfo(ctx context.Context, pol *policy.Policy, p *policy.Preset, imported []store.Preset, withSource bool) PresetInfo {
	pi := PresetInfo{ID: p.ID, Name: p.Name, Version: p.Version, Builtin: p.Builtin, Description: strings.TrimSpace(p.Description),
		Notice: strings.TrimSpace(p.Notice), Sources: p.Sources, Zone: p.ZoneName, FiscalYear: p.FiscalYear.String(), Locked: p.HasLocked()}
	for _, r := range p.Rules {
		pi.Rules = append(pi.Rules, ruleInfo(r))
	}
	for _, a := range pol.Assignments() {
		if a.Preset == p.ID {
			pi.Assigned = append(pi.Assigned, s.displayScope(ctx, a.Scope))
		}
	}
	if !p.Builtin {
		for _, ip := range imported {
			if ip.ID == p.ID {
				pi.Imported = &ImportedInfo{By: ip.By, Time: ip.Imported}
			}
		}
	}
	if withSource {
		pi.Source = string(p.Source)
	}
	return pi
}

// displayScope turns a stored scope into the form people read: a mailbox
// by its name.
func (s *Service) displayScope(ctx context.Context, key string) string {
	sc, err := policy.ParseScope(key)
	if err != nil || sc.Kind != policy.ScopeMailbox {
		return key
	}
	mb, err := s.st.MailboxByID(ctx, sc.Address, sc.MailboxID)
	if err != nil {
		return key + " (deleted mailbox)"
	}
	sc.Mailbox = mb.Name
	return sc.String()
}

// ResolveScope parses a scope as the CLI takes it and finds a mailbox's
// ID. A user scope must name an account, live or deleted with its vault
// kept; a mailbox scope an existing mailbox.
func (s *Service) ResolveScope(ctx context.Context, text string) (policy.Scope, error) {
	sc, err := policy.ParseScope(text)
	if err != nil {
		return sc, errorf(err, "%v", err)
	}
	switch sc.Kind {
	case policy.ScopeMailbox:
		if sc.MailboxID != 0 {
			mb, err := s.st.MailboxByID(ctx, sc.Address, sc.MailboxID)
			if err != nil {
				return sc, errorf(err, "no mailbox #%d of %s", sc.MailboxID, sc.Address)
			}
			sc.Mailbox = mb.Name
			return sc, nil
		}
		mb, err := s.st.Mailbox(ctx, sc.Address, sc.Mailbox)
		if errors.Is(err, store.ErrNotFound) {
			return sc, errorf(err, "%s has no mailbox %q", sc.Address, sc.Mailbox)
		}
		if err != nil {
			return sc, err
		}
		sc.MailboxID = mb.ID
	case policy.ScopeUser:
		if _, err := s.st.PublicAccount(ctx, sc.Address); err == nil {
			return sc, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return sc, err
		}
		fs, err := s.st.FormerAccounts(ctx)
		if err != nil {
			return sc, err
		}
		for _, f := range fs {
			if f.Address == sc.Address {
				return sc, nil
			}
		}
		return sc, errorf(store.ErrNotFound, "no account %s (nor a vault it left)", sc.Address)
	}
	return sc, nil
}

// Impact is what a change would make the next sweep destroy that it
// would not destroy now.
type Impact struct {
	Messages int               `json:"messages"`
	Bytes    int64             `json:"bytes"`
	Lines    []ImpactLine      `json:"by_account_and_class,omitempty"`
	index    map[[2]string]int // Lines by account and class
}

// ImpactLine counts one account's messages of one class.
type ImpactLine struct {
	Account  string `json:"account"`
	Class    string `json:"class"`
	Messages int    `json:"messages"`
	Bytes    int64  `json:"bytes"`
}

func (im *Impact) add(account, class string, size int64) {
	im.Messages++
	im.Bytes += size
	if im.index == nil {
		im.index = map[[2]string]int{}
	}
	k := [2]string{account, class}
	if i, ok := im.index[k]; ok {
		im.Lines[i].Messages++
		im.Lines[i].Bytes += size
		return
	}
	im.index[k] = len(im.Lines)
	im.Lines = append(im.Lines, ImpactLine{Account: account, Class: class, Messages: 1, Bytes: size})
}

// dueNow reports whether a state makes a message destroyable at the next
// sweep at now.
func dueNow(r store.Retention, vaulted bool, now time.Time) bool {
	if r.Held || r.Pending {
		return false
	}
	if vaulted {
		return !r.KeepUntil.After(now)
	}
	return !r.DeleteAfter.IsZero() && !r.DeleteAfter.After(now) && !r.KeepUntil.After(now)
}

// impact computes, for the messages the scopes cover, what next would
// newly make due. The caller holds s.mu.
func (s *Service) impact(ctx context.Context, scopes []policy.Scope, next *policy.Policy) (Impact, error) {
	var im Impact
	now := s.now()
	seen := map[store.Owner]bool{}
	for _, sc := range scopes {
		owners, err := s.owners(ctx, sc)
		if err != nil {
			return im, err
		}
		for _, o := range owners {
			if seen[o] && sc.Kind != policy.ScopeMailbox {
				continue
			}
			seen[o] = true
			w := newWalker(s, o)
			var after uint64
			for {
				ms, err := s.st.Retained(ctx, o, after, batch)
				if errors.Is(err, store.ErrNotFound) {
					break
				}
				if err != nil {
					return im, err
				}
				if len(ms) == 0 {
					break
				}
				after = ms[len(ms)-1].ID
				for _, m := range ms {
					if sc.Kind == policy.ScopeMailbox && m.MailboxID != sc.MailboxID {
						continue
					}
					sub, err := w.subject(ctx, m)
					if err != nil {
						return im, err
					}
					d := next.Decide(sub)
					st := d.Stamp(sub, next.Gen)
					if dueNow(st, m.Vaulted, now) && !dueNow(m.Retention, m.Vaulted, now) {
						im.add(ownerName(o), d.Class, m.SealedSize)
					}
				}
			}
		}
	}
	return im, nil
}

func ownerName(o store.Owner) string {
	if o.Former != 0 {
		return fmt.Sprintf("%s (deleted account #%d)", o.Address, o.Former)
	}
	return o.Address
}

// policyData is what a policy is built from.
type policyData struct {
	presets []store.Preset
	assigns []store.Assignment
	holds   []store.Hold
	events  []store.RetentionEvent
	gen     uint64
}

func (s *Service) loadData(ctx context.Context) (policyData, error) {
	var d policyData
	var err error
	if d.gen, err = s.st.PolicyGen(ctx); err != nil {
		return d, err
	}
	if d.presets, err = s.st.Presets(ctx); err != nil {
		return d, err
	}
	if d.assigns, err = s.st.Assignments(ctx); err != nil {
		return d, err
	}
	if d.holds, err = s.st.Holds(ctx); err != nil {
		return d, err
	}
	d.events, err = s.st.RetentionEvents(ctx)
	return d, err
}

func (d policyData) build() *policy.Policy {
	b, _ := policy.Builtin()
	return policy.NewPolicy(d.gen, b, d.presets, d.assigns, d.holds, d.events)
}

// ChangeOptions are the safety switches of a policy change.
type ChangeOptions struct {
	// DryRun computes the impact and changes nothing.
	DryRun bool
	// Force makes a change that would destroy mail at the next sweep.
	Force bool
	// Reason is recorded in the audit log.
	Reason   string
	Progress func(Progress)
}

// ChangeResult says what a policy change did (or would do).
type ChangeResult struct {
	Impact     Impact `json:"impact"`
	Applied    bool   `json:"applied"`
	Recomputed int    `json:"recomputed"`
	Scope      string `json:"scope,omitempty"`
	Preset     string `json:"preset,omitempty"`
}

// change runs a policy change: the impact of next over scopes, then, if
// allowed, commit (the store write) and a walk of the scopes. The caller
// holds s.mu.
func (s *Service) change(ctx context.Context, opt ChangeOptions, scopes []policy.Scope, next *policy.Policy, commit func() error) (ChangeResult, error) {
	var res ChangeResult
	im, err := s.impact(ctx, scopes, next)
	if err != nil {
		return res, err
	}
	res.Impact = im
	if opt.DryRun {
		return res, nil
	}
	if im.Messages > 0 && !opt.Force {
		return res, fmt.Errorf("%w: %d messages (%d bytes); check them with --dry-run and repeat with --yes", ErrWouldDestroy, im.Messages, im.Bytes)
	}
	if err := commit(); err != nil {
		return res, err
	}
	res.Applied = true
	if err := s.reload(ctx); err != nil {
		return res, err
	}
	for _, sc := range scopes {
		n, err := s.walkScope(ctx, sc, opt.Progress)
		res.Recomputed += n
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// ImportPreset validates a preset file and stores it. A preset of an ID
// in force (shipped or imported) must have a higher version and keep its
// locked rules (policy.CheckUpgrade).
func (s *Service) ImportPreset(ctx context.Context, actor string, src []byte, file string, opt ChangeOptions) (ChangeResult, error) {
	p, err := policy.ParsePreset(bytes.NewReader(src), file)
	if err != nil {
		return ChangeResult{}, errorf(err, "%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.Policy().Preset(p.ID); cur != nil {
		if err := policy.CheckUpgrade(cur, p); err != nil {
			return ChangeResult{}, errorf(err, "%v", err)
		}
	}
	d, err := s.loadData(ctx)
	if err != nil {
		return ChangeResult{}, err
	}
	sp := store.Preset{ID: p.ID, Version: p.Version, Source: src, Imported: s.now().UTC(), By: actor}
	d.presets = replacePreset(d.presets, sp)
	d.gen++
	var scopes []policy.Scope
	for _, a := range d.assigns {
		if a.Preset == p.ID {
			if sc, err := policy.ParseScope(a.Scope); err == nil {
				scopes = append(scopes, sc)
			}
		}
	}
	res, err := s.change(ctx, opt, scopes, d.build(), func() error { return s.st.PutPreset(ctx, sp) })
	res.Preset = p.Ref()
	if err != nil || !res.Applied {
		return res, err
	}
	sum := sha256.Sum256(src)
	return res, s.audit(ctx, Event{Actor: actor, Action: "policy.import", Scope: "org", Reason: opt.Reason, Detail: map[string]string{
		"preset": p.Ref(), "sha256": hex.EncodeToString(sum[:]), "rules": strconv.Itoa(len(p.Rules)), "recomputed": strconv.Itoa(res.Recomputed)}})
}

func replacePreset(ps []store.Preset, p store.Preset) []store.Preset {
	out := slices.DeleteFunc(slices.Clone(ps), func(x store.Preset) bool { return x.ID == p.ID })
	return append(out, p)
}

// AssignRequest assigns a preset to a scope.
type AssignRequest struct {
	Preset string
	Scope  string // as the CLI takes it
	// Class, for a mailbox, is the class its messages get.
	Class           string
	Zone            string
	FiscalYearStart string
}

// Assign assigns a preset to a scope (replacing the same preset's
// assignment there).
func (s *Service) Assign(ctx context.Context, actor string, r AssignRequest, opt ChangeOptions) (ChangeResult, error) {
	sc, err := s.ResolveScope(ctx, r.Scope)
	if err != nil {
		return ChangeResult{}, err
	}
	pol := s.Policy()
	p := pol.Preset(r.Preset)
	if p == nil {
		return ChangeResult{}, errorf(nil, "no preset %q; `sealmail policy presets` lists them", r.Preset)
	}
	if r.Class != "" {
		if sc.Kind != policy.ScopeMailbox {
			return ChangeResult{}, errorf(nil, "--class applies to a mailbox scope only")
		}
		if !policy.IsClass(r.Class) {
			return ChangeResult{}, errorf(nil, "unknown class %q", r.Class)
		}
		if c := pol.MailboxClass(sc.Address, sc.MailboxID); c != "" && c != r.Class {
			return ChangeResult{}, errorf(nil, "%s has class %s from another assignment; unassign that first", sc, c)
		}
	}
	if r.Zone != "" {
		if _, err := time.LoadLocation(r.Zone); err != nil || strings.Contains(r.Zone, "..") {
			return ChangeResult{}, errorf(nil, "zone %q: want an IANA zone name such as Europe/Berlin", r.Zone)
		}
	}
	if r.FiscalYearStart != "" {
		if _, err := policy.ParseMonthDay(r.FiscalYearStart); err != nil {
			return ChangeResult{}, errorf(err, "%v", err)
		}
	}
	a := store.Assignment{Preset: p.ID, Scope: sc.Key(), Class: r.Class, Zone: r.Zone, FiscalYearStart: r.FiscalYearStart,
		Created: s.now().UTC(), By: actor, Reason: opt.Reason}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.loadData(ctx)
	if err != nil {
		return ChangeResult{}, err
	}
	d.assigns = slices.DeleteFunc(d.assigns, func(x store.Assignment) bool { return x.Preset == a.Preset && x.Scope == a.Scope })
	d.assigns = append(d.assigns, a)
	d.gen++
	res, err := s.change(ctx, opt, []policy.Scope{sc}, d.build(), func() error { return s.st.PutAssignment(ctx, a) })
	res.Scope, res.Preset = sc.String(), p.Ref()
	if err != nil || !res.Applied {
		return res, err
	}
	detail := map[string]string{"preset": p.Ref(), "recomputed": strconv.Itoa(res.Recomputed)}
	for k, v := range map[string]string{"class": r.Class, "zone": r.Zone, "fiscal_year_start": r.FiscalYearStart} {
		if v != "" {
			detail[k] = v
		}
	}
	return res, s.audit(ctx, Event{Actor: actor, Action: "policy.assign", Scope: sc.String(), Reason: opt.Reason, Detail: detail})
}

// Unassign removes a preset's assignment from a scope. A preset with
// locked rules cannot be unassigned.
func (s *Service) Unassign(ctx context.Context, actor, preset, scope string, opt ChangeOptions) (ChangeResult, error) {
	sc, err := policy.ParseScope(scope)
	if err != nil {
		return ChangeResult{}, errorf(err, "%v", err)
	}
	if sc.Kind == policy.ScopeMailbox && sc.MailboxID == 0 {
		if sc, err = s.ResolveScope(ctx, scope); err != nil {
			return ChangeResult{}, err
		}
	}
	if p := s.Policy().Preset(preset); p != nil && p.HasLocked() {
		return ChangeResult{}, errorf(ErrLocked, "%s has locked rules: its assignment cannot be removed (a locked rule can only be lengthened)", p.Ref())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.loadData(ctx)
	if err != nil {
		return ChangeResult{}, err
	}
	n := len(d.assigns)
	d.assigns = slices.DeleteFunc(d.assigns, func(x store.Assignment) bool { return x.Preset == preset && x.Scope == sc.Key() })
	if len(d.assigns) == n {
		return ChangeResult{}, errorf(store.ErrNotFound, "%s is not assigned to %s", preset, sc)
	}
	d.gen++
	res, err := s.change(ctx, opt, []policy.Scope{sc}, d.build(), func() error { return s.st.DeleteAssignment(ctx, preset, sc.Key()) })
	res.Scope, res.Preset = sc.String(), preset
	if err != nil || !res.Applied {
		return res, err
	}
	return res, s.audit(ctx, Event{Actor: actor, Action: "policy.unassign", Scope: sc.String(), Reason: opt.Reason,
		Detail: map[string]string{"preset": preset, "recomputed": strconv.Itoa(res.Recomputed)}})
}

// AssignmentInfo is an assignment as people read it.
type AssignmentInfo struct {
	Preset          string    `json:"preset"`
	Scope           string    `json:"scope"`
	Class           string    `json:"class,omitempty"`
	Zone            string    `json:"zone,omitempty"`
	FiscalYearStart string    `json:"fiscal_year_start,omitempty"`
	Created         time.Time `json:"created"`
	By              string    `json:"by,omitempty"`
	Reason          string    `json:"reason,omitempty"`
}

// Assignments lists the assignments.
func (s *Service) Assignments(ctx context.Context) ([]AssignmentInfo, error) {
	as, err := s.st.Assignments(ctx)
	if err != nil {
		return nil, err
	}
	var out []AssignmentInfo
	for _, a := range as {
		out = append(out, AssignmentInfo{Preset: a.Preset, Scope: s.displayScope(ctx, a.Scope), Class: a.Class, Zone: a.Zone,
			FiscalYearStart: a.FiscalYearStart, Created: a.Created, By: a.By, Reason: a.Reason})
	}
	return out, nil
}

// HoldRequest places a legal hold.
type HoldRequest struct {
	Scope  string
	Matter string
	Reason string
	// From and To, if not zero, limit the hold to mail that arrived in
	// [From, To).
	From, To time.Time
}

// HoldResult is a placed or released hold and what it changed.
type HoldResult struct {
	Hold       HoldInfo `json:"hold"`
	Recomputed int      `json:"recomputed"`
	// Due counts messages the release makes destroyable at the next
	// sweep.
	Due Impact `json:"due_at_next_sweep"`
}

// HoldInfo is a hold as people read it.
type HoldInfo struct {
	store.Hold
	ScopeText string `json:"scope_text"`
}

// PlaceHold places a legal hold. From the moment it returns, nothing the
// hold covers can be destroyed: the store knows every covered message
// held, the sweeper skips them, and an account the hold covers cannot be
// deleted.
func (s *Service) PlaceHold(ctx context.Context, actor string, r HoldRequest, progress func(Progress)) (HoldResult, error) {
	if strings.TrimSpace(r.Matter) == "" || strings.TrimSpace(r.Reason) == "" {
		return HoldResult{}, errorf(nil, "a hold needs a matter and a reason")
	}
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return HoldResult{}, errorf(nil, "--from must be before --to")
	}
	sc, err := s.ResolveScope(ctx, r.Scope)
	if err != nil {
		return HoldResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.st.AddHold(ctx, store.Hold{Matter: r.Matter, Reason: r.Reason, Scope: sc.Key(), From: r.From.UTC(), To: r.To.UTC(),
		Placed: s.now().UTC(), PlacedBy: actor})
	if err != nil {
		return HoldResult{}, err
	}
	res := HoldResult{Hold: HoldInfo{Hold: h, ScopeText: sc.String()}}
	// Audit first: the hold is in force (the store refuses to destroy
	// what its generation makes pending, and the walk marks the rest).
	detail := map[string]string{"matter": r.Matter, "scope": sc.String()}
	if !r.From.IsZero() {
		detail["from"] = r.From.UTC().Format(time.RFC3339)
	}
	if !r.To.IsZero() {
		detail["to"] = r.To.UTC().Format(time.RFC3339)
	}
	aerr := s.audit(ctx, Event{Actor: actor, Action: "hold.place", Scope: "hold:" + strconv.FormatUint(h.ID, 10), Reason: r.Reason, Detail: detail})
	if err := s.reload(ctx); err != nil {
		return res, err
	}
	n, err := s.walkScope(ctx, sc, progress)
	res.Recomputed = n
	if err != nil {
		return res, err
	}
	return res, aerr
}

// ReleaseHold releases a hold. What it alone kept becomes subject to its
// retention again: past its time, the next sweep destroys it.
func (s *Service) ReleaseHold(ctx context.Context, actor string, id uint64, reason string, progress func(Progress)) (HoldResult, error) {
	if strings.TrimSpace(reason) == "" {
		return HoldResult{}, errorf(nil, "releasing a hold needs a reason")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.st.ReleaseHold(ctx, id, s.now(), actor, reason)
	if errors.Is(err, store.ErrNotFound) {
		return HoldResult{}, errorf(err, "no hold %d", id)
	}
	if errors.Is(err, store.ErrExists) {
		return HoldResult{}, errorf(err, "hold %d is released already", id)
	}
	if err != nil {
		return HoldResult{}, err
	}
	sc, err := policy.ParseScope(h.Scope)
	if err != nil {
		sc = policy.Scope{Kind: policy.ScopeOrg}
	}
	res := HoldResult{Hold: HoldInfo{Hold: h, ScopeText: s.displayScope(ctx, h.Scope)}}
	aerr := s.audit(ctx, Event{Actor: actor, Action: "hold.release", Scope: "hold:" + strconv.FormatUint(id, 10), Reason: reason,
		Detail: map[string]string{"matter": h.Matter, "scope": res.Hold.ScopeText}})
	if err := s.reload(ctx); err != nil {
		return res, err
	}
	n, err := s.walkScope(ctx, sc, progress)
	res.Recomputed = n
	if err != nil {
		return res, err
	}
	due, err := s.dueIn(ctx, sc)
	res.Due = due
	if err != nil {
		return res, err
	}
	return res, aerr
}

// dueIn counts what the next sweep would destroy in a scope. The caller
// holds s.mu.
func (s *Service) dueIn(ctx context.Context, sc policy.Scope) (Impact, error) {
	var im Impact
	now := s.now()
	owners, err := s.owners(ctx, sc)
	if err != nil {
		return im, err
	}
	for _, o := range owners {
		var after uint64
		for {
			ms, err := s.st.Retained(ctx, o, after, batch)
			if errors.Is(err, store.ErrNotFound) {
				break
			}
			if err != nil {
				return im, err
			}
			if len(ms) == 0 {
				break
			}
			after = ms[len(ms)-1].ID
			for _, m := range ms {
				if sc.Kind == policy.ScopeMailbox && m.MailboxID != sc.MailboxID {
					continue
				}
				if dueNow(m.Retention, m.Vaulted, now) {
					im.add(ownerName(o), m.Retention.Class, m.SealedSize)
				}
			}
		}
	}
	return im, nil
}

// Holds lists every hold, released ones included.
func (s *Service) Holds(ctx context.Context) ([]HoldInfo, error) {
	hs, err := s.st.Holds(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]HoldInfo, 0, len(hs))
	for _, h := range hs {
		out = append(out, HoldInfo{Hold: h, ScopeText: s.displayScope(ctx, h.Scope)})
	}
	return out, nil
}

// MayDelete implements account.DeleteGuard: an account that a legal hold
// covers, wholly or in part, cannot be deleted (crypto-shredded).
func (s *Service) MayDelete(ctx context.Context, address string) error {
	s.mu.Lock() // a hold being placed is in force before this answers
	defer s.mu.Unlock()
	hs := s.Policy().HoldsOn(address)
	if len(hs) == 0 {
		return nil
	}
	var ids []string
	for _, h := range hs {
		ids = append(ids, fmt.Sprintf("%d (matter %s)", h.ID, h.Matter))
	}
	return fmt.Errorf("%w: %s is under legal hold %s; it cannot be deleted until the hold is released", ErrHeld, address, strings.Join(ids, ", "))
}

// RecordEvent records that an event happened for a scope, for rules that
// start at "event:NAME", and recomputes what it covers.
func (s *Service) RecordEvent(ctx context.Context, actor, name, scope string, at time.Time, reason string, progress func(Progress)) (ChangeResult, error) {
	if _, err := policy.ParseStart("event:" + name); err != nil {
		return ChangeResult{}, errorf(err, "%v", err)
	}
	sc, err := s.ResolveScope(ctx, scope)
	if err != nil {
		return ChangeResult{}, err
	}
	if at.IsZero() {
		at = s.now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recordEventLocked(ctx, actor, name, sc, at, reason, progress)
}

func (s *Service) recordEventLocked(ctx context.Context, actor, name string, sc policy.Scope, at time.Time, reason string, progress func(Progress)) (ChangeResult, error) {
	if err := s.st.PutRetentionEvent(ctx, store.RetentionEvent{Name: name, Scope: sc.Key(), At: at.UTC(), By: actor}); err != nil {
		return ChangeResult{}, err
	}
	if err := s.reload(ctx); err != nil {
		return ChangeResult{}, err
	}
	n, err := s.walkScope(ctx, sc, progress)
	res := ChangeResult{Applied: true, Recomputed: n, Scope: sc.String()}
	if err != nil {
		return res, err
	}
	return res, s.audit(ctx, Event{Actor: actor, Action: "retention.event", Scope: sc.String(), Reason: reason,
		Detail: map[string]string{"event": name, "at": at.UTC().Format(time.RFC3339), "recomputed": strconv.Itoa(n)}})
}
