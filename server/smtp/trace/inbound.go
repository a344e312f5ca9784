package trace

// Inbound is the MX's verdict on an arriving message (one transaction),
// as the inbound policy (server/smtp/inbound) records it: the outcome,
// the reply, and every check behind it. No subject, no body, no token
// of the spam classifier.
type Inbound struct {
	// Result is "delivered" (to INBOX, or some copies to Junk), "junk"
	// (every copy to Junk), "refused" or "deferred".
	Result string `json:"result"`
	// Reply is the reply that ended it ("554 5.7.1 …").
	Reply string `json:"reply,omitempty"`
	// IP and Helo are the client's address and HELO name.
	IP   string `json:"ip,omitempty"`
	Helo string `json:"helo,omitempty"`
	// From is the envelope sender, "" for <>; Rcpts the recipients the
	// record is about (refused at RCPT, or accepted for the message).
	From  string   `json:"from,omitempty"`
	Rcpts []string `json:"rcpts,omitempty"`
	// Reasons are the checks and their outcomes, in order.
	Reasons []Reason `json:"reasons,omitempty"`
}

// Reason is one check of an inbound verdict.
type Reason struct {
	// Check names it: "spf", "dkim", "dmarc", "dnsbl", "country",
	// "allow", "deny", "greylist", "spam", "rcpt", "verdict".
	Check string `json:"check"`
	// Result is its outcome: "pass", "fail", "listed", a country code,
	// "p=0.97" for the spam probability, "junk" for a verdict.
	Result string `json:"result"`
	// Detail says more without content: domains, zones and the address
	// asked, list entries, the classifier's top weights by token class.
	Detail string `json:"detail,omitempty"`
	// Score is what it added to the score.
	Score float64 `json:"score,omitempty"`
}
