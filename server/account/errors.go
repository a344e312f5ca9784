package account

import (
	"errors"
	"fmt"
)

// Sentinel errors, checked with errors.Is. Operations that fail for a
// reason the operator caused or can act on return an *Error that wraps one
// of them and carries a message fit to show.
var (
	// ErrNotFound: no account with that address.
	ErrNotFound = errors.New("account: no such account")
	// ErrExists: the address is taken.
	ErrExists = errors.New("account: already exists")
	// ErrInvalid: a malformed address, a password that breaks the rules,
	// a bad label or slot ID.
	ErrInvalid = errors.New("account: invalid input")
	// ErrBadCredentials: the secret opens no slot it may open, or the
	// account does not exist. Protocols must answer both alike.
	ErrBadCredentials = errors.New("account: wrong credentials")
	// ErrThrottled: too many login attempts from the address or on the
	// account; the attempt was refused before any work.
	ErrThrottled = errors.New("account: too many login attempts")
	// ErrTooManySlots: the account has MaxSlots unlock slots.
	ErrTooManySlots = errors.New("account: too many unlock slots")
	// ErrLastSlot: removing the slot would leave no password or recovery
	// code, the only secrets that can manage the account.
	ErrLastSlot = errors.New("account: last password or recovery code")
	// ErrRefused: the DeleteGuard refused (a legal hold, later).
	ErrRefused = errors.New("account: refused")
	// ErrUnavailable: the login raced a change of the account, or the
	// service is shutting down; the client may try again.
	ErrUnavailable = errors.New("account: temporarily unavailable")
	// ErrClosed: the service was closed.
	ErrClosed = errors.New("account: service closed")
	// ErrKeyMismatch: the secret was right, but the account's stored
	// public key is not its private key's: the data directory was
	// tampered with (crypto.Keyring.CheckPublicKey). The login is refused
	// and logged for the operator; protocols answer as for ErrUnavailable.
	ErrKeyMismatch = errors.New("account: stored public key does not match the private key")
)

// Causes with which a Session's context ends (context.Cause).
var (
	// ErrAccountDeleted: the account was deleted.
	ErrAccountDeleted = errors.New("account: account deleted")
	// ErrSlotRemoved: the slot the session unlocked was revoked or
	// replaced by a password change.
	ErrSlotRemoved = errors.New("account: credentials revoked")
)

// Error is a failure whose message is safe to show to the operator who
// asked (a CLI user): it names addresses and slots, never secrets or
// storage internals. Kind is one of the sentinels above.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// noResetHint is why a forgotten password cannot be reset.
const noResetHint = "an administrator cannot reset a password without the current password or a recovery code: the password unlocks the account's key"
