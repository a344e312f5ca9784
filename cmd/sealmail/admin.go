package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/audit"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// admin is every account and key operation the CLI offers. localAdmin runs
// them on an account.Service over an open store; remoteAdmin sends them
// over the control socket to a running server, which runs its localAdmin
// on the server's own Service (so that sessions and the unlock cache
// learn of every change).
type admin interface {
	AddUser(ctx context.Context, address string, password []byte) (userInfo, error)
	Users(ctx context.Context) ([]userInfo, error)
	// ChangePassword unlocks with current (a password or a recovery code),
	// adds a slot for next and removes the old password slots.
	ChangePassword(ctx context.Context, address string, current, next []byte) (passwdResult, error)
	DeleteUser(ctx context.Context, address string) (deleteResult, error)
	// AddRecoveryCode unlocks with current and adds a recovery slot; the
	// code is returned once and stored nowhere.
	AddRecoveryCode(ctx context.Context, address string, current []byte) (newSecret, error)
	// AddAppPassword unlocks with current and adds an app password slot
	// labelled label; the app password is returned once.
	AddAppPassword(ctx context.Context, address string, current []byte, label string) (newSecret, error)
	Slots(ctx context.Context, address string) ([]slotInfo, error)
	RevokeSlot(ctx context.Context, address string, id uint32) (revokeResult, error)
	SetWKD(ctx context.Context, address string, publish bool) error
	// SetQuota sets the quota setting: a limit in sealed bytes,
	// store.QuotaDefault or store.QuotaNone.
	SetQuota(ctx context.Context, address string, setting int64) error
	ExportKey(ctx context.Context, address string) (string, error)
	ExportSecretKey(ctx context.Context, address string, password []byte) (string, error)

	// The filter and trace commands (filtercmd.go).
	AddRule(ctx context.Context, r ruleInfo) (ruleInfo, error)
	Rules(ctx context.Context) ([]ruleInfo, error)
	// RemoveRule removes entry id, which must be on the action's list.
	RemoveRule(ctx context.Context, id uint64, action string) (ruleInfo, error)
	// Train trains a model with an mbox file; secret is the account's
	// password (nil for the organisation's model).
	Train(ctx context.Context, req trainRequest, secret []byte) (trainResult, error)
	SearchTrace(ctx context.Context, q traceQuery) ([]trace.Record, error)
}

// userInfo is what `user list` shows of an account; its JSON is the
// control protocol's and `user list --json`'s.
type userInfo struct {
	Address     string     `json:"address"`
	Created     time.Time  `json:"created"`
	Fingerprint string     `json:"fingerprint"`
	Slots       []slotInfo `json:"slots"`
	PublishWKD  bool       `json:"publish_wkd"`
	Autocrypt   bool       `json:"autocrypt"`
	UsedBytes   int64      `json:"used_bytes"`
	// QuotaBytes is the setting (0: limits.quota, -1: none); QuotaLimit
	// the limit in force (0: none).
	QuotaBytes int64 `json:"quota_bytes"`
	QuotaLimit int64 `json:"quota_limit"`
}

// slotInfo is one unlock slot, as `user slots --json` prints it.
type slotInfo struct {
	ID      uint32    `json:"id"`
	Kind    string    `json:"kind"`
	Label   string    `json:"label"`
	Created time.Time `json:"created"`
}

// passwdResult says what ChangePassword did.
type passwdResult struct {
	NewSlot       uint32   `json:"new_slot"`
	RemovedSlots  []uint32 `json:"removed_slots"`
	EndedSessions int      `json:"ended_sessions"`
}

// deleteResult says what DeleteUser destroyed.
type deleteResult struct {
	store.DeleteReport
	EndedSessions int `json:"ended_sessions"`
}

// newSecret is a recovery code or app password, shown once.
type newSecret struct {
	Slot   uint32 `json:"slot"`
	Secret string `json:"secret"`
}

