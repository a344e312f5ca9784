package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// purpose says which secrets an unlock accepts.
type purpose int

const (
	// forLogin: a protocol login (IMAP, POP3, submission) accepts the
	// password and app passwords. Recovery codes are for regaining the
	// account, not for daily use: they do not log in.
	forLogin purpose = iota
	// forManage: changing the account (password, recovery codes, app
	// passwords, secret key export) accepts the password and recovery
	// codes. App passwords live in devices and cannot manage the account.
	forManage
)

// accepts reports whether p unlocks slots of kind k.
func (p purpose) accepts(k store.SlotKind) bool {
	switch k {
	case store.SlotPassword:
		return true
	case store.SlotAppPassword:
		return p == forLogin
	case store.SlotRecovery:
		return p == forManage
	}
	return false
}

// codeKind is the slot kind a code of kind k is made for.
func codeKind(k crypto.CodeKind) store.SlotKind {
	if k == crypto.CodeRecovery {
		return store.SlotRecovery
	}
	return store.SlotAppPassword
}

// maxLoginDerivations is the most argon2id runs one unlock attempt can
// cost: every password slot (one, or two or three if a password change
// was interrupted by a crash) plus one slot a code names. Codes name
// their slot, so the number of recovery codes and app passwords does not
// count.
const maxLoginDerivations = 4

// attempt is one candidate: a slot and the form of the secret to try on
// it.
type attempt struct {
	slot   store.Slot
	secret []byte
}

// plan lists the slots that secret may open for p, in the order to try
// them, and how many burnt derivations make its cost what it would be had
// the code (if it is one) named an existing slot. code must be wiped.
func plan(acct store.Account, secret []byte, p purpose) (tries []attempt, burns int, code crypto.Code, isCode bool) {
	code, isCode = crypto.ParseCode(secret)
	if isCode && !p.accepts(codeKind(code.Kind)) {
		isCode = false
	}
	if isCode {
		kind := codeKind(code.Kind)
		for _, sl := range acct.Slots {
			if sl.Kind != kind {
				continue
			}
			if sel, err := crypto.SlotSelector(sl.Data); err == nil && sel == code.Selector {
				tries = append(tries, attempt{sl, code.Secret})
			}
		}
		if len(tries) == 0 {
			burns = 1
		}
	}
	for _, sl := range acct.Slots {
		if sl.Kind == store.SlotPassword {
			tries = append(tries, attempt{sl, secret})
		}
	}
	return tries, burns, code, isCode
}

// secretForms returns, per slot kind, the form of secret that slots (and
// cache entries) of that kind were made from; nil where p does not accept
// the kind or secret is not of its shape.
func secretForms(secret []byte, code crypto.Code, isCode bool, p purpose) func(store.SlotKind) []byte {
	return func(k store.SlotKind) []byte {
		if !p.accepts(k) {
			return nil
		}
		if k == store.SlotPassword {
			return secret
		}
		if isCode && codeKind(code.Kind) == k {
			return code.Secret
		}
		return nil
	}
}

// burnFor is how many derivations a login for an unknown account burns:
// what a one-password account with the code's slot costs.
func burnFor(secret []byte, p purpose) int {
	code, ok := crypto.ParseCode(secret)
	if !ok {
		return 1
	}
	defer code.Wipe()
	if p.accepts(codeKind(code.Kind)) {
		return 2
	}
	return 1
}

// unlockSlots runs the planned attempts and burns under one place in the
// gate, that of login attempt tk (nil: a change by the operator, which
// goes first). It returns the keyring and the slot that opened, or an
// error wrapping crypto.ErrBadPassword.
func (s *Service) unlockSlots(ctx context.Context, acct store.Account, tries []attempt, burns int, tk *ticket) (*crypto.Keyring, store.Slot, error) {
	if len(tries) > maxLoginDerivations {
		// More password slots than the service ever leaves: try the
		// newest first and no more than the failure delay covers.
		tries = tries[len(tries)-maxLoginDerivations:]
	}
	if err := s.acquireGate(ctx, tk); err != nil {
		return nil, store.Slot{}, err
	}
	defer s.gate.release()
	for i := 0; i < burns; i++ {
		s.derivations.Add(1)
		crypto.BurnUnlock([]byte(acct.Address), s.kdf)
	}
	for _, a := range tries {
		s.derivations.Add(1)
		kr, err := crypto.UnlockSlot(a.slot.Data, a.secret, acct.WrappedKey)
		if err == nil {
			s.metrics.Unlock(false)
			return kr, a.slot, nil
		}
		if !errors.Is(err, crypto.ErrBadPassword) {
			return nil, store.Slot{}, fmt.Errorf("account: unlock slot %d of %s: %w", a.slot.ID, acct.Address, err)
		}
	}
	return nil, store.Slot{}, crypto.ErrBadPassword
}

// acquireGate takes a place in the gate for login attempt tk (nil: an
// operator's change) and marks the attempt as checking a secret.
func (s *Service) acquireGate(ctx context.Context, tk *ticket) error {
	if tk == nil {
		return s.gate.acquire(ctx, true, 0)
	}
	if err := s.gate.acquire(ctx, tk.trusted, tk.score); err != nil {
		return err
	}
	tk.checked = true
	return nil
}

// burn spends the time of n failed derivations under a place in the
// gate, that of login attempt tk.
func (s *Service) burn(ctx context.Context, secret []byte, n int, tk *ticket) error {
	if err := s.acquireGate(ctx, tk); err != nil {
		return err
	}
	defer s.gate.release()
	for i := 0; i < n; i++ {
		s.derivations.Add(1)
		crypto.BurnUnlock(secret, s.kdf)
	}
	return nil
}

// unlockManage opens acct with a password or recovery code for a change
// of the account. Changes come from the operator (the CLI), so they are
// not throttled, but they take their place in the gate like logins.
func (s *Service) unlockManage(ctx context.Context, acct store.Account, secret []byte) (*crypto.Keyring, store.Slot, error) {
	tries, burns, code, _ := plan(acct, secret, forManage)
	defer code.Wipe()
	kr, slot, err := s.unlockSlots(ctx, acct, tries, burns, nil)
	if errors.Is(err, crypto.ErrBadPassword) {
		return nil, store.Slot{}, &Error{Kind: ErrBadCredentials,
			Msg: fmt.Sprintf("wrong password or recovery code for %s (%s)", acct.Address, noResetHint)}
	}
	if err != nil {
		return nil, store.Slot{}, err
	}
	return kr, slot, nil
}
