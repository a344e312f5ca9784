package inbound

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// rulesRefresh is how often the allow and deny lists are read again
// from the store (changes made through this process apply at once).
const rulesRefresh = 30 * time.Second

// ruleSet is one snapshot of the allow and deny lists, compiled for
// matching.
type ruleSet struct {
	byOwner map[string]*ownerRules // "" the organisation's
}

type ownerRules struct {
	allow, deny kindRules
}

type kindRules struct {
	cidrs   []cidrRule
	domains map[string]policy.RuleRef // domain → rule; matches subdomains too
	addrs   map[string]policy.RuleRef // address → rule
}

type cidrRule struct {
	p   netip.Prefix
	ref policy.RuleRef
}

func compileRules(rules []store.FilterRule) *ruleSet {
	rs := &ruleSet{byOwner: map[string]*ownerRules{}}
	for _, r := range rules {
		o := rs.byOwner[r.Owner]
		if o == nil {
			o = &ownerRules{}
			rs.byOwner[r.Owner] = o
		}
		k := &o.allow
		if r.Action == store.FilterDeny {
			k = &o.deny
		}
		ref := policy.RuleRef{ID: r.ID, Owner: r.Owner, Action: r.Action, Kind: r.Kind, Value: r.Value}
		switch r.Kind {
		case store.FilterCIDR:
			p, err := ParsePrefix(r.Value)
			if err == nil {
				k.cidrs = append(k.cidrs, cidrRule{p, ref})
			}
		case store.FilterDomain:
			if k.domains == nil {
				k.domains = map[string]policy.RuleRef{}
			}
			if _, dup := k.domains[strings.ToLower(r.Value)]; !dup {
				k.domains[strings.ToLower(r.Value)] = ref
			}
		case store.FilterAddress:
			if k.addrs == nil {
				k.addrs = map[string]policy.RuleRef{}
			}
			if _, dup := k.addrs[strings.ToLower(r.Value)]; !dup {
				k.addrs[strings.ToLower(r.Value)] = ref
			}
		}
	}
	return rs
}

// ParsePrefix reads a CIDR rule value: a prefix or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// matchIP returns the first CIDR rule containing ip.
func (k *kindRules) matchIP(ip netip.Addr) *policy.RuleRef {
	if !ip.IsValid() {
		return nil
	}
	for i := range k.cidrs {
		if k.cidrs[i].p.Contains(ip) {
			return &k.cidrs[i].ref
		}
	}
	return nil
}

// matchSender returns the rule naming addr, or its domain or a parent
// domain of it.
func (k *kindRules) matchSender(addr string) *policy.RuleRef {
	if addr == "" {
		return nil
	}
	addr = strings.ToLower(addr)
	if r, ok := k.addrs[addr]; ok {
		return &r
	}
	at := strings.LastIndexByte(addr, '@')
	return k.matchDomain(addr[at+1:])
}

func (k *kindRules) matchDomain(d string) *policy.RuleRef {
	for d != "" {
		if r, ok := k.domains[d]; ok {
			return &r
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			break
		}
		d = d[i+1:]
	}
	return nil
}

// rulesCache holds the current snapshot.
type rulesCache struct {
	load func(ctx context.Context) ([]store.FilterRule, error) // immutable

	mu     sync.Mutex
	set    *ruleSet  // guarded by mu
	loaded time.Time // guarded by mu
}

// get returns a snapshot no older than rulesRefresh. If the store
// cannot be read, the last snapshot is used (and the error returned
// when there is none).
func (c *rulesCache) get(ctx context.Context, now time.Time) (*ruleSet, error) {
	c.mu.Lock()
	set, fresh := c.set, now.Sub(c.loaded) < rulesRefresh
	c.mu.Unlock()
	if set != nil && fresh {
		return set, nil
	}
	rules, err := c.load(ctx)
	if err != nil {
		if set != nil {
			return set, nil
		}
		return nil, err
	}
	set = compileRules(rules)
	c.mu.Lock()
	c.set, c.loaded = set, now
	c.mu.Unlock()
	return set, nil
}

// invalidate makes the next get read the store.
func (c *rulesCache) invalidate() {
	c.mu.Lock()
	c.loaded = time.Time{}
	c.mu.Unlock()
}
