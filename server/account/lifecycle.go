package account

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// Password rules. 12 characters is the shortest password sealmail accepts:
// a slot is only as strong as the password argon2id stretches. 1024 bytes
// bounds the work and memory one secret can cost.
const (
	MinPasswordChars = 12
	MaxPasswordBytes = maxCredentialBytes
)

// CheckPassword enforces the password rules with a message an operator
// can act on (wrapping ErrInvalid).
func CheckPassword(pw []byte) error {
	switch {
	case len(pw) == 0:
		return errorf(ErrInvalid, "the password is empty")
	case len(pw) > MaxPasswordBytes:
		return errorf(ErrInvalid, "the password is longer than %d bytes", MaxPasswordBytes)
	case !utf8.Valid(pw):
		return errorf(ErrInvalid, "the password is not valid UTF-8")
	case bytes.ContainsFunc(pw, unicode.IsControl):
		return errorf(ErrInvalid, "the password contains control characters")
	case utf8.RuneCount(pw) < MinPasswordChars:
		return errorf(ErrInvalid, "the password is too short: at least %d characters are needed", MinPasswordChars)
	}
	return nil
}

// CheckNewAddress canonicalises addr and checks that its domain is one of
// domains, with a message an operator can act on (wrapping ErrInvalid).
func CheckNewAddress(addr string, domains []string) (string, error) {
	c, err := canonical(addr)
	if err != nil {
		return "", err
	}
	_, domain, _ := policy.SplitAddress(c)
	if !slices.Contains(domains, domain) {
		return "", errorf(ErrInvalid, "domain %q is not configured (domains: %v)", domain, domains)
	}
	return c, nil
}

// canonical canonicalises an address given by the operator.
func canonical(addr string) (string, error) {
	c, err := policy.CanonicalAddress(addr)
	if err != nil {
		return "", errorf(ErrInvalid, "malformed address %q: %s", addr, addressProblem(err))
	}
	return c, nil
}

// addressProblem is what is wrong with an address, without the policy
// package's error prefixes.
func addressProblem(err error) string {
	msg := err.Error()
	for _, prefix := range []error{policy.ErrBadAddress, policy.ErrRouting} {
		msg = strings.TrimPrefix(msg, prefix.Error()+": ")
	}
	if msg == policy.ErrBadAddress.Error() {
		return "want local@domain"
	}
	return msg
}

// Info is what the service shows of an account.
type Info struct {
	Address     string
	Created     time.Time
	Fingerprint string
	Slots       []SlotInfo
	PublishWKD  bool
	Autocrypt   bool // outgoing mail carries an Autocrypt header
	UsedBytes   int64
	QuotaBytes  int64 // the setting: a limit, store.QuotaDefault or store.QuotaNone
	QuotaLimit  int64 // the limit in force, 0 for none
}

// SlotInfo describes one unlock slot, without its data.
type SlotInfo struct {
	ID      uint32
	Kind    store.SlotKind
	Label   string
	Created time.Time
}

func infoOf(a store.Account) Info {
	u := Info{
		Address: a.Address, Created: a.Created, Fingerprint: a.KeyFingerprint,
		PublishWKD: a.PublishWKD, Autocrypt: !a.AutocryptOff, UsedBytes: a.UsedBytes, QuotaBytes: a.QuotaBytes, QuotaLimit: a.QuotaLimit,
		Slots: make([]SlotInfo, 0, len(a.Slots)),
	}
	for _, s := range a.Slots {
		u.Slots = append(u.Slots, SlotInfo{ID: s.ID, Kind: s.Kind, Label: s.Label, Created: s.Created})
	}
	return u
}

// account loads an account by an operator-given address.
func (s *Service) account(ctx context.Context, addr string) (store.Account, error) {
	c, err := canonical(addr)
	if err != nil {
		return store.Account{}, err
	}
	acct, err := s.st.Account(ctx, c)
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, errorf(ErrNotFound, "no account %s", c)
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("account: load %s: %w", c, err)
	}
	return acct, nil
}