// revokeResult says what RevokeSlot destroyed.
type revokeResult struct {
	Slot          slotInfo `json:"slot"`
	EndedSessions int      `json:"ended_sessions"`
	NoPassword    bool     `json:"no_password"`
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

// adminErr turns the account service's operator errors into adminErrors;
// other errors pass unchanged (and stay in the server log).
func adminErr(err error) error {
	var ae *account.Error
	if errors.As(err, &ae) {
		return &adminError{msg: ae.Msg, err: ae}
	}
	return err
}

// newAccounts builds the account service from the configuration;
// onLogin (may be nil) sees each login's keyring (server/filter); every
// change it makes is recorded in auditLog (nil: none), and guard (the
// retention service: legal holds; may be nil) may refuse a deletion.
func newAccounts(st account.Store, c *Config, log *slog.Logger, onLogin func(context.Context, string, *crypto.Keyring), auditLog *audit.Service, guard account.DeleteGuard) (*account.Service, error) {
	return newAccountsWith(st, c, log, onLogin, auditLog, guard, nil)
}

// newAccountsWith is newAccounts telling m (may be nil) of logins and
// unlocks.
func newAccountsWith(st account.Store, c *Config, log *slog.Logger, onLogin func(context.Context, string, *crypto.Keyring), auditLog *audit.Service, guard account.DeleteGuard, m account.Metrics) (*account.Service, error) {
	kt, _ := parseKeyType(c.Key.Type) // validated by Config.Validate
	// nil: no audit log
	var auditor account.Auditor
	if auditLog != nil {
		auditor = accountAuditor{auditLog}
	}
	return account.New(account.Options{
		Auditor:     auditor,
		Store:       st,
		Domains:     c.Domains,
		KeyType:     kt,
		KDF:         c.kdfParams(),
		Logger:      log,
		UnlockCache: c.Auth.UnlockCache,
		OnLogin:     onLogin,
		Metrics:     m,
		DeleteGuard: guard,
	})
}

// kdfParams is the argon2id cost for new slots: kdf.time and
// kdf.memory_kib, or crypto.DefaultKDF() where they are zero.
func (c *Config) kdfParams() crypto.KDFParams {
	p := crypto.DefaultKDF()
	if c.KDF.Time != 0 {
		p.Time, p.MemoryKiB = c.KDF.Time, c.KDF.MemoryKiB
	}
	return p
}

// kdfBelowDefault reports whether kdf.* makes new slots cheaper to
// attack than crypto.DefaultKDF().
func (c *Config) kdfBelowDefault() bool {
	p, d := c.kdfParams(), crypto.DefaultKDF()
	return p.Time < d.Time || p.MemoryKiB < d.MemoryKiB
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

// localAdmin implements admin over an account.Service, the filter and
// trace commands over the store and the inbound parts, and the audit and
// escrow commands over the audit log and the store.
type localAdmin struct {
	svc    *account.Service
	st     store.Store    // may be nil: no filter or trace commands
	inb    *inboundParts  // may be nil: as st
	cfg    *Config        // may be nil; the CLI's, to find the server key
	audit  *audit.Service // the audit log; every localAdmin has one
	escrow *escrowKeys    // the keys delivery seals to; nil without a server
}

var _ admin = (*localAdmin)(nil)

func userInfoOf(a account.Info) userInfo {
	u := userInfo{
		Address: a.Address, Created: a.Created, Fingerprint: a.Fingerprint,
		PublishWKD: a.PublishWKD, Autocrypt: a.Autocrypt, UsedBytes: a.UsedBytes, QuotaBytes: a.QuotaBytes, QuotaLimit: a.QuotaLimit,
		Slots: slotInfosOf(a.Slots),
	}
	return u
}

func slotInfoOf(s account.SlotInfo) slotInfo {
	return slotInfo{ID: s.ID, Kind: s.Kind.String(), Label: s.Label, Created: s.Created}
}

func slotInfosOf(ss []account.SlotInfo) []slotInfo {
	out := make([]slotInfo, 0, len(ss))
	for _, s := range ss {
		out = append(out, slotInfoOf(s))
	}
	return out
}

func (a *localAdmin) AddUser(ctx context.Context, addr string, password []byte) (userInfo, error) {
	info, err := a.svc.Create(ctx, addr, password)
	if err != nil {
		return userInfo{}, adminErr(err)
	}
	return userInfoOf(info), nil
}

func (a *localAdmin) Users(ctx context.Context) ([]userInfo, error) {
	list, err := a.svc.List(ctx)
	if err != nil {
		return nil, adminErr(err)
	}
	out := make([]userInfo, 0, len(list))
	for _, i := range list {
		out = append(out, userInfoOf(i))
	}
	return out, nil
}

func (a *localAdmin) ChangePassword(ctx context.Context, addr string, current, next []byte) (passwdResult, error) {
	res, err := a.svc.ChangePassword(ctx, addr, current, next)
	if err != nil {
		return passwdResult{}, adminErr(err)
	}
	return passwdResult{NewSlot: res.NewSlot, RemovedSlots: res.RemovedSlots, EndedSessions: res.EndedSessions}, nil
}

func (a *localAdmin) DeleteUser(ctx context.Context, addr string) (deleteResult, error) {
	del, err := a.svc.Delete(ctx, addr)
	if err != nil {
		return deleteResult{}, adminErr(err)
	}
	return deleteResult{DeleteReport: del.DeleteReport, EndedSessions: del.EndedSessions}, nil
}

func (a *localAdmin) AddRecoveryCode(ctx context.Context, addr string, current []byte) (newSecret, error) {
	ns, err := a.svc.AddRecoveryCode(ctx, addr, current)
	if err != nil {
		return newSecret{}, adminErr(err)
	}
	return newSecret{Slot: ns.Slot, Secret: ns.Secret}, nil
}

func (a *localAdmin) AddAppPassword(ctx context.Context, addr string, current []byte, label string) (newSecret, error) {
	ns, err := a.svc.AddAppPassword(ctx, addr, current, label)
	if err != nil {
		return newSecret{}, adminErr(err)
	}
	return newSecret{Slot: ns.Slot, Secret: ns.Secret}, nil
}

func (a *localAdmin) Slots(ctx context.Context, addr string) ([]slotInfo, error) {
	ss, err := a.svc.Slots(ctx, addr)
	if err != nil {
		return nil, adminErr(err)
	}
	return slotInfosOf(ss), nil
}

func (a *localAdmin) RevokeSlot(ctx context.Context, addr string, id uint32) (revokeResult, error) {
	rev, err := a.svc.RevokeSlot(ctx, addr, id)
	if err != nil {
		return revokeResult{}, adminErr(err)
	}
	return revokeResult{Slot: slotInfoOf(rev.Slot), EndedSessions: rev.EndedSessions, NoPassword: rev.NoPassword}, nil
}

func (a *localAdmin) SetWKD(ctx context.Context, addr string, publish bool) error {
	return adminErr(a.svc.SetPublishWKD(ctx, addr, publish))
}

func (a *localAdmin) SetQuota(ctx context.Context, addr string, setting int64) error {
	return adminErr(a.svc.SetQuota(ctx, addr, setting))
}

func (a *localAdmin) ExportKey(ctx context.Context, addr string) (string, error) {
	k, err := a.svc.PublicKey(ctx, addr)
	if err != nil {
		return "", adminErr(err)
	}
	return string(k), nil
}

func (a *localAdmin) ExportSecretKey(ctx context.Context, addr string, password []byte) (string, error) {
	k, err := a.svc.ExportSecretKey(ctx, addr, password)
	if err != nil {
		return "", adminErr(err)
	}
	return string(k), nil
}
