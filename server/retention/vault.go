package retention

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// VaultItem is one message in a retention vault.
type VaultItem struct {
	store.VaultEntry
	Account string `json:"account"`
	// Former is set for the vault of a deleted account (its mail can be
	// opened only through escrow, if any).
	Former  uint64    `json:"deleted_account,omitempty"`
	Deleted time.Time `json:"account_deleted,omitzero"`
	// DueAt is when the sweeper destroys it: zero while a hold or an
	// unfinished event keeps it.
	DueAt time.Time `json:"due_at,omitzero"`
}

// Vault lists the retention vault of address and of the deleted accounts
// that had that address.
func (s *Service) Vault(ctx context.Context, address string) ([]VaultItem, error) {
	addr, err := policy.CanonicalAddress(address)
	if err != nil {
		return nil, errorf(err, "%v", err)
	}
	owners, err := s.owners(ctx, policy.Scope{Kind: policy.ScopeUser, Address: addr})
	if err != nil {
		return nil, err
	}
	if len(owners) == 0 {
		return nil, errorf(store.ErrNotFound, "no account %s (nor a vault it left)", addr)
	}
	deleted := map[uint64]time.Time{}
	fs, err := s.st.FormerAccounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		deleted[f.Former] = f.Deleted
	}
	var out []VaultItem
	for _, o := range owners {
		es, err := s.st.Vault(ctx, o)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			it := VaultItem{VaultEntry: e, Account: addr, Former: o.Former, Deleted: deleted[o.Former]}
			if !e.Retention.Held && !e.Retention.Pending && !e.Retention.KeepUntil.Equal(store.Forever) {
				it.DueAt = e.Retention.KeepUntil
				if it.DueAt.IsZero() {
					it.DueAt = e.Vaulted
				}
			}
			out = append(out, it)
		}
	}
	return out, nil
}

// Restore moves a vault entry of a live account back into a mailbox (its
// own if it still exists, else INBOX, unless mailbox names one).
func (s *Service) Restore(ctx context.Context, actor, address string, id uint64, mailbox string) (store.Delivered, error) {
	addr, err := policy.CanonicalAddress(address)
	if err != nil {
		return store.Delivered{}, errorf(err, "%v", err)
	}
	var target uint64
	if mailbox != "" {
		mb, err := s.st.Mailbox(ctx, addr, canonicalMailbox(mailbox))
		if err != nil {
			return store.Delivered{}, errorf(err, "%s has no mailbox %q", addr, mailbox)
		}
		target = mb.ID
	}
	d, err := s.st.RestoreFromVault(ctx, addr, id, target)
	if errors.Is(err, store.ErrNotFound) {
		return d, errorf(err, "%s has no vault entry %d (a deleted account's vault cannot be restored)", addr, id)
	}
	if err != nil {
		return d, err
	}
	s.kickSettle()
	return d, s.audit(ctx, Event{Actor: actor, Action: "vault.restore", Scope: "user:" + addr,
		Detail: map[string]string{"id": strconv.FormatUint(id, 10), "mailbox": d.Mailbox, "uid": strconv.FormatUint(uint64(d.UID), 10)}})
}
