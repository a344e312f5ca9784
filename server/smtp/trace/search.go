package trace

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sealmail/sealmail/store"
)

// Reader is what Search needs: store.Tracer's listing.
type Reader interface {
	Traces(ctx context.Context, q store.TraceQuery) ([]store.TraceRecord, error)
}

// Query selects records for `sealmail trace search`. Zero fields select
// everything.
type Query struct {
	Kind store.TraceKind // 0: both
	// From and To match the envelope sender or any recipient: an
	// address, or a domain ("example.org" or "@example.org"), compared
	// without regard to case.
	From, To string
	// IP matches the client (inbound) or the server tried (outbound):
	// an address or a CIDR prefix.
	IP           string
	Since, Until time.Time
	// Limit bounds the records returned, newest first. 0: 100.
	Limit int
}

// maxScan bounds the records one search opens.
const maxScan = 1_000_000

// Search opens the records of the query's time range and returns those
// that match, newest first. The store sees only kinds and times:
// addresses are sealed, so matching happens here.
func Search(ctx context.Context, rd Reader, c *Codec, q Query) ([]Record, error) {
	m, err := compile(q)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	kinds := []store.TraceKind{store.TraceInbound, store.TraceOutbound}
	if q.Kind != 0 {
		kinds = []store.TraceKind{q.Kind}
	}
	var out []Record
	scanned := 0
	for _, k := range kinds {
		var after store.TraceCursor
		for {
			recs, err := rd.Traces(ctx, store.TraceQuery{Kind: k, Since: q.Since, Until: q.Until, After: after, Limit: 1000})
			if err != nil {
				return nil, err
			}
			for _, sr := range recs {
				scanned++
				r, err := c.Decode(sr)
				if errors.Is(err, ErrWrongKey) {
					continue // sealed under an older server key
				}
				if err != nil {
					return nil, err
				}
				if m.match(&r) {
					out = append(out, r)
				}
			}
			if len(recs) < 1000 || scanned >= maxScan {
				break
			}
			last := recs[len(recs)-1]
			after = store.TraceCursor{Time: last.Time, Seq: last.Seq}
		}
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return int(b.Seq) - int(a.Seq)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

type matcher struct {
	from, to addr
	ip       netip.Prefix
	anyIP    bool
}

type addr struct{ full, domain string }

func newAddr(s string) addr {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "":
		return addr{}
	case strings.HasPrefix(s, "@"):
		return addr{domain: s[1:]}
	case !strings.Contains(s, "@"):
		return addr{domain: s}
	}
	return addr{full: s}
}

func (a addr) any() bool { return a.full == "" && a.domain == "" }

func (a addr) match(s string) bool {
	s = strings.ToLower(s)
	if a.full != "" {
		return s == a.full
	}
	return strings.HasSuffix(s, "@"+a.domain)
}

func compile(q Query) (*matcher, error) {
	m := &matcher{from: newAddr(q.From), to: newAddr(q.To), anyIP: q.IP == ""}
	if !m.anyIP {
		if p, err := netip.ParsePrefix(q.IP); err == nil {
			m.ip = p.Masked()
		} else if a, err := netip.ParseAddr(q.IP); err == nil {
			m.ip = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		} else {
			return nil, fmt.Errorf("trace: %q is not an IP address or CIDR prefix", q.IP)
		}
	}
	return m, nil
}

func (m *matcher) match(r *Record) bool {
	var from, ip string
	var rcpts []string
	switch {
	case r.In != nil:
		from, ip, rcpts = r.In.From, r.In.IP, r.In.Rcpts
	case r.Out != nil:
		from, ip, rcpts = r.Out.From, r.Out.IP, r.Out.Rcpts
	default:
		return m.from.any() && m.to.any() && m.anyIP
	}
	if !m.from.any() && !m.from.match(from) {
		return false
	}
	if !m.to.any() && !slices.ContainsFunc(rcpts, m.to.match) {
		return false
	}
	if !m.anyIP {
		a, err := netip.ParseAddr(ip)
		if err != nil || !m.ip.Contains(a.Unmap()) {
			return false
		}
	}
	return true
}
