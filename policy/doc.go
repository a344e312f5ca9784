// Package policy decides what sealmail accepts and how long it keeps it. It
// works on metadata only and never needs a private key.
//
// # Retention
//
// Retention policy is data, not code. A Preset (a jurisdiction's rules,
// shipped as YAML files embedded in the binary, or an officer's own,
// parsed by ParsePreset with errors that name the line) gives, per
// retention class, a minimum and a maximum period and when they start.
// Assignments apply presets to the organisation, a domain, a user or a
// mailbox; holds and events complete the picture. Policy is one
// immutable view of all of it, and Policy.Decide the one function that
// turns a message's metadata (Subject: account, mailbox, server arrival
// time, class at delivery) into its retention (Decision): its class,
// keep-until, delete-after, whether a hold covers it, and which rules
// decided. Classify gives a message its class at delivery from
// metadata. docs/retention.md is the officer's manual; Policy's comment
// states the rules.
//
// Implementation notes:
//   - Address parsing here is deliberately strict: anything that could be
//     read as a route to another host (percent hack, source routes, bang
//     paths, quoted local parts hiding an '@') is not a local address, and
//     Recipients.Resolve reports it as relaying (ErrRelayDenied), never as
//     an unknown user.
//   - Recipients resolves an envelope recipient in this order, for the
//     address as given and then with its sub-address tag ("+tag") removed:
//     a configured alias, the configured postmaster (for postmaster@ of any
//     local domain), an account. Aliases point at accounts only (one level),
//     so resolution is bounded and cannot loop.
//   - A missing alias or postmaster target is an operator's mistake, not a
//     sender's: Resolve returns a plain error, which servers answer with a
//     temporary failure, so nothing bounces while the configuration is
//     fixed.
//   - Domains have one canonical form, NormalizeDomain's: A-labels, lower
//     case, no trailing dot (UTS #46 non-transitional mapping, IDNA2008
//     validity, STD3 ASCII rules). Configuration, recipients, accounts, WKD
//     and certificates all use it, so "bücher.example" and
//     "xn--bcher-kva.example" are the same domain wherever they are
//     written; DisplayDomain gives the U-label form for people. The local
//     part of an address is only lower-cased (RFC 6531 local parts are
//     UTF-8 and have no IDNA form).
//   - Inbound verdicts (inbound.go) are rules over evidence that
//     server/smtp/inbound gathers: SPF, DKIM and DMARC results, DNS list
//     hits and their configured weights, the client's country, the
//     allow and deny entries that matched, the classifier's score. Rcpt
//     decides each recipient before any data is read; Data decides each
//     recipient once the message is in. Scores add up (lists, country,
//     SPF softfail, content); JunkScore and RejectScore split them.
//     Allow and deny entries go in a fixed order: the organisation's
//     deny list, a recipient's allow list, the recipient's deny list,
//     the organisation's allow list. An allow entry passes lists,
//     countries, greylisting, a foreign domain's SPF fail and content
//     scoring, never an SPF fail of our own domains nor the sender
//     domain's DMARC p=reject. A check that could have refused but could
//     not ask the DNS defers (Defer, CauseDNS) instead of accepting.
//   - Decide is pure: the same Policy and Subject give the same Decision,
//     so the store can hold decisions materialised (server/retention
//     recomputes them when the policy changes) and the sweeper needs no
//     policy at all. Times are computed in the zone of the preset (or the
//     assignment) and returned in UTC; months and years keep the day of
//     the month or take the month's last day (BGB §188(3)).
//   - Nothing in a Decision is secret and nothing comes from a message's
//     content; only class ids reach the store in the clear.
package policy