// Create makes an account: a key pair of Options.KeyType, a password
// slot, the default mailboxes, published in the WKD.
func (s *Service) Create(ctx context.Context, addr string, password []byte) (Info, error) {
	addr, err := CheckNewAddress(addr, s.domains)
	if err != nil {
		return Info{}, err
	}
	if err := CheckPassword(password); err != nil {
		return Info{}, err
	}
	unlock := s.locks.lock(addr)
	defer unlock()
	if _, err := s.st.Account(ctx, addr); err == nil {
		return Info{}, errorf(ErrExists, "account %s already exists", addr)
	} else if !errors.Is(err, store.ErrNotFound) {
		return Info{}, fmt.Errorf("account: look up %s: %w", addr, err)
	}
	sec, err := s.newAccount(ctx, addr, password)
	if err != nil {
		return Info{}, err
	}
	now := time.Now().UTC()
	a := store.Account{
		Address:        addr,
		Created:        now,
		KeyFingerprint: sec.Fingerprint,
		PublicKey:      sec.PublicKey,
		WrappedKey:     sec.WrappedKey,
		PublishWKD:     true,
		Slots:          []store.Slot{{Kind: store.SlotPassword, Created: now, Data: sec.Slot}},
	}
	err = s.st.CreateAccount(ctx, a, store.DefaultMailboxes)
	if errors.Is(err, store.ErrExists) {
		return Info{}, errorf(ErrExists, "account %s already exists", addr)
	}
	if err != nil {
		return Info{}, fmt.Errorf("account: create %s: %w", addr, err)
	}
	s.log.Info("account created", "account", addr)
	created, err := s.st.Account(ctx, addr)
	if err != nil {
		return Info{}, fmt.Errorf("account: reload %s: %w", addr, err)
	}
	return infoOf(created), s.audit(ctx, Event{Op: OpCreated, Account: addr})
}

// newAccount generates the keys under a place in the gate (key generation
// and the first slot's argon2id run).
func (s *Service) newAccount(ctx context.Context, addr string, password []byte) (sec *crypto.AccountSecrets, err error) {
	err = s.inGate(ctx, func() (err error) {
		sec, err = crypto.NewAccount(addr, password, crypto.AccountOptions{KeyType: s.keyType, KDF: s.kdf})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("account: make keys for %s: %w", addr, err)
	}
	return sec, nil
}

// List returns every account, ordered by address.
func (s *Service) List(ctx context.Context) ([]Info, error) {
	accts, err := s.st.Accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("account: list: %w", err)
	}
	out := make([]Info, 0, len(accts))
	for _, a := range accts {
		out = append(out, infoOf(a))
	}
	return out, nil
}

// Info returns one account.
func (s *Service) Info(ctx context.Context, addr string) (Info, error) {
	acct, err := s.account(ctx, addr)
	if err != nil {
		return Info{}, err
	}
	return infoOf(acct), nil
}

// PasswordChange says what ChangePassword did.
type PasswordChange struct {
	NewSlot      uint32
	RemovedSlots []uint32
	// EndedSessions is the number of live sessions that had logged in
	// with the old password and were ended.
	EndedSessions int
}

// ChangePassword unlocks with current (the password or a recovery code),
// adds a password slot for next, then removes the old password slots.
// Sessions that logged in with the old password end (their clients log in
// again with the new one); sessions of app passwords go on. The unlock
// cache forgets the account.
func (s *Service) ChangePassword(ctx context.Context, addr string, current, next []byte) (PasswordChange, error) {
	if err := CheckPassword(next); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return PasswordChange{}, errorf(ErrInvalid, "new password: %s", e.Msg)
		}
		return PasswordChange{}, err
	}
	acct, unlock, err := s.lockAccount(ctx, addr)
	if err != nil {
		return PasswordChange{}, err
	}
	defer unlock()
	addr = acct.Address
	kr, _, err := s.unlockManage(ctx, acct, current)
	if err != nil {
		return PasswordChange{}, err
	}
	defer kr.Wipe()
	var slot []byte
	err = s.inGate(ctx, func() (err error) {
		slot, err = kr.NewSlot(next, s.kdf)
		return err
	})
	if err != nil {
		return PasswordChange{}, fmt.Errorf("account: new slot for %s: %w", addr, err)
	}
	// Add first, then remove: a crash in between leaves both passwords
	// working, never none.
	id, err := s.st.AddSlot(ctx, addr, store.Slot{Kind: store.SlotPassword, Created: time.Now().UTC(), Data: slot})
	if err != nil {
		return PasswordChange{}, fmt.Errorf("account: add slot for %s: %w", addr, err)
	}
	res := PasswordChange{NewSlot: id}
	var removeErr error
	for _, sl := range acct.Slots {
		if sl.Kind != store.SlotPassword {
			continue
		}
		if err := s.st.RemoveSlot(ctx, addr, sl.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			removeErr = fmt.Errorf("account: remove old slot %d of %s: %w", sl.ID, addr, err)
			break
		}
		res.RemovedSlots = append(res.RemovedSlots, sl.ID)
	}
	res.EndedSessions = s.changed(addr, func(sess *Session) bool {
		return slices.Contains(res.RemovedSlots, sess.slot)
	}, ErrSlotRemoved)
	if removeErr != nil {
		return res, removeErr
	}
	s.log.Info(fmt.Sprintf("password changed; %d session(s) of the old password ended", res.EndedSessions), "account", addr)
	return res, s.audit(ctx, Event{Op: OpPasswordChanged, Account: addr, Slot: id, Kind: store.SlotPassword})
}

