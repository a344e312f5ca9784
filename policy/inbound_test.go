package policy

import (
	"testing"

	"github.com/sealmail/sealmail/store"
)

func TestInboundRcpt(t *testing.T) {
	p, err := NewInbound(InboundOptions{RefuseCountries: []string{"kp"}, CountryScores: []string{"RU:4"}})
	if err != nil {
		t.Fatal(err)
	}
	allowIP := &RuleRef{ID: 1, Action: store.FilterAllow, Kind: store.FilterCIDR, Value: "192.0.2.0/24"}
	deny := &RuleRef{ID: 2, Action: store.FilterDeny, Kind: store.FilterDomain, Value: "bad.example"}
	zen := ListHit{Zone: "zen.example", Target: "192.0.2.9", Weight: 10, Answer: "127.0.0.2"}
	small := ListHit{Zone: "small.example", Target: "192.0.2.9", Weight: 3, Answer: "127.0.0.2"}
	wl := ListHit{Zone: "wl.example", Target: "192.0.2.9", Weight: -5, Answer: "127.0.10.2"}
	for _, c := range []struct {
		name   string
		client ClientEvidence
		rcpt   RecipientEvidence
		action Action
		cause  Cause
	}{
		{"clean", ClientEvidence{SPF: SPFPass}, RecipientEvidence{}, Accept, CauseNone},
		{"listed", ClientEvidence{Lists: []ListHit{zen}}, RecipientEvidence{}, Reject, CauseList},
		{"listed but allowlisted too", ClientEvidence{Lists: []ListHit{zen, wl}}, RecipientEvidence{}, Accept, CauseNone},
		{"small lists add up", ClientEvidence{Lists: []ListHit{small, small, small, small}}, RecipientEvidence{}, Reject, CauseList},
		{"country score and a list", ClientEvidence{Lists: []ListHit{small, small}, Country: "RU"}, RecipientEvidence{}, Reject, CauseList},
		{"refused country", ClientEvidence{Country: "KP"}, RecipientEvidence{}, Reject, CauseCountry},
		{"country zone down while countries are refused", ClientEvidence{CountryFailed: true}, RecipientEvidence{}, Defer, CauseDNS},
		{"a zone that could refuse is down", ClientEvidence{ListFailures: []ListHit{zen}}, RecipientEvidence{}, Defer, CauseDNS},
		{"a small zone is down", ClientEvidence{ListFailures: []ListHit{small}}, RecipientEvidence{}, Accept, CauseNone},
		{"spf fail", ClientEvidence{SPF: SPFFail, SPFDomain: "foreign.example"}, RecipientEvidence{}, Reject, CauseSPF},
		{"spf temperror", ClientEvidence{SPF: SPFTempError}, RecipientEvidence{}, Defer, CauseDNS},
		{"allowed client passes lists and spf", ClientEvidence{SPF: SPFFail, Lists: []ListHit{zen}}, RecipientEvidence{OrgAllow: allowIP}, Accept, CauseNone},
		{"allow does not pass spf fail of our domain", ClientEvidence{SPF: SPFFail, SPFOwn: true}, RecipientEvidence{UserAllow: allowIP}, Reject, CauseSPF},
		{"organisation deny beats a user's allow", ClientEvidence{}, RecipientEvidence{OrgDeny: deny, UserAllow: allowIP}, Reject, CauseDeny},
		{"user allow beats user deny", ClientEvidence{}, RecipientEvidence{UserAllow: allowIP, UserDeny: deny}, Accept, CauseNone},
		{"user deny beats organisation allow", ClientEvidence{}, RecipientEvidence{UserDeny: deny, OrgAllow: allowIP}, Reject, CauseDeny},
	} {
		v := p.Rcpt(&c.client, &c.rcpt)
		if v.Action != c.action || v.Cause != c.cause {
			t.Errorf("%s: %v/%q, want %v/%q (reasons %+v)", c.name, v.Action, v.Cause, c.action, c.cause, v.Reasons)
		}
	}
}

func TestInboundData(t *testing.T) {
	p, err := NewInbound(InboundOptions{DMARCMarkOnly: []string{"lenient.example"}})
	if err != nil {
		t.Fatal(err)
	}
	allow := &RuleRef{ID: 7, Action: store.FilterAllow, Kind: store.FilterDomain, Value: "partner.example"}
	spam := &SpamScore{Probability: 0.99}
	ham := &SpamScore{Probability: 0.01}
	grey := &SpamScore{Probability: 0.8} // 6 points
	for _, c := range []struct {
		name    string
		e       MessageEvidence
		domain  string
		allowed *RuleRef
		spam    *SpamScore
		action  Action
		cause   Cause
	}{
		{"ham", MessageEvidence{}, "ours.example", nil, ham, Accept, CauseNone},
		{"spam in between goes to junk", MessageEvidence{}, "ours.example", nil, grey, Junk, CauseNone},
		{"spam plus a listed client is refused", MessageEvidence{RcptScore: 6}, "ours.example", nil, spam, Reject, CauseSpam},
		{"allowed partner passes scoring", MessageEvidence{RcptScore: 6}, "ours.example", allow, spam, Accept, CauseNone},
		{"dmarc reject", MessageEvidence{DMARC: DMARCFail, DMARCPolicy: "reject", DMARCSampled: true}, "ours.example", nil, ham, Reject, CauseDMARC},
		{"dmarc reject not sampled", MessageEvidence{DMARC: DMARCFail, DMARCPolicy: "reject"}, "ours.example", nil, ham, Accept, CauseNone},
		{"dmarc reject for a mark-only domain", MessageEvidence{DMARC: DMARCFail, DMARCPolicy: "reject", DMARCSampled: true}, "lenient.example", nil, ham, Accept, CauseNone},
		{"dmarc quarantine", MessageEvidence{DMARC: DMARCFail, DMARCPolicy: "quarantine", DMARCSampled: true}, "ours.example", nil, ham, Junk, CauseNone},
		{"dmarc reject beats an allow entry", MessageEvidence{DMARC: DMARCFail, DMARCPolicy: "reject", DMARCSampled: true}, "ours.example", allow, ham, Reject, CauseDMARC},
		{"dns failure defers", MessageEvidence{Failures: []string{"DMARC"}}, "ours.example", nil, ham, Defer, CauseDNS},
	} {
		v := p.Data(&c.e, Verdict{}, c.domain, c.allowed, c.spam)
		if v.Action != c.action || v.Cause != c.cause {
			t.Errorf("%s: %v/%q, want %v/%q (score %g, reasons %+v)", c.name, v.Action, v.Cause, c.action, c.cause, v.Score, v.Reasons)
		}
	}
}

func TestInboundOptions(t *testing.T) {
	for _, opt := range []InboundOptions{
		{SPFFail: "drop"},
		{DMARCQuarantine: MarkReject},
		{JunkScore: 20, RejectScore: 10},
		{RefuseCountries: []string{"XX"}},
		{RefuseCountries: []string{"EU"}},
		{CountryScores: []string{"DE"}},
		{CountryScores: []string{"DE:x"}},
		{DMARCMarkOnly: []string{"bad domain"}},
	} {
		if _, err := NewInbound(opt); err == nil {
			t.Errorf("NewInbound(%+v) accepted", opt)
		}
	}
	if c := CountryFromNumeric(276); c != "DE" {
		t.Errorf("CountryFromNumeric(276) = %q", c)
	}
	if c := CountryFromNumeric(999); c != "" {
		t.Errorf("CountryFromNumeric(999) = %q", c)
	}
}
