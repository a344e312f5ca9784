// Package tlspolicy decides what TLS outbound delivery needs, host by
// host: the queue.TLSPolicy of the delivery engine, built from DANE
// (RFC 7672), MTA-STS (RFC 8461) and REQUIRETLS (RFC 8689).
//
// Require answers, for one host the engine is about to try, in this
// order:
//
//  1. No recipient domain (the smarthost): opportunistic STARTTLS.
//  2. A host from outbound.transports: the operator's route, not the
//     recipient's MX, so DANE and MTA-STS (which name MX hosts) do not
//     apply; opportunistic, or for a REQUIRETLS message TLS verified
//     (PKIX) for the configured host name.
//  3. "TLS-Required: No" (RFC 8689 §5) on a message not sent with
//     REQUIRETLS: opportunistic, whatever the recipient publishes.
//  4. DANE: when the MX answer, the host's addresses and its TLSA
//     records (_25._tcp.HOST) are all DNSSEC-validated (the resolver's
//     AD bit), TLS is required and verified against the usable records:
//     DANE-EE matches the server's own certificate (no name or date
//     checks, §3.1.1), DANE-TA a CA certificate the server sends, from
//     which the chain must verify for the MX host name or the recipient
//     domain (§3.1.2, §3.2.2). A TLSA lookup that fails is an error:
//     the engine tries the next host and retries later (§2.2.1). DANE
//     beats MTA-STS (RFC 8461 §2).
//  5. MTA-STS: the recipient domain's policy. enforce: a host not in the
//     policy's mx list is skipped; one in it must offer STARTTLS with a
//     certificate valid (PKIX) for its name. testing: delivery stays
//     opportunistic, and after the attempt whatever enforce would have
//     refused is logged as a warning (a report, RFC 8461 §5).
//  6. REQUIRETLS (RFC 8689 §4.2.1): the message may go only over TLS
//     verified by 4 or 5 (testing policies count here), or, for an MX
//     from a DNSSEC-validated answer, PKIX for the host name. Otherwise
//     the answer requires nothing (PolicyUnverifiable), which the engine
//     refuses for a REQUIRETLS message with 5.7.30, so it bounces. The
//     engine itself checks that the server offers REQUIRETLS.
//  7. TLSA records that exist but none usable: TLS required, without
//     authentication (RFC 7672 §2.2).
//  8. Otherwise opportunistic STARTTLS.
//
// The Policy of each answer names it for the delivery trace: the
// queue's DANE, MTA-STS and STARTTLS, or one of this package's
// (PolicyMTASTSTesting, …).
//
// MTA-STS policies: the _mta-sts.DOMAIN TXT record (one "v=STSv1" record
// with an id, §3.1) is looked up through the resolver; the policy is
// fetched from https://mta-sts.DOMAIN/.well-known/mta-sts.txt with a
// certificate valid for that name (system roots, or Options.RootCAs),
// HTTP/1.1 without proxy, redirects, keep-alive or caching, status 200
// and text/plain only, at most 64 KiB, within Options.FetchTimeout (20 s)
// in all. Its address is looked up through the resolver too, so every
// DNS query of delivery goes to dns.resolver. Policies are cached in
// memory, bounded (least recently used go first), for max_age (at least a
// minute); a cached policy is fetched again when the TXT id changes or
// half its max_age has passed, and a failed fetch keeps the cached policy
// in force (§5.1) and is not retried for five minutes. A domain whose
// TXT record is missing or fails to resolve keeps its cached policy, or
// has none: finding no policy never blocks delivery (§3.3).
//
// The cache survives restarts in Options.CacheFile, sealed (AES-256-GCM)
// under a key derived from Options.CacheKey, the server key, because it
// names the domains the server sends to: without it, an attacker who
// suppresses a domain's TXT record and policy host after a restart would
// downgrade the next delivery to opportunistic TLS. It is written at most
// every 30 seconds after a new policy, and by Close; an unreadable file
// (another key, damage) is a warning and an empty cache, not a failure.
//
// Trust: DANE is only as good as the path to the validating resolver;
// Options.NoDANE (dns.dnssec: false) turns it off, and with it the
// DNSSEC route for REQUIRETLS, for a resolver reached over an untrusted
// network.
//
// Implementation notes:
//   - Every configuration Require returns is fresh (a testing-mode
//     report holds per-attempt state); the engine sets ServerName if
//     empty, and this package always sets it.
//   - Identical fetches of one domain at the same time share one request.
//   - Lock order: Policies.saveMu, then policyCache.mu; Policies.mu and
//     policyCache.mu are leaves, never held during DNS lookups, fetches
//     or file writes.
package tlspolicy