// inGate runs f (argon2id work) under a place in the gate.
func (s *Service) inGate(ctx context.Context, f func() error) error {
	if err := s.gate.acquire(ctx, true, 0); err != nil {
		return err
	}
	defer s.gate.release()
	return f()
}

// lockAccount locks an operator-given account against other changes and
// loads it under the lock. unlock must be called.
func (s *Service) lockAccount(ctx context.Context, addr string) (store.Account, func(), error) {
	c, err := canonical(addr)
	if err != nil {
		return store.Account{}, nil, err
	}
	unlock := s.locks.lock(c)
	acct, err := s.account(ctx, c)
	if err != nil {
		unlock()
		return store.Account{}, nil, err
	}
	return acct, unlock, nil
}

// NewSecret is a recovery code or app password just made: shown once,
// stored nowhere.
type NewSecret struct {
	Slot   uint32
	Secret string
}

// AddRecoveryCode unlocks with current (the password or a recovery code)
// and adds a recovery code slot. The code is returned once.
func (s *Service) AddRecoveryCode(ctx context.Context, addr string, current []byte) (NewSecret, error) {
	return s.addCode(ctx, addr, current, crypto.CodeRecovery, "")
}

// AddAppPassword unlocks with current (the password or a recovery code)
// and adds an app password slot labelled label (which device it is for).
// The app password is returned once; it logs in (IMAP now, POP3 and
// submission later) but cannot change the account.
func (s *Service) AddAppPassword(ctx context.Context, addr string, current []byte, label string) (NewSecret, error) {
	if err := checkLabel(label); err != nil {
		return NewSecret{}, err
	}
	return s.addCode(ctx, addr, current, crypto.CodeAppPassword, label)
}

// checkLabel keeps labels short, printable and one line.
func checkLabel(label string) error {
	switch {
	case strings.TrimSpace(label) == "":
		return errorf(ErrInvalid, "the label is empty; name the device or program the app password is for")
	case len(label) > maxLabelBytes:
		return errorf(ErrInvalid, "the label is longer than %d bytes", maxLabelBytes)
	case !utf8.ValidString(label) || strings.ContainsFunc(label, unicode.IsControl):
		return errorf(ErrInvalid, "the label must be printable text on one line")
	}
	return nil
}

// codeRetries bounds how often a new code is remade because its selector
// is taken (one in a million per existing code of the kind).
const codeRetries = 4

func (s *Service) addCode(ctx context.Context, addr string, current []byte, kind crypto.CodeKind, label string) (NewSecret, error) {
	acct, unlock, err := s.lockAccount(ctx, addr)
	if err != nil {
		return NewSecret{}, err
	}
	defer unlock()
	addr = acct.Address
	if len(acct.Slots) >= MaxSlots {
		return NewSecret{}, errorf(ErrTooManySlots, "%s already has %d unlock slots, the most an account may have; revoke one first (sealmail user slots, sealmail user revoke)", addr, len(acct.Slots))
	}
	kr, _, err := s.unlockManage(ctx, acct, current)
	if err != nil {
		return NewSecret{}, err
	}
	defer kr.Wipe()
	slotKind := codeKind(kind)
	taken := map[string]bool{}
	for _, sl := range acct.Slots {
		if sl.Kind != slotKind {
			continue
		}
		if sel, err := crypto.SlotSelector(sl.Data); err == nil {
			taken[sel] = true
		}
	}
	var code string
	var slot []byte
	for i := 0; ; i++ {
		err = s.inGate(ctx, func() (err error) {
			code, slot, err = kr.NewCode(kind, s.kdf)
			return err
		})
		if err != nil {
			return NewSecret{}, fmt.Errorf("account: new %v for %s: %w", kind, addr, err)
		}
		sel, err := crypto.SlotSelector(slot)
		if err != nil {
			return NewSecret{}, fmt.Errorf("account: new %v for %s: %w", kind, addr, err)
		}
		if !taken[sel] {
			break
		}
		if i == codeRetries {
			return NewSecret{}, fmt.Errorf("account: new %v for %s: selector taken %d times", kind, addr, codeRetries+1)
		}
	}
	id, err := s.st.AddSlot(ctx, addr, store.Slot{Kind: slotKind, Label: label, Created: time.Now().UTC(), Data: slot})
	if err != nil {
		return NewSecret{}, fmt.Errorf("account: add %v for %s: %w", kind, addr, err)
	}
	s.log.Info(fmt.Sprintf("%v added as unlock slot %d", kind, id), "account", addr)
	return NewSecret{Slot: id, Secret: code}, s.audit(ctx, Event{Op: OpSlotAdded, Account: addr, Slot: id, Kind: slotKind, Label: label})
}

