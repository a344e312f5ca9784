package keyserver

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/sealmail/sealmail/policy"
)

// tbConfig is what Thunderbird's account setup reads from clientConfig
// 1.1 (see the field list in autoconfig.go); checkThunderbird applies its
// rules, so a file that passes would be accepted.
type tbConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID       string     `xml:"id,attr"`
		Domains  []string   `xml:"domain"`
		Display  string     `xml:"displayName"`
		Short    string     `xml:"displayShortName"`
		Incoming []tbServer `xml:"incomingServer"`
		Outgoing []tbServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type tbServer struct {
	Type     string   `xml:"type,attr"`
	Hostname string   `xml:"hostname"`
	Port     int      `xml:"port"`
	Socket   string   `xml:"socketType"`
	Auth     []string `xml:"authentication"`
	Username string   `xml:"username"`
}

func checkThunderbird(t *testing.T, body []byte) tbConfig {
	t.Helper()
	var c tbConfig
	if err := xml.Unmarshal(body, &c); err != nil {
		t.Fatalf("not XML: %v\n%s", err, body)
	}
	if c.Version != "1.1" || c.Provider.ID == "" || len(c.Provider.Domains) == 0 {
		t.Fatalf("bad clientConfig header: %+v", c)
	}
	if len(c.Provider.Incoming) == 0 || len(c.Provider.Outgoing) == 0 {
		t.Fatalf("Thunderbird needs an incoming and an outgoing server: %+v", c.Provider)
	}
	check := func(s tbServer, kind string) {
		if s.Type != kind {
			t.Errorf("server type %q, want %q", s.Type, kind)
		}
		if _, err := policy.NormalizeDomain(s.Hostname); err != nil {
			t.Errorf("hostname %q", s.Hostname)
		}
		if s.Port < 1 || s.Port > 65535 {
			t.Errorf("port %d", s.Port)
		}
		if s.Socket != "SSL" && s.Socket != "STARTTLS" {
			t.Errorf("socketType %q (plain is never acceptable)", s.Socket)
		}
		if len(s.Auth) != 1 || s.Auth[0] != "password-cleartext" {
			t.Errorf("authentication %q", s.Auth)
		}
		if s.Username != "%EMAILADDRESS%" {
			t.Errorf("username %q", s.Username)
		}
	}
	// IMAP first; POP3 only as alternatives after it.
	kind := "imap"
	for _, s := range c.Provider.Incoming {
		if s.Type == "pop3" {
			kind = "pop3"
		}
		check(s, kind)
	}
	if c.Provider.Incoming[0].Type != "imap" {
		t.Errorf("first incoming server is %q, want imap", c.Provider.Incoming[0].Type)
	}
	for _, s := range c.Provider.Outgoing {
		check(s, "smtp")
	}
	return c
}

func TestAutoconfig(t *testing.T) {
	f := newFixture(t, false)
	for _, tc := range []struct{ host, path, domain string }{
		{"autoconfig.example.org", "/mail/config-v1.1.xml?emailaddress=alice%40example.org", "example.org"},
		{"autoconfig.example.org", "/.well-known/autoconfig/mail/config-v1.1.xml", "example.org"},
		{"example.net", "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=x%40example.net", "example.net"},
	} {
		rec := f.do("GET", tc.host, tc.path)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/xml") {
			t.Fatalf("%s%s: status %d, type %q", tc.host, tc.path, rec.Code, rec.Header().Get("Content-Type"))
		}
		c := checkThunderbird(t, rec.Body.Bytes())
		if c.Provider.ID != tc.domain || c.Provider.Domains[0] != tc.domain {
			t.Errorf("%s: provider %q domains %q", tc.host, c.Provider.ID, c.Provider.Domains)
		}
		// The endpoints as configured, in order.
		in, out := c.Provider.Incoming, c.Provider.Outgoing
		if len(in) != 4 || in[0].Hostname != "mail.example.org" || in[0].Port != 993 || in[0].Socket != "SSL" ||
			in[1].Port != 143 || in[1].Socket != "STARTTLS" ||
			in[2].Type != "pop3" || in[2].Port != 995 || in[2].Socket != "SSL" ||
			in[3].Type != "pop3" || in[3].Port != 110 || in[3].Socket != "STARTTLS" {
			t.Errorf("incoming %+v", in)
		}
		if len(out) != 2 || out[0].Port != 465 || out[0].Socket != "SSL" || out[0].Hostname != "mail.example.org" ||
			out[1].Port != 587 || out[1].Socket != "STARTTLS" || out[1].Hostname != "smtp.example.org" {
			t.Errorf("outgoing %+v", out)
		}
	}
	for _, tc := range [][2]string{
		{"autoconfig.example.com", "/mail/config-v1.1.xml"},
		{"autoconfig.example.org", "/mail/config-v1.1.xml/"},
		{"autoconfig.example.org", "/mail/../mail/config-v1.1.xml"},
		{"mail.example.org", "/mail/config-v1.1.xml"},
		{"example.org", "/mail/config-v1.1.xml"},
	} {
		if rec := f.do("GET", tc[0], tc[1]); rec.Code != 404 {
			t.Errorf("%s%s: status %d, want 404", tc[0], tc[1], rec.Code)
		}
	}
}

func TestAutoconfigNeedsBothServices(t *testing.T) {
	o := testOptions(nil)
	o.Submission = nil
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{h: h}
	if rec := f.do("GET", "autoconfig.example.org", "/mail/config-v1.1.xml"); rec.Code != 404 {
		t.Fatalf("status %d, want 404 without a submission endpoint", rec.Code)
	}
}
