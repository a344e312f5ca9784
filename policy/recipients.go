package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sealmail/sealmail/store"
)

// Sentinel errors of Resolve, checked with errors.Is.
var (
	// ErrRelayDenied: the address is not in a local domain, or it is
	// written so that it could route to another host.
	ErrRelayDenied = errors.New("policy: relaying denied")
	// ErrNoSuchUser: the domain is local but no account or alias answers.
	ErrNoSuchUser = errors.New("policy: no such user")
)

// subaddressSeparator splits "user+tag" (RFC 5233 sub-addressing).
const subaddressSeparator = "+"

// postmasterLocal is the local part RFC 5321 §4.5.1 requires every domain
// to accept, compared case-insensitively.
const postmasterLocal = "postmaster"

// AccountLookup is what Recipients needs from the store: the public view
// of an account, which carries no wrapped key and no slots. It returns
// store.ErrNotFound for an unknown address.
type AccountLookup interface {
	PublicAccount(ctx context.Context, address string) (store.PublicAccount, error)
}

// RecipientOptions configures NewRecipients. The zero value accepts no
// recipient at all: every address is relaying.
type RecipientOptions struct {
	// Domains are the domains delivered here, in any form NormalizeDomain
	// accepts (U-labels or A-labels, any case, one trailing dot); each is
	// compared in canonical form. Empty: none.
	Domains []string
	// Aliases maps an alias address to the account addresses it delivers
	// to. Aliases and targets must be in Domains. nil: no aliases.
	Aliases map[string][]string
	// Postmaster is the account address that receives postmaster@ of every
	// domain. Empty: postmaster@<domain> if such an account exists.
	Postmaster string
}

// Recipients decides which local accounts an envelope recipient delivers
// to. It is immutable after NewRecipients and safe for concurrent use.
type Recipients struct {
	domains    map[string]bool     // immutable; canonical domain names
	aliases    map[string][]string // immutable; canonical alias → canonical targets
	postmaster string              // immutable; canonical, may be ""
}

// NewRecipients validates opt and returns the recipient policy.
func NewRecipients(opt RecipientOptions) (*Recipients, error) {
	r := &Recipients{
		domains: make(map[string]bool, len(opt.Domains)),
		aliases: make(map[string][]string, len(opt.Aliases)),
	}
	for _, d := range opt.Domains {
		cd, err := NormalizeDomain(strings.TrimSpace(d))
		if err != nil {
			return nil, err
		}
		r.domains[cd] = true
	}
	local := func(what, addr string) (string, error) {
		ca, err := CanonicalAddress(addr)
		if err != nil {
			return "", fmt.Errorf("policy: %s %q: %w", what, addr, err)
		}
		if !r.domains[ca[strings.LastIndexByte(ca, '@')+1:]] {
			return "", fmt.Errorf("policy: %s %q is not in a configured domain", what, addr)
		}
		return ca, nil
	}
	if opt.Postmaster != "" {
		pm, err := local("postmaster", opt.Postmaster)
		if err != nil {
			return nil, err
		}
		r.postmaster = pm
	}
	for alias, targets := range opt.Aliases {
		ca, err := local("alias", alias)
		if err != nil {
			return nil, err
		}
		if _, dup := r.aliases[ca]; dup {
			return nil, fmt.Errorf("policy: alias %q defined twice", alias)
		}
		if len(targets) == 0 {
			return nil, fmt.Errorf("policy: alias %q has no targets", alias)
		}
		var cts []string
		for _, t := range targets {
			ct, err := local("alias target", t)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(cts, ct) {
				cts = append(cts, ct)
			}
		}
		r.aliases[ca] = cts
	}
	// Aliases deliver to accounts, not to other aliases: one level keeps
	// resolution bounded and loops impossible.
	for ca, cts := range r.aliases {
		for _, ct := range cts {
			if _, ok := r.aliases[ct]; ok {
				return nil, fmt.Errorf("policy: alias %q targets alias %q", ca, ct)
			}
		}
	}
	return r, nil
}

// IsLocalDomain reports whether domain (in any form NormalizeDomain
// accepts) is delivered here.
func (r *Recipients) IsLocalDomain(domain string) bool {
	d, err := NormalizeDomain(domain)
	return err == nil && r.domains[d]
}

// Resolve returns the accounts that mail to addr is delivered to: one for
// an account (sub-address tags removed), one or more for an alias. The
// error wraps ErrRelayDenied (foreign domain or routing trick),
// ErrBadAddress (malformed local part in a local domain), ErrNoSuchUser,
// or else it is a lookup failure the caller should treat as temporary.
func (r *Recipients) Resolve(ctx context.Context, lookup AccountLookup, addr string) ([]store.PublicAccount, error) {
	localPart, domain, err := SplitAddress(addr)
	if err != nil {
		at := strings.LastIndexByte(addr, '@')
		if at < 0 || !r.IsLocalDomain(addr[at+1:]) || errors.Is(err, ErrRouting) {
			return nil, fmt.Errorf("%w: %w", ErrRelayDenied, err)
		}
		return nil, err
	}
	if !r.domains[domain] {
		return nil, fmt.Errorf("%w: domain %s is not local", ErrRelayDenied, domain)
	}
	localPart = strings.ToLower(localPart)
	candidates := []string{localPart}
	if i := strings.Index(localPart, subaddressSeparator); i > 0 {
		candidates = append(candidates, localPart[:i])
	}
	for _, l := range candidates {
		ca := l + "@" + domain
		if targets, ok := r.aliases[ca]; ok {
			return r.lookupAll(ctx, lookup, targets)
		}
		if l == postmasterLocal && r.postmaster != "" {
			return r.lookupAll(ctx, lookup, []string{r.postmaster})
		}
		a, err := lookup.PublicAccount(ctx, ca)
		if err == nil {
			return []store.PublicAccount{a}, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("policy: look up %s: %w", ca, err)
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNoSuchUser, addr)
}

// lookupAll looks up configured targets. A missing target is a
// configuration fault, not the sender's: it is reported as a plain
// (temporary) error so that no mail bounces while an operator fixes it.
func (r *Recipients) lookupAll(ctx context.Context, lookup AccountLookup, targets []string) ([]store.PublicAccount, error) {
	as := make([]store.PublicAccount, 0, len(targets))
	for _, t := range targets {
		a, err := lookup.PublicAccount(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("policy: configured target %s: %w", t, err)
		}
		as = append(as, a)
	}
	return as, nil
}
