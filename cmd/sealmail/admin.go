package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// admin is every account and key operation the CLI offers. localAdmin runs
// them against an open store; remoteAdmin sends them over the control
// socket to a running server, which runs its localAdmin.
type admin interface {
	AddUser(ctx context.Context, address string, password []byte) (userInfo, error)
	Users(ctx context.Context) ([]userInfo, error)
	// ChangePassword unlocks with current (a password or a recovery code),
	// adds a slot for next and removes the old password slots.
	ChangePassword(ctx context.Context, address string, current, next []byte) (passwdResult, error)
	DeleteUser(ctx context.Context, address string) (store.DeleteReport, error)
	// AddRecoveryCode unlocks with current and adds a recovery slot; the
	// code is returned once and stored nowhere.
	AddRecoveryCode(ctx context.Context, address string, current []byte) (string, error)
	SetWKD(ctx context.Context, address string, publish bool) error
	ExportKey(ctx context.Context, address string) (string, error)
	ExportSecretKey(ctx context.Context, address string, password []byte) (string, error)
}

// userInfo is what `user list` shows of an account.
type userInfo struct {
	Address     string     `json:"address"`
	Created     time.Time  `json:"created"`
	Fingerprint string     `json:"fingerprint"`
	Slots       []slotInfo `json:"slots"`
	PublishWKD  bool       `json:"publish_wkd"`
	UsedBytes   int64      `json:"used_bytes"`
	QuotaBytes  int64      `json:"quota_bytes"`
}

type slotInfo struct {
	ID      uint32    `json:"id"`
	Kind    string    `json:"kind"`
	Label   string    `json:"label,omitempty"`
	Created time.Time `json:"created"`
}

// passwdResult says what ChangePassword did.
type passwdResult struct {
	NewSlot      uint32   `json:"new_slot"`
	RemovedSlots []uint32 `json:"removed_slots"`
}

// adminError is a failure the operator caused or can act on (bad address,
// wrong password, unknown account). Its text is safe to show and to send
// over the control socket; every other error is logged and reported
// generically there.
type adminError struct {
	msg string
	err error // may be nil
}

func (e *adminError) Error() string { return e.msg }
func (e *adminError) Unwrap() error { return e.err }

func adminErrorf(err error, format string, args ...any) error {
	return &adminError{msg: fmt.Sprintf(format, args...), err: err}
}

// errNoResetWithoutSecret is the reason a forgotten password cannot be reset.
const noResetHint = "an administrator cannot reset a password without the current password or a recovery code: the password unlocks the account's key"

// accountStore is the part of store.Store that account administration
// needs.
type accountStore interface {
	CreateAccount(ctx context.Context, a store.Account, mailboxes []store.MailboxSpec) error
	Account(ctx context.Context, address string) (store.Account, error)
	Accounts(ctx context.Context) ([]store.Account, error)
	AddSlot(ctx context.Context, address string, s store.Slot) (uint32, error)
	RemoveSlot(ctx context.Context, address string, id uint32) error
	SetPublishWKD(ctx context.Context, address string, publish bool) error
	DeleteAccount(ctx context.Context, address string) (store.DeleteReport, error)
}

// localAdmin implements admin over a store.
type localAdmin struct {
	st      accountStore
	domains []string         // canonical configured domains
	keyType crypto.KeyType   // for new accounts
	kdf     crypto.KDFParams // for new slots; zero means crypto.DefaultKDF()
	log     *slog.Logger
}

var _ admin = (*localAdmin)(nil)

func newLocalAdmin(st accountStore, c *Config, log *slog.Logger) *localAdmin {
	kt, _ := parseKeyType(c.Key.Type) // validated by Config.Validate
	return &localAdmin{st: st, domains: c.Domains, keyType: kt, kdf: c.kdfParams(), log: log}
}

// kdfParams is the argon2id cost for new slots.
func (c *Config) kdfParams() crypto.KDFParams {
	if c.KDF.Time == 0 {
		return crypto.DefaultKDF()
	}
	return crypto.KDFParams{Time: c.KDF.Time, MemoryKiB: c.KDF.MemoryKiB, Threads: crypto.DefaultKDF().Threads}
}

// parseKeyType maps key.type to crypto's key types.
func parseKeyType(s string) (crypto.KeyType, error) {
	switch s {
	case "ed25519":
		return crypto.KeyEd25519, nil
	case "rsa3072":
		return crypto.KeyRSA3072, nil
	case "rsa4096":
		return crypto.KeyRSA4096, nil
	case "v6":
		return crypto.KeyV6Ed25519, nil
	}
	return 0, fmt.Errorf("want ed25519, rsa3072, rsa4096 or v6, got %q", s)
}

