package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// ScopeKind is what a scope covers.
type ScopeKind uint8

const (
	ScopeOrg     ScopeKind = iota // every account
	ScopeDomain                   // the accounts of one domain
	ScopeUser                     // one account (and the vault it leaves when deleted)
	ScopeMailbox                  // one mailbox of one account
)

// Scope is where an assignment, a hold or an event applies. Levels go
// from the organisation down to a mailbox; what applies to one applies
// to everything below it.
type Scope struct {
	Kind    ScopeKind
	Domain  string // canonical; ScopeDomain
	Address string // canonical; ScopeUser, ScopeMailbox
	// Mailbox names the mailbox as the officer wrote it; MailboxID is its
	// never-reused ID (0 until resolved).
	Mailbox   string
	MailboxID uint64
}

// ParseScope parses a scope as the CLI takes it: "org", "domain:DOMAIN",
// "user:ADDRESS" or "mailbox:ADDRESS/NAME"; and as the store keeps it,
// "mailbox:ADDRESS#ID".
func ParseScope(s string) (Scope, error) {
	if s == "org" {
		return Scope{Kind: ScopeOrg}, nil
	}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return Scope{}, fmt.Errorf("scope %q: want org, domain:DOMAIN, user:ADDRESS or mailbox:ADDRESS/NAME", clip(s))
	}
	switch kind {
	case "domain":
		d, err := NormalizeDomain(rest)
		if err != nil {
			return Scope{}, fmt.Errorf("scope %q: %w", clip(s), err)
		}
		return Scope{Kind: ScopeDomain, Domain: d}, nil
	case "user":
		a, err := CanonicalAddress(rest)
		if err != nil {
			return Scope{}, fmt.Errorf("scope %q: %w", clip(s), err)
		}
		return Scope{Kind: ScopeUser, Address: a}, nil
	case "mailbox":
		if addr, id, ok := strings.Cut(rest, "#"); ok && !strings.Contains(addr, "/") {
			n, err := strconv.ParseUint(id, 10, 64)
			a, aerr := CanonicalAddress(addr)
			if err != nil || n == 0 || aerr != nil {
				return Scope{}, fmt.Errorf("scope %q: want mailbox:ADDRESS#ID", clip(s))
			}
			return Scope{Kind: ScopeMailbox, Address: a, MailboxID: n}, nil
		}
		addr, name, ok := strings.Cut(rest, "/")
		if !ok || name == "" {
			return Scope{}, fmt.Errorf("scope %q: want mailbox:ADDRESS/NAME", clip(s))
		}
		a, err := CanonicalAddress(addr)
		if err != nil {
			return Scope{}, fmt.Errorf("scope %q: %w", clip(s), err)
		}
		if strings.EqualFold(name, "INBOX") {
			name = "INBOX"
		}
		return Scope{Kind: ScopeMailbox, Address: a, Mailbox: name}, nil
	}
	return Scope{}, fmt.Errorf("scope %q: want org, domain:DOMAIN, user:ADDRESS or mailbox:ADDRESS/NAME", clip(s))
}

// Key is the form the store keeps: a mailbox by its ID.
func (s Scope) Key() string {
	switch s.Kind {
	case ScopeDomain:
		return "domain:" + s.Domain
	case ScopeUser:
		return "user:" + s.Address
	case ScopeMailbox:
		return "mailbox:" + s.Address + "#" + strconv.FormatUint(s.MailboxID, 10)
	}
	return "org"
}

// String is the form people read: a mailbox by its name where known.
func (s Scope) String() string {
	if s.Kind == ScopeMailbox && s.Mailbox != "" {
		return "mailbox:" + s.Address + "/" + s.Mailbox
	}
	return s.Key()
}

// Level orders scopes from the organisation (0) down to a mailbox (3).
func (s Scope) Level() int { return int(s.Kind) }

// Covers reports whether s covers a message of account address in
// mailbox (0: not in a mailbox).
func (s Scope) Covers(address string, mailbox uint64) bool {
	switch s.Kind {
	case ScopeOrg:
		return true
	case ScopeDomain:
		// Accounts are canonical: the domain is what follows the last '@'.
		at := strings.LastIndexByte(address, '@')
		return at >= 0 && address[at+1:] == s.Domain
	case ScopeUser:
		return address == s.Address
	case ScopeMailbox:
		return address == s.Address && mailbox == s.MailboxID
	}
	return false
}

// CoversAccount reports whether s covers all or part of an account.
func (s Scope) CoversAccount(address string) bool {
	if s.Kind == ScopeMailbox {
		return address == s.Address
	}
	return s.Covers(address, 0)
}
