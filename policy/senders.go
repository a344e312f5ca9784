package policy

import "strings"

// Owns reports whether the account at account (canonical) may send as
// addr: addr is the account itself, with or without a sub-address tag
// (RFC 5233), an alias that delivers to it, or postmaster@ of a local
// domain when the account receives postmaster mail. Submission refuses
// an envelope sender or a From: field the authenticated account does
// not own. It needs no store: the account exists (it logged in).
func (r *Recipients) Owns(account, addr string) bool {
	ca, err := CanonicalAddress(addr)
	if err != nil {
		return false
	}
	local, domain := ca[:strings.LastIndexByte(ca, '@')], ca[strings.LastIndexByte(ca, '@')+1:]
	candidates := []string{local}
	if i := strings.Index(local, subaddressSeparator); i > 0 {
		candidates = append(candidates, local[:i])
	}
	for _, l := range candidates {
		a := l + "@" + domain
		if a == account {
			return true
		}
		if !r.domains[domain] {
			continue
		}
		if targets, ok := r.aliases[a]; ok {
			for _, t := range targets {
				if t == account {
					return true
				}
			}
			continue
		}
		if l == postmasterLocal && r.postmaster == account {
			return true
		}
	}
	return false
}
