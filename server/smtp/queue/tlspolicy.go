package queue

import (
	"context"
	"crypto/tls"
)

// TLSPolicy decides, for each host a delivery is about to try, what TLS
// that host must offer. The delivery engine asks it once per connection
// attempt, before it connects; MTA-STS (RFC 8461), DANE (RFC 7672) and
// REQUIRETLS (RFC 8689) implement it, configured by cmd/sealmail. Without one (Options.TLSPolicy nil) delivery is
// opportunistic: STARTTLS when the host offers it, without certificate
// checks, and plaintext otherwise — except for REQUIRETLS messages,
// which then cannot be delivered and bounce.
//
// Implementations must be safe for concurrent use and cache what they
// fetch (policies, TLSA records): the engine calls Require for every
// attempt.
type TLSPolicy interface {
	// Require returns what TLS delivery to q.Host needs. An error means
	// the requirement cannot be known now (a policy fetch or DNS lookup
	// failed temporarily): the engine tries the next host and, if none
	// is left, retries later; the error's text goes to the delivery
	// trace (no message content in it, please).
	Require(ctx context.Context, q TLSQuery) (TLSRequirement, error)
}

// TLSQuery is one host the engine is about to try.
type TLSQuery struct {
	// Domain is the recipients' domain (A-labels, lower case). Empty for
	// the smarthost, which is never asked about.
	Domain string
	// Host is the host name about to be tried (A-labels, lower case, no
	// trailing dot): an MX host, the domain itself under RFC 5321 §5.1's
	// fallback (Implicit set), or a transport's host (Transport set).
	Host string
	// Port is the TCP port (25 for MX delivery).
	Port int
	// MXAuthentic: the MX answer that named Host was validated by the
	// resolver (DNSSEC; RFC 7672 §2.2 requires it for DANE).
	MXAuthentic bool
	// Implicit: Host is the domain itself, there being no MX record.
	Implicit bool
	// Transport: Host comes from outbound.transports, not from DNS.
	Transport bool
	// RequireTLS: the message was submitted with REQUIRETLS (RFC 8689
	// §4.2.1): it may go only over TLS verified by MTA-STS or DANE, to
	// a host that offers REQUIRETLS (the engine checks the offer).
	RequireTLS bool
	// TLSOptional: the message carries "TLS-Required: No" (RFC 8689 §5).
	TLSOptional bool
}

// Policy names, as the trace shows them.
const (
	PolicyNone     = "none"     // no TLS: the host offered none and none was required
	PolicySTARTTLS = "STARTTLS" // opportunistic STARTTLS, certificate not checked
	PolicyMTASTS   = "MTA-STS"  // RFC 8461, enforce mode
	PolicyDANE     = "DANE"     // RFC 7672
)

// TLSRequirement is TLSPolicy's answer for one host.
type TLSRequirement struct {
	// Policy names the policy in force for the trace: PolicyMTASTS,
	// PolicyDANE, or PolicySTARTTLS for opportunistic TLS (the trace
	// then says PolicyNone if the host offered no STARTTLS). Other
	// values are shown as they are ("MTA-STS testing").
	Policy string
	// Skip, if not empty, says this host must not be tried at all (an
	// MX that an MTA-STS enforce policy does not list); the text goes to
	// the trace and, if no host is left, to the bounce or delay notice.
	Skip string
	// Required: the host must not get the message without TLS, and the
	// handshake must pass Config's verification. A host that offers no
	// STARTTLS, or fails the handshake, is then a failure for this host
	// (temporary: the engine tries the next, then retries later).
	Required bool
	// Config is the TLS client configuration for this host, certificate
	// verification included (PKIX against Host for MTA-STS, TLSA through
	// VerifyConnection for DANE); the engine sets ServerName to Host if
	// it is empty. nil: the engine's opportunistic configuration (no
	// verification, TLS 1.2 or later).
	Config *tls.Config
	// Report, if not nil, is called once after the attempt with what
	// happened (TLS-RPT, RFC 8460, or an MTA-STS policy in testing
	// mode). It must not block.
	Report func(TLSResult)
}

// TLSResult is what became of one attempt, for TLSRequirement.Report.
type TLSResult struct {
	Host    string
	IP      string // the address connected to; "" if no connection was made
	Offered bool   // the host offered STARTTLS
	Version uint16 // negotiated TLS version, 0 without TLS
	// Err is the handshake or verification failure, nil if TLS was
	// established (or not attempted).
	Err error
}
