package retention

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// Store returns the store the protocols and the account service use: the
// service's store, with retention applied on the way. Deliveries are
// stamped with their computed retention (class from Delivery.Retention's
// Origin if the caller decided one, else default; arrival now); moves,
// copies and restores have their new state computed soon after; what a
// user's removal sent to the vault is audited; an account's deletion
// records the "account-closed" event for the vault it leaves. The store
// itself refuses to destroy protected mail, so nothing here is needed
// for safety: it keeps states current and acts visible.
func (s *Service) Store() store.Store { return &wrapped{Store: s.st, s: s} }

type wrapped struct {
	store.Store
	s *Service
}

// Deliver stamps each delivery that has no computed state.
func (w *wrapped) Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error) {
	pol := w.s.Policy()
	now := w.s.now().UTC()
	out := make([]store.Delivery, len(ds))
	for i, d := range ds {
		if d.Retention == nil || d.Retention.Pending {
			origin := ""
			if d.Retention != nil {
				origin = d.Retention.Origin
			}
			sub := policy.Subject{Address: d.Account, Arrival: now, Origin: origin}
			if d.MailboxID != 0 {
				if mb, err := w.Store.MailboxByID(ctx, d.Account, d.MailboxID); err == nil {
					sub.MailboxID, sub.SpecialUse = mb.ID, mb.SpecialUse
				}
			} else if pol.HasMailboxScopes(d.Account) {
				if mb, err := w.Store.Mailbox(ctx, d.Account, store.Inbox); err == nil {
					sub.MailboxID = mb.ID
				}
			}
			st := pol.Decide(sub).Stamp(sub, pol.Gen)
			d.Retention = &st
		}
		out[i] = d
	}
	w.s.delivered.Add(1)
	return w.Store.Deliver(ctx, out)
}

// Expunge implements store.Store through ExpungeReport.
func (w *wrapped) Expunge(ctx context.Context, address string, mailbox uint64, uids []uint32) (store.ExpungeResult, error) {
	removed, _, err := w.ExpungeReport(ctx, address, mailbox, uids)
	return removed, err
}

// ExpungeReport audits what went to the vault.
func (w *wrapped) ExpungeReport(ctx context.Context, address string, mailbox uint64, uids []uint32) (store.ExpungeResult, []uint32, error) {
	removed, vaulted, err := w.Store.ExpungeReport(ctx, address, mailbox, uids)
	if err == nil && len(vaulted) > 0 {
		w.auditVault(ctx, address, mailbox, "expunge", vaulted)
	}
	return removed, vaulted, err
}

// auditVault records a user's removal that the vault caught. The store
// has committed it: an audit failure is logged, not returned to the
// protocol (whose client did nothing wrong).
func (w *wrapped) auditVault(ctx context.Context, address string, mailbox uint64, how string, uids []uint32) {
	scope := fmt.Sprintf("mailbox:%s#%d", address, mailbox)
	if mb, err := w.Store.MailboxByID(ctx, address, mailbox); err == nil {
		scope = "mailbox:" + address + "/" + mb.Name
	}
	list := make([]string, 0, min(len(uids), 50))
	for _, u := range uids[:min(len(uids), 50)] {
		list = append(list, strconv.FormatUint(uint64(u), 10))
	}
	detail := map[string]string{"messages": strconv.Itoa(len(uids)), "uids": strings.Join(list, ",")}
	if len(uids) > 50 {
		detail["uids"] += ",…"
	}
	_ = w.s.audit(ctx, Event{Actor: "user:" + address, Action: "vault.move", Scope: scope, Reason: how, Detail: detail})
}

// MoveMessages has the moved messages' new state computed soon.
func (w *wrapped) MoveMessages(ctx context.Context, address string, src, dst uint64, uids []uint32) (store.CopyResult, error) {
	res, err := w.Store.MoveMessages(ctx, address, src, dst, uids)
	if err == nil && len(res.Pairs) > 0 {
		w.s.kickSettle()
	}
	return res, err
}

// CopyMessages has the copies' state computed soon.
func (w *wrapped) CopyMessages(ctx context.Context, address string, src, dst uint64, uids []uint32) (store.CopyResult, error) {
	res, err := w.Store.CopyMessages(ctx, address, src, dst, uids)
	if err == nil && len(res.Pairs) > 0 {
		w.s.kickSettle()
	}
	return res, err
}

// DeleteMailbox audits what the deletion sent to the vault.
func (w *wrapped) DeleteMailbox(ctx context.Context, address string, id uint64) error {
	name := ""
	if mb, err := w.Store.MailboxByID(ctx, address, id); err == nil {
		name = mb.Name
	}
	before, _ := w.vaultFrom(ctx, address, id)
	if err := w.Store.DeleteMailbox(ctx, address, id); err != nil {
		return err
	}
	after, err := w.vaultFrom(ctx, address, id)
	if err == nil && after > before {
		_ = w.s.audit(ctx, Event{Actor: "user:" + address, Action: "vault.move", Scope: "mailbox:" + address + "/" + name,
			Reason: "mailbox deleted", Detail: map[string]string{"messages": strconv.Itoa(after - before)}})
	}
	return nil
}

// vaultFrom counts the vault entries of address that came from mailbox.
func (w *wrapped) vaultFrom(ctx context.Context, address string, mailbox uint64) (int, error) {
	es, err := w.Store.Vault(ctx, store.Owner{Address: address})
	n := 0
	for _, e := range es {
		if e.MailboxID == mailbox {
			n++
		}
	}
	return n, err
}

// DeleteAccount records the account-closed event, so that rules counting
// from it start for the vault the account leaves.
func (w *wrapped) DeleteAccount(ctx context.Context, address string) (store.DeleteReport, error) {
	before := map[uint64]bool{}
	if fs, err := w.Store.FormerAccounts(ctx); err == nil {
		for _, f := range fs {
			before[f.Former] = true
		}
	}
	rep, err := w.Store.DeleteAccount(ctx, address)
	if err != nil {
		return rep, err
	}
	s := w.s
	sc := policy.Scope{Kind: policy.ScopeUser, Address: address}
	s.mu.Lock()
	_, eerr := s.recordEventLocked(ctx, actorSystem, policy.EventAccountClosed, sc, s.now(), "account deleted", nil)
	s.mu.Unlock()
	if eerr != nil {
		s.log.Error("retention: record account-closed", "account", address, "err", eerr)
	}
	fs, err := w.Store.FormerAccounts(ctx)
	if err != nil {
		return rep, nil
	}
	for _, f := range fs {
		if before[f.Former] || f.Address != address {
			continue
		}
		if es, err := w.Store.Vault(ctx, f.Owner); err == nil {
			_ = s.audit(ctx, Event{Actor: actorSystem, Action: "vault.move", Scope: "user:" + address, Reason: "account deleted",
				Detail: map[string]string{"messages": strconv.Itoa(len(es)), "deleted_account": strconv.FormatUint(f.Former, 10)}})
		}
	}
	return rep, nil
}
