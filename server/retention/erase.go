package retention

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// EraseReport says what an erasure destroyed and what it kept, on which
// legal basis.
type EraseReport struct {
	Account        string             `json:"account"`
	Destroyed      int                `json:"destroyed"`
	DestroyedBytes int64              `json:"destroyed_bytes"`
	Restricted     int                `json:"restricted"`
	Kept           []KeptItem         `json:"kept,omitempty"`
	Bases          []BasisCount       `json:"bases,omitempty"`
	Purge          *store.PurgeReport `json:"purge,omitempty"`
}

// KeptItem is one message an erasure kept, and why.
type KeptItem struct {
	ID         uint64    `json:"id"`
	Former     uint64    `json:"deleted_account,omitempty"`
	Mailbox    string    `json:"mailbox,omitempty"`
	UID        uint32    `json:"uid,omitempty"`
	Class      string    `json:"class"`
	Basis      string    `json:"basis"`
	Until      time.Time `json:"until,omitzero"`
	SealedSize int64     `json:"sealed_size"`
}

// BasisCount counts the kept messages of one legal basis.
type BasisCount struct {
	Basis    string `json:"basis"`
	Messages int    `json:"messages"`
}

// Erase carries out a GDPR Art. 17 erasure of an account's mail (and of
// the vaults its deleted predecessors at that address left): every
// message no obligation keeps is destroyed; every other one is
// restricted (Art. 18): moved out of the user's mailboxes into the
// vault, with its legal basis recorded in the vault entry (Art. 17(3)(b)
// for a retention obligation, (e) for a legal hold). It does not delete
// the account: `sealmail user delete` does.
func (s *Service) Erase(ctx context.Context, actor, address, reason string, progress func(Progress)) (EraseReport, error) {
	addr, err := policy.CanonicalAddress(address)
	if err != nil {
		return EraseReport{}, errorf(err, "%v", err)
	}
	rep := EraseReport{Account: addr}
	if _, err := s.Settle(ctx); err != nil {
		return rep, err
	}
	owners, err := s.owners(ctx, policy.Scope{Kind: policy.ScopeUser, Address: addr})
	if err != nil {
		return rep, err
	}
	if len(owners) == 0 {
		return rep, errorf(store.ErrNotFound, "no account %s (nor a vault it left)", addr)
	}
	bases := map[string]int{}
	var im Impact
	for _, o := range owners {
		if err := s.eraseOwner(ctx, actor, o, &rep, bases, &im, progress); err != nil {
			return rep, err
		}
	}
	rep.Destroyed, rep.DestroyedBytes = im.Messages, im.Bytes
	for b, n := range bases {
		rep.Bases = append(rep.Bases, BasisCount{Basis: b, Messages: n})
	}
	sort.Slice(rep.Bases, func(i, j int) bool { return rep.Bases[i].Basis < rep.Bases[j].Basis })
	if im.Messages > 0 {
		if p, ok := s.st.(store.Purger); ok {
			pr, err := p.Purge(ctx)
			if err != nil {
				return rep, fmt.Errorf("retention: purge after the erasure: %w", err)
			}
			rep.Purge = &pr
		}
	}
	detail := map[string]string{"destroyed": strconv.Itoa(rep.Destroyed), "destroyed_bytes": strconv.FormatInt(rep.DestroyedBytes, 10),
		"kept": strconv.Itoa(len(rep.Kept)), "restricted_now": strconv.Itoa(rep.Restricted)}
	for i, b := range rep.Bases {
		detail["basis_"+strconv.Itoa(i+1)] = clipText(fmt.Sprintf("%d: %s", b.Messages, b.Basis), 512)
	}
	return rep, s.audit(ctx, Event{Actor: actor, Action: "compliance.erase", Scope: "user:" + addr, Reason: reason, Detail: detail})
}

