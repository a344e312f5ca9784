// Package resolver is the one DNS client of sealmail's mail paths: the
// inbound checks (SPF, DKIM, DMARC, DNS block lists, country zones) and
// outbound delivery (MX, address records, MTA-STS discovery, DANE TLSA)
// all ask it, so that one setting (dns.resolver) decides where every
// query goes, every query has a deadline, and answers are cached once.
//
// It speaks to one recursive resolver (Options.Server, host:port) over
// UDP, and over TCP when an answer is truncated. Queries ask for DNSSEC
// validation status (the AD bit, RFC 6840 §5.7): an answer is Authentic
// only if the recursive resolver validated it. That is worth something
// only when the path to the resolver is trusted (a validating resolver on
// the same host or network, such as unbound on 127.0.0.1); DANE
// (RFC 7672) must not be used otherwise, and the operator documentation
// says so.
//
// Errors are of two kinds, and callers must keep them apart, because a
// mail server that treats "the DNS did not answer" like "the name has no
// record" silently accepts what it should have refused:
//
//   - ErrNotFound: the name does not exist (NXDOMAIN) or has no record of
//     the type asked (NODATA). Cached for the SOA's negative TTL.
//   - ErrTemporary: no usable answer (timeout, SERVFAIL, REFUSED, a
//     network error, a malformed reply). Never cached; SMTP answers
//     451 4.4.3 and the sender tries again.
//
// Implementation notes:
//   - Answers are cached in memory by (name, type), bounded by
//     Options.CacheEntries (least recently used go first), for their TTL
//     clamped to [MinTTL, MaxTTL]. Identical queries in flight at the same
//     time share one exchange.
//   - Each exchange has Options.Timeout; a query is tried Options.Attempts
//     times before it is ErrTemporary. The caller's context bounds it all.
//   - Names are queried as given, made fully qualified; callers pass
//     A-label (punycode) names, which policy.NormalizeDomain produces.
//   - Answers are taken only from the answer section, only for the name
//     asked or the CNAME chain the resolver followed from it; records of
//     other names are ignored.
//   - Lock order: Resolver.mu is a leaf, never held while querying.
package resolver
