// Package sortthread holds the algorithms of IMAP SORT and THREAD (RFC
// 5256) and SORT=DISPLAY (RFC 5957) as pure functions over plain message
// facts: base subject extraction (§2.1), the sent date (§2.2), the sort
// keys and their collation, message-ID parsing, and the REFERENCES and
// ORDEREDSUBJECT threading algorithms (§3). It reads no store and no
// message: server/imap gathers each message's facts from its sealed
// summary and hands them here, so nothing here ever sees a body.
//
// Implementation notes:
//
//   - Collation. Strings are compared by their i;unicode-casemap form
//     (RFC 5051, which I18NLEVEL=1 of RFC 5255 requires of SORT and
//     THREAD): each character titlecased, then canonically decomposed,
//     compared as octets. For ASCII that is upper case, so "_" sorts after
//     "[" as Dovecot has it. Key computes that form once per message.
//   - Ties. Every sort ends on the sequence number, ascending even under
//     REVERSE (RFC 5256 §3: REVERSE reverses its criterion only); the sent
//     date ties the same way (§2.2).
//   - Bounds. Everything is linear or n log n in the number of messages
//     except REFERENCES' loop check, which walks a container's ancestors.
//     A message's references are capped (maxRefs: the first and the
//     last ones are kept, as RFC 5322 §3.6.4 advises a writer who trims
//     them), and Thread checks its context every few hundred messages, so
//     a hostile References field costs bounded time and the caller's
//     deadline ends the rest.
package sortthread
