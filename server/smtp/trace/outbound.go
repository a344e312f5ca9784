package trace

import "time"

// Outbound is one step of a message on its way out, as the outbound
// queue records it. Which fields are set depends on Event.
type Outbound struct {
	// Event is what happened: EventSubmitted, EventQueued, EventAttempt,
	// EventDelivered, EventDeferred, EventFailed, EventDelayed,
	// EventBounced, EventExpired, EventDropped, EventRetried.
	Event string `json:"event"`
	// Entry is the queue entry (one message for one destination).
	Entry string `json:"entry,omitempty"`
	// Account is the local account that submitted the message.
	Account string `json:"account,omitempty"`
	From    string `json:"from,omitempty"` // envelope sender; "" for <>
	// Rcpts are the recipients the step concerns.
	Rcpts  []string `json:"rcpts,omitempty"`
	Local  []string `json:"local,omitempty"` // submitted: recipients delivered here
	Domain string   `json:"domain,omitempty"`
	Size   int64    `json:"size,omitempty"` // message bytes
	// Route is how the destination is reached: "mx", "smarthost",
	// "transport".
	Route string `json:"route,omitempty"`
	// Host, IP and Port are the server tried; MXPref its MX preference.
	Host   string `json:"host,omitempty"`
	IP     string `json:"ip,omitempty"`
	Port   int    `json:"port,omitempty"`
	MXPref int    `json:"mx_pref,omitempty"`
	// TLS is the negotiated version ("TLS 1.3"), "" for none; Policy
	// the TLS policy in force (none, STARTTLS, MTA-STS, DANE);
	// Verified whether the certificate was verified.
	TLS      string `json:"tls,omitempty"`
	Policy   string `json:"policy,omitempty"`
	Verified bool   `json:"verified,omitempty"`
	// Stage is the step that decided (connect, greeting, ehlo,
	// starttls, auth, mail, rcpt, data).
	Stage string `json:"stage,omitempty"`
	// Reply is the remote server's exact reply, lines joined by "\n".
	Reply string `json:"reply,omitempty"`
	// Error is a local failure (DNS, connection, TLS) in words.
	Error string `json:"error,omitempty"`
	// Status is the enhanced status code the step ends with (RFC 3463).
	Status string `json:"status,omitempty"`
	// Attempt counts the entry's attempts, from 1.
	Attempt int `json:"attempt,omitempty"`
	// Next is when the entry is tried again (deferred).
	Next time.Time `json:"next,omitzero"`
	// DSN names the notice sent (its transaction id), and To where.
	DSN string `json:"dsn,omitempty"`
	To  string `json:"to,omitempty"`
	// Duration of the step.
	Duration time.Duration `json:"duration,omitempty"`
}

// Outbound events.
const (
	EventSubmitted = "submitted" // a client submitted the message
	EventQueued    = "queued"    // an entry was queued for a destination
	EventAttempt   = "attempt"   // one connection to one host
	EventDelivered = "delivered" // recipients accepted by the remote server
	EventDeferred  = "deferred"  // recipients failed temporarily; tried again at Next
	EventFailed    = "failed"    // recipients failed for good
	EventDelayed   = "delayed"   // a delay notice went to the sender
	EventBounced   = "bounced"   // a failure notice went to the sender
	EventExpired   = "expired"   // the lifetime ran out
	EventDropped   = "dropped"   // the operator dropped the entry
	EventRetried   = "retried"   // the operator asked for an attempt now
)