// Slots lists an account's unlock slots.
func (s *Service) Slots(ctx context.Context, addr string) ([]SlotInfo, error) {
	acct, err := s.account(ctx, addr)
	if err != nil {
		return nil, err
	}
	return infoOf(acct).Slots, nil
}

// typeable reports whether a slot's secret can manage the account: the
// password and recovery codes, which a person knows or keeps on paper.
// App passwords live in devices and can only log in.
func typeable(k store.SlotKind) bool {
	return k == store.SlotPassword || k == store.SlotRecovery
}

// Revocation says what RevokeSlot did.
type Revocation struct {
	Slot SlotInfo
	// EndedSessions is the number of live sessions that had logged in
	// with the slot and were ended.
	EndedSessions int
	// NoPassword: the account has no password slot left (only recovery
	// codes, which do not log in, and app passwords) until the password is
	// set again with a recovery code.
	NoPassword bool
}

// RevokeSlot destroys one unlock slot. It needs no secret (destroying
// access gives none), but refuses to remove the last password or recovery
// code: without one, nobody could change the account again. Sessions that
// logged in with the slot end now; the unlock cache forgets the account.
func (s *Service) RevokeSlot(ctx context.Context, addr string, id uint32) (Revocation, error) {
	acct, unlock, err := s.lockAccount(ctx, addr)
	if err != nil {
		return Revocation{}, err
	}
	defer unlock()
	addr = acct.Address
	i := slices.IndexFunc(acct.Slots, func(sl store.Slot) bool { return sl.ID == id })
	if i < 0 {
		return Revocation{}, errorf(ErrNotFound, "%s has no unlock slot %d (sealmail user slots %s lists them)", addr, id, addr)
	}
	target := acct.Slots[i]
	passwords := 0
	for _, sl := range acct.Slots {
		if sl.ID != id && sl.Kind == store.SlotPassword {
			passwords++
		}
	}
	if typeable(target.Kind) {
		others := 0
		for _, sl := range acct.Slots {
			if sl.ID != id && typeable(sl.Kind) {
				others++
			}
		}
		if others == 0 {
			return Revocation{}, errorf(ErrLastSlot, "slot %d is the last password or recovery code of %s; without one nobody could change the account again (delete the account instead, or add a recovery code first)", id, addr)
		}
	}
	if err := s.st.RemoveSlot(ctx, addr, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Revocation{}, errorf(ErrNotFound, "%s has no unlock slot %d", addr, id)
		}
		return Revocation{}, fmt.Errorf("account: remove slot %d of %s: %w", id, addr, err)
	}
	ended := s.changed(addr, func(sess *Session) bool { return sess.slot == id }, ErrSlotRemoved)
	s.log.Info(fmt.Sprintf("unlock slot %d (%v) revoked; %d session(s) ended", id, target.Kind, ended), "account", addr)
	rev := Revocation{
		Slot:          SlotInfo{ID: id, Kind: target.Kind, Label: target.Label, Created: target.Created},
		EndedSessions: ended,
		NoPassword:    passwords == 0,
	}
	return rev, s.audit(ctx, Event{Op: OpSlotRevoked, Account: addr, Slot: id, Kind: target.Kind, Label: target.Label})
}

// Deletion says what Delete destroyed.
type Deletion struct {
	store.DeleteReport
	// EndedSessions is the number of live sessions that were ended.
	EndedSessions int
}

