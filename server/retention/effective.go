package retention

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// EffectiveReport says what applies to an account, a mailbox or one
// message, and why.
type EffectiveReport struct {
	Account      string           `json:"account"`
	Mailbox      string           `json:"mailbox,omitempty"`
	MailboxID    uint64           `json:"mailbox_id,omitempty"`
	MailboxClass string           `json:"mailbox_class,omitempty"`
	Assignments  []AssignmentInfo `json:"assignments"`
	Holds        []HoldInfo       `json:"holds"`
	// Classes shows, per class, what a message of that class arriving
	// now would get.
	Classes []ClassEffect `json:"classes,omitempty"`
	// Message is the one message asked about.
	Message *MessageEffect `json:"message,omitempty"`
	Gen     uint64         `json:"policy_generation"`
}

// ClassEffect is the effective retention of one class.
type ClassEffect struct {
	Class       string        `json:"class"`
	KeepUntil   time.Time     `json:"keep_until,omitzero"`
	DeleteAfter time.Time     `json:"delete_after,omitzero"`
	Locked      bool          `json:"locked,omitempty"`
	Conflict    bool          `json:"conflict,omitempty"`
	Rules       []AppliedRule `json:"rules,omitempty"`
}

// AppliedRule is one rule that applied, and through which assignment.
type AppliedRule struct {
	Preset     string    `json:"preset"`
	Scope      string    `json:"via"`
	Rule       RuleInfo  `json:"rule"`
	ForOrigin  bool      `json:"for_origin_class,omitempty"`
	KeepUntil  time.Time `json:"keep_until,omitzero"`
	DeleteAt   time.Time `json:"delete_at,omitzero"`
	DecidesMin bool      `json:"decides_min,omitempty"`
	DecidesMax bool      `json:"decides_max,omitempty"`
}

// MessageEffect is one message's stored state next to what the policy in
// force decides now.
type MessageEffect struct {
	UID        uint32          `json:"uid"`
	ID         uint64          `json:"id"`
	Stored     store.Retention `json:"stored"`
	Decided    ClassEffect     `json:"decided"`
	Held       bool            `json:"held"`
	Holds      []uint64        `json:"holds,omitempty"`
	UpToDate   bool            `json:"up_to_date"`
	SealedSize int64           `json:"sealed_size"`
}

// Effective explains what applies to address (and a mailbox of it, and
// one message in that mailbox by UID when uid is not 0).
func (s *Service) Effective(ctx context.Context, address, mailbox string, uid uint32) (EffectiveReport, error) {
	addr, err := policy.CanonicalAddress(address)
	if err != nil {
		return EffectiveReport{}, errorf(err, "%v", err)
	}
	if _, err := s.st.PublicAccount(ctx, addr); errors.Is(err, store.ErrNotFound) {
		return EffectiveReport{}, errorf(err, "no account %s", addr)
	} else if err != nil {
		return EffectiveReport{}, err
	}
	pol := s.Policy()
	rep := EffectiveReport{Account: addr, Gen: pol.Gen}
	var mb store.Mailbox
	if mailbox != "" {
		mb, err = s.st.Mailbox(ctx, addr, canonicalMailbox(mailbox))
		if errors.Is(err, store.ErrNotFound) {
			return rep, errorf(err, "%s has no mailbox %q", addr, mailbox)
		}
		if err != nil {
			return rep, err
		}
		rep.Mailbox, rep.MailboxID = mb.Name, mb.ID
		rep.MailboxClass = pol.MailboxClass(addr, mb.ID)
	} else if mb, err = s.st.Mailbox(ctx, addr, store.Inbox); err != nil {
		return rep, err
	}
	raw, err := s.st.Assignments(ctx)
	if err != nil {
		return rep, err
	}
	for _, a := range raw {
		sc, err := policy.ParseScope(a.Scope)
		if err != nil {
			continue
		}
		covers := sc.Covers(addr, mb.ID)
		if mailbox == "" && sc.Kind == policy.ScopeMailbox {
			covers = sc.Address == addr // every mailbox of the account
		}
		if covers {
			rep.Assignments = append(rep.Assignments, AssignmentInfo{Preset: a.Preset, Scope: s.displayScope(ctx, a.Scope), Class: a.Class,
				Zone: a.Zone, FiscalYearStart: a.FiscalYearStart, Created: a.Created, By: a.By, Reason: a.Reason})
		}
	}
	hs, err := s.Holds(ctx)
	if err != nil {
		return rep, err
	}
	for _, h := range hs {
		sc, err := policy.ParseScope(h.Scope)
		if err != nil || !h.Active() {
			continue
		}
		if sc.CoversAccount(addr) && (mailbox == "" || sc.Kind != policy.ScopeMailbox || sc.MailboxID == mb.ID) {
			rep.Holds = append(rep.Holds, h)
		}
	}
	now := s.now()
	if uid == 0 {
		id, su := mb.ID, mb.SpecialUse
		if mailbox == "" {
			id, su = 0, "" // the account as a whole: no mailbox's own assignment
		}
		for _, c := range policy.Classes() {
			sub := policy.Subject{Address: addr, MailboxID: id, SpecialUse: su, Arrival: now, Origin: c.ID}
			d := pol.Decide(sub)
			if mailbox != "" && d.Class != c.ID {
				continue // the mailbox gives every message its own class: shown once
			}
			rep.Classes = append(rep.Classes, classEffect(s, ctx, d))
		}
		return rep, nil
	}
	if mailbox == "" {
		return rep, errorf(nil, "a UID needs a mailbox")
	}
	rs, err := s.st.RetainedByUID(ctx, addr, mb.ID, []uint32{uid})
	if err != nil {
		return rep, err
	}
	if len(rs) == 0 {
		return rep, errorf(store.ErrNotFound, "%s %s has no message with UID %d", addr, mb.Name, uid)
	}
	m := rs[0]
	sub := policy.Subject{Address: addr, MailboxID: mb.ID, SpecialUse: mb.SpecialUse, Arrival: m.Retention.Arrival, Origin: m.Retention.Origin}
	d := pol.Decide(sub)
	st := d.Stamp(sub, pol.Gen)
	rep.Message = &MessageEffect{UID: uid, ID: m.ID, Stored: m.Retention, Decided: classEffect(s, ctx, d), Held: d.Held, Holds: d.Holds,
		UpToDate: !m.Retention.Pending && sameState(m.Retention, st), SealedSize: m.SealedSize}
	return rep, nil
}

func classEffect(s *Service, ctx context.Context, d policy.Decision) ClassEffect {
	ce := ClassEffect{Class: d.Class, KeepUntil: d.KeepUntil, DeleteAfter: d.DeleteAfter, Locked: d.Locked, Conflict: d.Conflict}
	for _, a := range d.Applied {
		ce.Rules = append(ce.Rules, AppliedRule{Preset: a.Preset, Scope: s.displayScope(ctx, a.Scope), Rule: ruleInfo(a.Rule), ForOrigin: a.ForOrigin,
			KeepUntil: a.KeepUntil, DeleteAt: a.DeleteAt, DecidesMin: a.UsedForMin, DecidesMax: a.UsedForMax})
	}
	return ce
}

// canonicalMailbox spells INBOX the one way the store knows it.
func canonicalMailbox(name string) string {
	if strings.EqualFold(name, store.Inbox) {
		return store.Inbox
	}
	return name
}
