package smtp

import (
	"context"
	"io"
)

// Transform is one step of the submission path: it runs on every message
// a client submits, after the server's own checks (the authenticated
// account owns the envelope sender and every From: address) and
// additions (Received, and Message-ID and Date when missing), before any
// copy is sealed for a local recipient or queued for a remote one. DKIM
// signing and the Autocrypt header are transforms, configured by
// cmd/sealmail.
//
// A transform only adds header fields at the top of the message: it
// returns them, and the server prepends them to every copy it stores
// and sends, so no transform rewrites the message or holds it in
// memory. Transforms run in the order of SubmissionOptions.Transforms;
// each reads the fields the earlier ones added, so a DKIM signer placed
// last signs an Autocrypt field placed before it.
type Transform interface {
	// Transform reads the message from msg (header section and body,
	// CRLF line ends, the fields of earlier transforms first) and
	// returns the complete header fields to prepend, each ending in
	// CRLF, no line longer than 998 bytes (RFC 5322 §2.1.1); nil adds
	// nothing. msg may be as large as Limits.MessageBytes: read it as a
	// stream. ctx ends when the client goes away or the server is cut
	// off at shutdown.
	//
	// An error that is a *Reply is sent to the client as it is (a
	// transform may refuse a message, 5xx, or defer it, 4xx); any other
	// error is logged and the client gets 451 4.3.0. Either way nothing
	// is stored or queued.
	Transform(ctx context.Context, m *Submitted, msg io.Reader) ([]byte, error)
}

// Submitted describes a message being submitted, for transforms. It is
// read-only for them.
type Submitted struct {
	ID         string   // transaction id: in the Received field, the logs and the queue
	Account    string   // the authenticated account, canonical address
	From       string   // envelope sender, canonical; "" for <>
	HeaderFrom []string // the From: field's addresses, canonical, each the account's or an alias of it
	Recipients []string // envelope recipients, canonical, in RCPT order
	UTF8       bool     // MAIL … SMTPUTF8 (RFC 6531)
	// RequireTLS is MAIL … REQUIRETLS (RFC 8689 §4): the message may
	// only travel over verified TLS.
	RequireTLS bool
	// TLSOptional is a "TLS-Required: No" field in the header (RFC 8689
	// §5): the sender asks that TLS policies be relaxed for it.
	TLSOptional bool
}

// TransformFunc adapts a function to Transform.
type TransformFunc func(ctx context.Context, m *Submitted, msg io.Reader) ([]byte, error)

// Transform implements Transform.
func (f TransformFunc) Transform(ctx context.Context, m *Submitted, msg io.Reader) ([]byte, error) {
	return f(ctx, m, msg)
}
