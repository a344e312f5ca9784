package policy

import "strings"

// DeliveryMeta is what Classify may know of a message at delivery,
// before it is sealed: metadata and a few header values that say what
// kind of mail it is. None of it is stored; only the class is.
type DeliveryMeta struct {
	// Submission: the message came from an authenticated user of this
	// server (submission), not from another server (MX).
	Submission bool
	// Spam: the inbound filter judged the message to be spam.
	Spam bool
	// ListID, ListUnsubscribe and Precedence are the values of those
	// header fields, "" if absent (RFC 2919, RFC 2369; Precedence is
	// the de-facto "bulk"/"list"/"junk" marker).
	ListID, ListUnsubscribe, Precedence string
}

// Classify decides the class a message gets at delivery. Spam is spam;
// list and bulk mail from other servers is newsletter; everything else
// is default, which presets treat as business mail unless a mailbox's
// assignment says otherwise. Mail a user sends is never a newsletter.
func Classify(m DeliveryMeta) string {
	if m.Spam && !m.Submission {
		return ClassSpam
	}
	if m.Submission {
		return ClassDefault
	}
	if strings.TrimSpace(m.ListID) != "" || strings.TrimSpace(m.ListUnsubscribe) != "" {
		return ClassNewsletter
	}
	switch strings.ToLower(strings.TrimSpace(m.Precedence)) {
	case "bulk", "list", "junk":
		return ClassNewsletter
	}
	return ClassDefault
}
