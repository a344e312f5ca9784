// Package keyserver serves the well-known HTTPS endpoints of sealmail's
// mail domains:
//
//   - the OpenPGP Web Key Directory (draft-koch-openpgp-webkey-service-21),
//     advanced method at https://openpgpkey.<domain>/.well-known/openpgpkey/<domain>/hu/<hash>?l=<local>
//     and direct method at https://<domain>/.well-known/openpgpkey/hu/<hash>?l=<local>,
//     plus the per-domain policy file;
//   - Thunderbird/K-9 autoconfiguration, config-v1.1.xml, at
//     https://autoconfig.<domain>/mail/config-v1.1.xml and
//     https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml;
//   - the MTA-STS policy (RFC 8461) at https://mta-sts.<domain>/.well-known/mta-sts.txt.
//
// New builds the http.Handler and NewServer the bounded http.Server;
// cmd/sealmail serves them over TLS, with certificates from files or from
// NewAutocert (ACME). DNSRecords prints the
// DNS records a domain needs.
//
// Threat model: everything here is public by design, but only what the
// operator chose to publish. The handler answers only for configured
// domains and their three service names, and an address that is unknown,
// unpublished (store.PublicAccount.PublishWKD false), or whose stored key lacks
// a user ID for it is indistinguishable from any other miss: 404 with the
// same fixed body, no earlier than 2 ms after the request (wkdMissFloor),
// so an unpublished account, whose record the store must read, takes no
// longer to refuse than an address that does not exist. A key is served only for the exact address it was asked
// for, and carries only that address's user ID with its self-signatures:
// other user IDs and third-party certifications are stripped, so a key
// never reveals other addresses or who certified it.
//
// Implementation notes:
//   - keyserver imports store and policy only (docs/design.md). Domains
//     and addresses are compared in policy's canonical form (A-labels),
//     so an international domain works in either spelling. It reads
//     accounts through the consumer interface KeyLookup and never writes.
//     GET and HEAD are the only methods; nothing a request carries
//     changes any state.
//   - Request bounds: query ≤ 1 KiB (else 400), path ≤ 512 B (else 404),
//     "l" ≤ 64 bytes of UTF-8 without controls; the hash must be exactly
//     32 lower-case z-base-32 characters (anything else, upper case
//     included, is 404). Paths are matched exactly, never mapped to files,
//     so "..", "//" and percent-encoded slashes cannot reach anything. A
//     request with a body gets 413 and the connection is closed before
//     the body is read. NewServer bounds the rest: headers (16 KiB,
//     ServerOptions.HeaderTimeout), whole requests and responses (30 s),
//     keep-alive (1 min), HTTP/1.1 only; the caller bounds connections on
//     its listener.
//   - The hash and "l" must agree (the hash is recomputed from "l"), so a
//     request can name one address only. The store's canonical address
//     lower-cases the whole local part; the WKD hash, like GnuPG's, maps
//     only ASCII letters, and both are honoured.
//   - Requests without "l" are answered only when the KeyLookup also
//     implements AccountLister, through a hash index rebuilt at most once a
//     minute; publication is still checked against the store per request.
//   - Responses never echo input or carry internal error text; causes go
//     to the Logger with the fixed keys proto, cid, remote, account, err,
//     duration.
//   - No key submission (Web Key Directory Update Protocol) is offered, so
//     the submission-address file is never served and the policy file
//     carries only a comment.
//   - Everything but the WKD lookup is rendered once in New or from
//     immutable config; Handler has no mutable state except the index
//     (guarded by its mutex) and the request counter.
package keyserver