// Delete crypto-shreds an account: it asks the DeleteGuard, ends every
// live session (wiping its keys) and forgets the unlock cache, then lets
// the store destroy the slots and the wrapped key in one durable
// transaction and the rest after. Logins racing the delete cannot
// register a session.
func (s *Service) Delete(ctx context.Context, addr string) (Deletion, error) {
	acct, unlock, err := s.lockAccount(ctx, addr)
	if err != nil {
		return Deletion{}, err
	}
	defer unlock()
	addr = acct.Address
	if s.guard != nil {
		if err := s.guard.MayDelete(ctx, addr); err != nil {
			return Deletion{}, errorf(ErrRefused, "%s may not be deleted: %v", addr, err)
		}
	}
	all := func(*Session) bool { return true }
	ended := s.changed(addr, all, ErrAccountDeleted)
	rep, err := s.st.DeleteAccount(ctx, addr)
	// Again after the store: a login that read the account before it went
	// and finished meanwhile is ended too.
	ended += s.changed(addr, all, ErrAccountDeleted)
	if errors.Is(err, store.ErrNotFound) {
		return Deletion{}, errorf(ErrNotFound, "no account %s", addr)
	}
	if err != nil {
		return Deletion{}, fmt.Errorf("account: delete %s: %w", addr, err)
	}
	s.log.Info(fmt.Sprintf("account deleted; %d session(s) ended", ended), "account", addr)
	return Deletion{DeleteReport: rep, EndedSessions: ended}, s.audit(ctx, Event{Op: OpDeleted, Account: addr})
}

// SetPublishWKD sets whether the account's key is published in the Web
// Key Directory.
func (s *Service) SetPublishWKD(ctx context.Context, addr string, publish bool) error {
	c, err := canonical(addr)
	if err != nil {
		return err
	}
	err = s.st.SetPublishWKD(ctx, c, publish)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(ErrNotFound, "no account %s", c)
	}
	if err != nil {
		return fmt.Errorf("account: set wkd for %s: %w", c, err)
	}
	return s.audit(ctx, Event{Op: OpWKDChanged, Account: c, Publish: publish})
}

// SetAutocrypt sets whether the account's outgoing mail carries an
// Autocrypt header with its public key.
func (s *Service) SetAutocrypt(ctx context.Context, addr string, on bool) error {
	c, err := canonical(addr)
	if err != nil {
		return err
	}
	err = s.st.SetAutocrypt(ctx, c, on)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(ErrNotFound, "no account %s", c)
	}
	if err != nil {
		return fmt.Errorf("account: set autocrypt for %s: %w", c, err)
	}
	return s.audit(ctx, Event{Op: OpAutocryptChanged, Account: c, Publish: on})
}

// SetQuota sets the account's quota setting: a limit in sealed bytes,
// store.QuotaDefault (the server's limits.quota) or store.QuotaNone.
func (s *Service) SetQuota(ctx context.Context, addr string, setting int64) error {
	c, err := canonical(addr)
	if err != nil {
		return err
	}
	if setting < store.QuotaNone {
		return fmt.Errorf("account: quota setting %d: want a size, the default or none", setting)
	}
	err = s.st.SetQuota(ctx, c, setting)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(ErrNotFound, "no account %s", c)
	}
	if err != nil {
		return fmt.Errorf("account: set quota for %s: %w", c, err)
	}
	return s.audit(ctx, Event{Op: OpQuotaChanged, Account: c, Quota: setting})
}

// PublicKey returns the account's public key, ASCII-armored.
func (s *Service) PublicKey(ctx context.Context, addr string) ([]byte, error) {
	acct, err := s.account(ctx, addr)
	if err != nil {
		return nil, err
	}
	pk, err := crypto.ParsePublicKey(acct.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("account: parse public key of %s: %w", acct.Address, err)
	}
	armored, err := pk.Armored()
	if err != nil {
		return nil, fmt.Errorf("account: armor public key of %s: %w", acct.Address, err)
	}
	return armored, nil
}

// ExportSecretKey unlocks with password (or a recovery code) and returns
// the secret key, ASCII-armored and protected by that same secret.
func (s *Service) ExportSecretKey(ctx context.Context, addr string, password []byte) ([]byte, error) {
	acct, err := s.account(ctx, addr)
	if err != nil {
		return nil, err
	}
	kr, _, err := s.unlockManage(ctx, acct, password)
	if err != nil {
		return nil, err
	}
	defer kr.Wipe()
	armored, err := kr.ExportSecretKey(password)
	if err != nil {
		return nil, fmt.Errorf("account: export secret key of %s: %w", acct.Address, err)
	}
	s.log.Info("secret key exported", "account", acct.Address)
	return armored, s.audit(ctx, Event{Op: OpSecretExported, Account: acct.Address})
}
