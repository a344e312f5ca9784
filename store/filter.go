package store

import (
	"context"
	"time"
)

// The inbound filter's state: the operators' and users' allow and deny
// lists, greylisting, and the spam classifier's models. Rules are policy
// data and kept in the clear; greylisting keys are hashes; a model's
// data and key are opaque bytes (server/filter seals them; see
// SECURITY.md for what each reveals).

// FilterAction is what a FilterRule does. Persisted: only grow at the
// end.
type FilterAction uint8

const (
	FilterAllow FilterAction = 1
	FilterDeny  FilterAction = 2
)

func (a FilterAction) String() string {
	switch a {
	case FilterAllow:
		return "allow"
	case FilterDeny:
		return "deny"
	}
	return "unknown"
}

// FilterKind is what a FilterRule's Value names. Persisted: only grow
// at the end.
type FilterKind uint8

const (
	FilterCIDR    FilterKind = 1 // a client address or network, "192.0.2.0/24"
	FilterDomain  FilterKind = 2 // a sender domain and its subdomains, "example.org"
	FilterAddress FilterKind = 3 // one sender address, "a@example.org"
)

func (k FilterKind) String() string {
	switch k {
	case FilterCIDR:
		return "cidr"
	case FilterDomain:
		return "domain"
	case FilterAddress:
		return "address"
	}
	return "unknown"
}

// FilterRule is one allow or deny entry.
type FilterRule struct {
	ID uint64 // assigned by AddFilterRule; never reused
	// Owner is "" for the organisation's rules, else the account they
	// belong to (its canonical address).
	Owner   string
	Action  FilterAction
	Kind    FilterKind
	Value   string // in the caller's canonical form; not interpreted by the store
	Note    string // free text for operators
	Created time.Time
}

// MaxFilterRules bounds the rules of one owner.
const MaxFilterRules = 10000

// GreylistEntry is what greylisting remembers of one key (a client
// network, sender and recipient triplet, or a client network that
// passed often enough to skip greylisting).
type GreylistEntry struct {
	First  time.Time // first attempt
	Last   time.Time // last attempt or delivery
	Passes uint32    // deliveries accepted after the wait
}

// FilterModel is one spam classifier model: the organisation's (owner
// "") or an account's. Both fields are opaque to the store.
type FilterModel struct {
	// Key is the model's key material as server/filter keeps it (for an
	// account: sealed under the account's index key).
	Key []byte
	// Data is the model itself.
	Data []byte
	// Gen is the model's generation, assigned by PutFilterModel: a new
	// value with every write, never 0 for a stored model.
	Gen uint64
}

// FilterStore keeps the inbound filter's state.
type FilterStore interface {
	// AddFilterRule stores r with a new ID and returns it. ErrExists if
	// the owner has a rule with the same action, kind and value;
	// ErrNotFound if the owner is an account that does not exist;
	// ErrTooLarge beyond MaxFilterRules rules of one owner. An account's
	// rules go when the account is deleted.
	AddFilterRule(ctx context.Context, r FilterRule) (FilterRule, error)
	// FilterRules lists every rule, the organisation's and all
	// accounts', by ID.
	FilterRules(ctx context.Context) ([]FilterRule, error)
	// RemoveFilterRule removes one rule. ErrNotFound if there is none.
	RemoveFilterRule(ctx context.Context, id uint64) error

	// Greylist returns the entry of key, or ErrNotFound.
	Greylist(ctx context.Context, key []byte) (GreylistEntry, error)
	// SetGreylist stores the entry of key (at most 64 bytes).
	SetGreylist(ctx context.Context, key []byte, e GreylistEntry) error
	// ExpireGreylist removes entries whose Last is before before and
	// returns how many it removed.
	ExpireGreylist(ctx context.Context, before time.Time) (int, error)

	// FilterModel returns the model of owner ("" for the organisation,
	// else an account address), or ErrNotFound.
	FilterModel(ctx context.Context, owner string) (FilterModel, error)
	// PutFilterModel stores m as owner's model if the stored model's
	// generation is still gen (0: there is none yet), and returns the
	// new generation. Otherwise it fails with ErrConflict and stores
	// nothing. ErrNotFound if owner is an account that does not exist.
	// An account's model goes when the account is deleted.
	PutFilterModel(ctx context.Context, owner string, m FilterModel, gen uint64) (uint64, error)
}
