// Package policy decides what sealmail accepts and how long it keeps it. It
// works on metadata only and never needs a private key.
//
// Implementation notes:
//   - Address parsing here is deliberately strict: anything that could be
//     read as a route to another host (percent hack, source routes, bang
//     paths, quoted local parts hiding an '@') is not a local address.
package policy