// address canonicalises addr and checks that it is in a configured domain.
func (a *localAdmin) address(addr string) (string, error) {
	return localAddress(addr, a.domains)
}

// localAddress canonicalises addr and checks that its domain is one of
// domains.
func localAddress(addr string, domains []string) (string, error) {
	c, err := policy.CanonicalAddress(addr)
	if err != nil {
		return "", adminErrorf(err, "malformed address %q: %s", addr, addressProblem(err))
	}
	_, domain, _ := policy.SplitAddress(c)
	if !slices.Contains(domains, domain) {
		return "", adminErrorf(nil, "domain %q is not configured (domains: %v)", domain, domains)
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

// account loads an account, mapping "not found" to an operator message.
func (a *localAdmin) account(ctx context.Context, addr string) (store.Account, error) {
	acct, err := a.st.Account(ctx, addr)
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, adminErrorf(err, "no account %s", addr)
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("load account %s: %w", addr, err)
	}
	return acct, nil
}

// unlock opens the account's key with a password or recovery code.
func (a *localAdmin) unlock(acct store.Account, secret []byte) (*crypto.Keyring, error) {
	slots := make([][]byte, 0, len(acct.Slots))
	for _, s := range acct.Slots {
		slots = append(slots, s.Data)
	}
	kr, err := crypto.Unlock(slots, secret, acct.WrappedKey)
	if c, ok := crypto.ParseCode(secret); ok && errors.Is(err, crypto.ErrBadPassword) {
		kr, err = crypto.Unlock(slots, c.Secret, acct.WrappedKey)
		c.Wipe()
	}
	if errors.Is(err, crypto.ErrBadPassword) {
		return nil, adminErrorf(err, "wrong password or recovery code for %s (%s)", acct.Address, noResetHint)
	}
	if err != nil {
		return nil, fmt.Errorf("unlock %s: %w", acct.Address, err)
	}
	return kr, nil
}

func (a *localAdmin) AddUser(ctx context.Context, addr string, password []byte) (userInfo, error) {
	addr, err := a.address(addr)
	if err != nil {
		return userInfo{}, err
	}
	if err := checkPassword(password); err != nil {
		return userInfo{}, adminErrorf(err, "%v", err)
	}
	if _, err := a.st.Account(ctx, addr); err == nil {
		return userInfo{}, adminErrorf(store.ErrExists, "account %s already exists", addr)
	} else if !errors.Is(err, store.ErrNotFound) {
		return userInfo{}, fmt.Errorf("look up %s: %w", addr, err)
	}
	sec, err := crypto.NewAccount(addr, password, crypto.AccountOptions{KeyType: a.keyType, KDF: a.kdf})
	if err != nil {
		return userInfo{}, fmt.Errorf("make keys for %s: %w", addr, err)
	}
	now := time.Now().UTC()
	acct := store.Account{
		Address:        addr,
		Created:        now,
		KeyFingerprint: sec.Fingerprint,
		PublicKey:      sec.PublicKey,
		WrappedKey:     sec.WrappedKey,
		PublishWKD:     true,
		Slots:          []store.Slot{{Kind: store.SlotPassword, Created: now, Data: sec.Slot}},
	}
	err = a.st.CreateAccount(ctx, acct, store.DefaultMailboxes)
	if errors.Is(err, store.ErrExists) {
		return userInfo{}, adminErrorf(err, "account %s already exists", addr)
	}
	if err != nil {
		return userInfo{}, fmt.Errorf("create account %s: %w", addr, err)
	}
	a.log.Info("account created", "account", addr)
	created, err := a.st.Account(ctx, addr)
	if err != nil {
		return userInfo{}, fmt.Errorf("reload account %s: %w", addr, err)
	}
	return infoOf(created), nil
}

func infoOf(a store.Account) userInfo {
	u := userInfo{
		Address: a.Address, Created: a.Created, Fingerprint: a.KeyFingerprint,
		PublishWKD: a.PublishWKD, UsedBytes: a.UsedBytes, QuotaBytes: a.QuotaBytes,
		Slots: make([]slotInfo, 0, len(a.Slots)),
	}
	for _, s := range a.Slots {
		u.Slots = append(u.Slots, slotInfo{ID: s.ID, Kind: s.Kind.String(), Label: s.Label, Created: s.Created})
	}
	return u
}

func (a *localAdmin) Users(ctx context.Context) ([]userInfo, error) {
	accts, err := a.st.Accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out := make([]userInfo, 0, len(accts))
	for _, acct := range accts {
		out = append(out, infoOf(acct))
	}
	return out, nil
}

func (a *localAdmin) ChangePassword(ctx context.Context, addr string, current, next []byte) (passwdResult, error) {
	addr, err := a.address(addr)
	if err != nil {
		return passwdResult{}, err
	}
	if err := checkPassword(next); err != nil {
		return passwdResult{}, adminErrorf(err, "new password: %v", err)
	}
	acct, err := a.account(ctx, addr)
	if err != nil {
		return passwdResult{}, err
	}
	kr, err := a.unlock(acct, current)
	if err != nil {
		return passwdResult{}, err
	}
	defer kr.Wipe()
	slot, err := kr.NewSlot(next, a.kdf)
	if err != nil {
		return passwdResult{}, fmt.Errorf("new slot for %s: %w", addr, err)
	}
	// Add first, then remove: a crash in between leaves both passwords
	// working, never none.
	id, err := a.st.AddSlot(ctx, addr, store.Slot{Kind: store.SlotPassword, Created: time.Now().UTC(), Data: slot})
	if err != nil {
		return passwdResult{}, fmt.Errorf("add slot for %s: %w", addr, err)
	}
	res := passwdResult{NewSlot: id}
	for _, s := range acct.Slots {
		if s.Kind != store.SlotPassword {
			continue
		}
		if err := a.st.RemoveSlot(ctx, addr, s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, fmt.Errorf("remove old slot %d of %s: %w", s.ID, addr, err)
		}
		res.RemovedSlots = append(res.RemovedSlots, s.ID)
	}
	a.log.Info("password changed", "account", addr)
	return res, nil
}

func (a *localAdmin) DeleteUser(ctx context.Context, addr string) (store.DeleteReport, error) {
	addr, err := a.address(addr)
	if err != nil {
		return store.DeleteReport{}, err
	}
	rep, err := a.st.DeleteAccount(ctx, addr)
	if errors.Is(err, store.ErrNotFound) {
		return rep, adminErrorf(err, "no account %s", addr)
	}
	if err != nil {
		return rep, fmt.Errorf("delete account %s: %w", addr, err)
	}
	a.log.Info("account deleted", "account", addr)
	return rep, nil
}

func (a *localAdmin) AddRecoveryCode(ctx context.Context, addr string, current []byte) (string, error) {
	addr, err := a.address(addr)
	if err != nil {
		return "", err
	}
	acct, err := a.account(ctx, addr)
	if err != nil {
		return "", err
	}
	kr, err := a.unlock(acct, current)
	if err != nil {
		return "", err
	}
	defer kr.Wipe()
	code, slot, err := kr.NewCode(crypto.CodeRecovery, a.kdf)
	if err != nil {
		return "", fmt.Errorf("recovery slot for %s: %w", addr, err)
	}
	if _, err := a.st.AddSlot(ctx, addr, store.Slot{Kind: store.SlotRecovery, Created: time.Now().UTC(), Data: slot}); err != nil {
		return "", fmt.Errorf("add recovery slot for %s: %w", addr, err)
	}
	a.log.Info("recovery code added", "account", addr)
	return code, nil
}

func (a *localAdmin) SetWKD(ctx context.Context, addr string, publish bool) error {
	addr, err := a.address(addr)
	if err != nil {
		return err
	}
	err = a.st.SetPublishWKD(ctx, addr, publish)
	if errors.Is(err, store.ErrNotFound) {
		return adminErrorf(err, "no account %s", addr)
	}
	if err != nil {
		return fmt.Errorf("set wkd for %s: %w", addr, err)
	}
	return nil
}

func (a *localAdmin) ExportKey(ctx context.Context, addr string) (string, error) {
	addr, err := a.address(addr)
	if err != nil {
		return "", err
	}
	acct, err := a.account(ctx, addr)
	if err != nil {
		return "", err
	}
	pk, err := crypto.ParsePublicKey(acct.PublicKey)
	if err != nil {
		return "", fmt.Errorf("parse public key of %s: %w", addr, err)
	}
	armored, err := pk.Armored()
	if err != nil {
		return "", fmt.Errorf("armor public key of %s: %w", addr, err)
	}
	return string(armored), nil
}

func (a *localAdmin) ExportSecretKey(ctx context.Context, addr string, password []byte) (string, error) {
	addr, err := a.address(addr)
	if err != nil {
		return "", err
	}
	acct, err := a.account(ctx, addr)
	if err != nil {
		return "", err
	}
	kr, err := a.unlock(acct, password)
	if err != nil {
		return "", err
	}
	defer kr.Wipe()
	armored, err := kr.ExportSecretKey(password)
	if err != nil {
		return "", fmt.Errorf("export secret key of %s: %w", addr, err)
	}
	a.log.Info("secret key exported", "account", addr)
	return string(armored), nil
}
