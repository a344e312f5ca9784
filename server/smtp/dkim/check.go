package dkim

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sealmail/sealmail/server/smtp/resolver"
)

// TXTResolver is the DNS lookup CheckPending needs; *resolver.Resolver
// has it. Its errors must match resolver.ErrNotFound for a name without
// TXT records.
type TXTResolver interface {
	TXT(ctx context.Context, name string) ([]string, error)
}

// Published reports whether the selector's record is in DNS with its
// public key, as seen through r. false with a nil error: the name has
// no such record (or another key); an error: the lookup failed.
func Published(ctx context.Context, r TXTResolver, s Selector) (bool, error) {
	txts, err := r.TXT(ctx, s.DNSName())
	if errors.Is(err, resolver.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, t := range txts {
		if recordHolds(t, s) {
			return true, nil
		}
	}
	return false, nil
}

// recordHolds reports whether the key record txt (RFC 6376 §3.6.1)
// carries s's key: a k= of s's algorithm (absent means rsa) and p= of
// its public key, whitespace in p ignored (§3.6.1: folding white space
// may appear in p).
func recordHolds(txt string, s Selector) bool {
	tags := map[string]string{}
	for _, part := range strings.Split(txt, ";") {
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		tags[strings.TrimSpace(name)] = strings.TrimSpace(val)
	}
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return false
	}
	alg := tags["k"]
	if alg == "" {
		alg = "rsa"
	}
	if alg != string(s.Algorithm) {
		return false
	}
	p := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, tags["p"])
	key, err := base64.StdEncoding.DecodeString(p)
	return err == nil && len(key) > 0 && string(key) == string(s.PublicKey)
}

// CheckPending looks up the records of every pending selector through
// r. A domain's pending keys take over (and its active ones start
// retiring) once all of them have been seen published for PublishWait;
// a record that disappears meanwhile restarts the wait. It also
// destroys the private keys of selectors that retired. The server runs
// it periodically; it returns the selectors it activated.
func (k *Keys) CheckPending(ctx context.Context, r TXTResolver) ([]Selector, error) {
	all, err := k.List("")
	if err != nil {
		return nil, err
	}
	// Look up outside every lock: DNS may take seconds.
	seen := map[string]map[string]bool{} // domain → selector → published
	var errs []error
	for _, s := range all {
		if s.Status != Pending {
			continue
		}
		ok, err := Published(ctx, r, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("dkim: look up %s: %w", s.DNSName(), err))
			continue
		}
		if seen[s.Domain] == nil {
			seen[s.Domain] = map[string]bool{}
		}
		seen[s.Domain][s.Name] = ok
	}
	var act []Selector
	err = k.update(func(st *state, now time.Time) (bool, error) {
		act = act[:0]
		changed := false
		for d, sels := range st.Domains {
			res, checked := seen[d]
			if !checked {
				continue
			}
			all := true
			pending := 0
			for _, s := range sels {
				if k.status(s, now) != Pending {
					continue
				}
				pending++
				published, ok := res[s.Name]
				if !ok || !published {
					all = false
				}
			}
			if pending == 0 {
				continue
			}
			if !all {
				// Not (or no longer) published: the wait starts again
				// when it is.
				// A failed lookup changes nothing.
				for _, s := range sels {
					published, looked := res[s.Name]
					if k.status(s, now) == Pending && looked && !published && !s.Seen.IsZero() {
						s.Seen = time.Time{}
						changed = true
					}
				}
				continue
			}
			// All are published: the wait runs from the latest first
			// sighting.
			var latest time.Time
			for _, s := range sels {
				if k.status(s, now) != Pending {
					continue
				}
				if s.Seen.IsZero() {
					s.Seen = now
					changed = true
				}
				if s.Seen.After(latest) {
					latest = s.Seen
				}
			}
			if now.Sub(latest) >= k.publishWait {
				act = append(act, k.activateLocked(st, d, now)...)
				changed = true
			}
		}
		return changed, nil
	})
	if err != nil {
		return nil, err
	}
	return act, errors.Join(errs...)
}