// eraseOwner erases one owner's mail. It takes s.mu per batch.
func (s *Service) eraseOwner(ctx context.Context, actor string, o store.Owner, rep *EraseReport, bases map[string]int, im *Impact, progress func(Progress)) error {
	pol := s.Policy()
	now := s.now()
	w := newWalker(s, o)
	names := map[uint64]string{}
	if o.Former == 0 {
		mbs, err := s.st.Mailboxes(ctx, o.Address)
		if err != nil {
			return err
		}
		for _, mb := range mbs {
			names[mb.ID] = mb.Name
		}
	}
	var after uint64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ms, err := s.st.Retained(ctx, o, after, batch)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			return nil
		}
		after = ms[len(ms)-1].ID
		var destroy []uint64
		type key struct {
			mbox  uint64
			basis string
		}
		restrictLive := map[key][]uint32{}
		restrictVault := map[string][]uint64{}
		for _, m := range ms {
			basis, until := "", time.Time{}
			switch {
			case m.Retention.Pending:
				basis = "retention state still being computed; erase again to decide"
			case m.Retention.Held:
				sub, err := w.subject(ctx, m)
				if err != nil {
					return err
				}
				basis = "GDPR Art. 17(3)(e): legal claims — " + s.holdText(ctx, pol.Decide(sub).Holds)
			case m.Retention.KeepUntil.After(now):
				until = m.Retention.KeepUntil
				basis = "GDPR Art. 17(3)(b): legal obligation — " + clipText(minRule(m.Retention.Rule), 300)
			}
			if basis == "" {
				destroy = append(destroy, m.ID)
				continue
			}
			bases[basis]++
			k := KeptItem{ID: m.ID, Former: o.Former, Class: classOrDefault(m.Retention.Class), Basis: basis, Until: until, SealedSize: m.SealedSize}
			if !m.Vaulted {
				k.Mailbox, k.UID = names[m.MailboxID], m.UID
				restrictLive[key{m.MailboxID, basis}] = append(restrictLive[key{m.MailboxID, basis}], m.UID)
			} else {
				restrictVault[basis] = append(restrictVault[basis], m.ID)
			}
			rep.Kept = append(rep.Kept, k)
		}
		s.mu.Lock()
		err = func() error {
			for k, uids := range restrictLive {
				moved, err := s.st.VaultMessages(ctx, o.Address, k.mbox, uids, "erasure restricted it (GDPR Art. 18); "+k.basis)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				rep.Restricted += len(moved)
			}
			for basis, ids := range restrictVault {
				if err := s.st.SetVaultReason(ctx, o, ids, "erasure kept it; "+basis); err != nil {
					return err
				}
			}
			if len(destroy) == 0 {
				return nil
			}
			refs := make([]store.MessageRef, len(destroy))
			for i, id := range destroy {
				refs[i] = store.MessageRef{Owner: o, ID: id}
			}
			ds, err := s.st.DestroyMessages(ctx, refs, store.DestroyOptions{Now: now})
			if err != nil {
				return err
			}
			if len(ds) > 0 {
				s.destroyed(ctx, actor, "compliance.erase.destroy", o, ds, "erasure (GDPR Art. 17)", im)
			}
			return nil
		}()
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if progress != nil {
			progress(Progress{Phase: "erasing", Done: im.Messages + len(rep.Kept)})
		}
	}
}

// minRule picks the minimum's part of a stored rule text.
func minRule(rule string) string {
	for _, part := range strings.Split(rule, "; ") {
		if strings.HasPrefix(part, "min ") || strings.HasPrefix(part, "min+max ") {
			return part
		}
	}
	if rule == "" {
		return "a locked or earlier retention period"
	}
	return rule
}

func (s *Service) holdText(ctx context.Context, ids []uint64) string {
	if len(ids) == 0 {
		return "a legal hold"
	}
	hs, err := s.st.Holds(ctx)
	if err != nil {
		return fmt.Sprintf("hold %v", ids)
	}
	var parts []string
	for _, id := range ids {
		for _, h := range hs {
			if h.ID == id {
				parts = append(parts, fmt.Sprintf("hold %d (matter %s)", h.ID, h.Matter))
			}
		}
	}
	return strings.Join(parts, ", ")
}
