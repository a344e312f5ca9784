// Package inbound runs the MX's inbound checks on each transaction,
// before the message is sealed (the only moment the server sees its
// plaintext): it gathers evidence, lets package policy decide, and
// explains every verdict in the delivery trace.
//
// At the first RCPT of a transaction, in parallel: SPF (RFC 7208, with
// blitiri.com.ar/go/spf) for the MAIL FROM domain or, for the null
// sender, the HELO name; the client's address in the configured DNS
// lists (block lists weigh positive, allow lists such as DNSWL negative,
// Spamhaus' 127.255.255.x error answers ignored); the envelope domain in
// the domain lists; the client's country from a country zone (127.0.x.y
// = ISO 3166-1 numeric code x·256+y). Then, for each recipient, the
// allow and deny lists of the organisation and of the receiving account
// (networks, sender domains with their subdomains, addresses; an allow
// entry naming a sender counts only once SPF or, at the end of the data,
// aligned DKIM has authenticated it) and greylisting.
//
// At the end of the data: DKIM (go-msgauth; the header must fit in 256
// KiB, at most five signatures), DMARC (RFC 7489: the From domain's
// record or its organisational domain's, by the public suffix list;
// relaxed or strict alignment of SPF and DKIM; pct sampling), the From
// domain's lists, and the classifier's score for each account. ARC is
// not verified (no maintained Go library does it).
//
// Implementation notes:
//   - A DNS failure never lets through what its answer could have
//     refused: SPF temperror, a silent block list whose weight alone
//     reaches the refusal score, an unreachable country zone while
//     countries are refused, an unreadable DMARC record (or DKIM key)
//     when nothing else aligned: all defer with 451 4.4.3. A list too
//     light to refuse on its own is noted in the trace and skipped.
//   - The Authentication-Results field (RFC 8601) uses Options.Hostname
//     as authserv-id; fields from outside that claim it, and fields
//     named X-Spam-*, are left out of every copy (Plan.Strip), so a
//     sender cannot forge our verdicts. Values from outside are reduced
//     to letters, digits and ".-_@" before they go into a header.
//   - One reply answers the data for every recipient: the message is
//     refused only when every account's verdict refuses; an account
//     whose verdict refuses while another accepts gets its copy in Junk.
//     A deferral of any account defers the message.
//   - Greylisting keys are SHA-256 hashes of (client /24 or /64, sender,
//     recipient) and of the client network; a store failure lets mail
//     through (greylisting only delays).
//   - The allow and deny lists are read from the store at most every 30
//     s, at once after RulesChanged; a failing store keeps the last
//     snapshot.
//   - Trace records carry envelope addresses, the client's address and
//     HELO name, the replies, and the reasons: results, domains, zone
//     names and weights, list entries, scores and the classifier's top
//     weights by token class, never a token, a subject or a body.
//   - A Tx is used by one goroutine; the Checker is safe for concurrent
//     use and holds no lock while it asks the DNS.
package inbound
