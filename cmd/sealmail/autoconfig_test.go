package main

import (
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// setenv sets environment variables ("NAME=value") for later runs,
// replacing earlier values of the same name.
func (te *testEnv) setenv(kvs ...string) {
	for _, kv := range kvs {
		name, _, _ := strings.Cut(kv, "=")
		te.unsetenv(name)
		te.env = append(te.env, kv)
	}
}

// unsetenv removes environment variables for later runs.
func (te *testEnv) unsetenv(names ...string) {
	for _, name := range names {
		out := te.env[:0]
		for _, kv := range te.env {
			if n, _, _ := strings.Cut(kv, "="); n != name {
				out = append(out, kv)
			}
		}
		te.env = out
	}
}

// acServer is one server element of config-v1.1.xml as a client reads it.
type acServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}

type acDoc struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID       string     `xml:"id,attr"`
		Domain   []string   `xml:"domain"`
		Incoming []acServer `xml:"incomingServer"`
		Outgoing []acServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

// getAutoconfig fetches path from the running server's HTTPS listener as
// host, returning the status and body.
func getAutoconfig(t *testing.T, s *server, client *http.Client, host, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", "https://"+s.addr("https")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	return resp.StatusCode, body
}

// portOf is the port of a "host:port" the server announced.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("announced address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n == 0 {
		t.Fatalf("announced address %q has no port", addr)
	}
	return n
}

// TestServeAutoconfig runs the binary with autoconfig.submission set (both
// TLS modes) and checks the served config-v1.1.xml: sealmail's IMAP
// listeners, then its POP3 ones, at hostname on the ports actually bound, and the configured
// outgoing server. Without the key the file is 404 (TestServeListeners).
func TestServeAutoconfig(t *testing.T) {
	for _, tc := range []struct {
		submission, mode string
		wantHost         string
		wantPort         int
		wantSocket       string
	}{
		{"Relay.Example.NET:465", "tls", "relay.example.net", 465, "SSL"},
		{"smtp.example.org:0587", "starttls", "smtp.example.org", 587, "STARTTLS"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			te := newTestEnv(t)
			te.setenv(
				"SEALMAIL_HOSTNAME=mail.example.org",
				"SEALMAIL_AUTOCONFIG_SUBMISSION="+tc.submission,
				"SEALMAIL_AUTOCONFIG_SUBMISSION_TLS="+tc.mode,
			)
			s := te.serve()
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: trustSelfSigned(t, te.dataDir)}, Timeout: 30 * time.Second}
			imaps, imap := portOf(t, s.addr("imaps")), portOf(t, s.addr("imap"))
			pop3s, pop3 := portOf(t, s.addr("pop3s")), portOf(t, s.addr("pop3"))

			for _, hp := range []struct{ host, path string }{
				{"autoconfig.example.org", "/.well-known/autoconfig/mail/config-v1.1.xml"},
				{"autoconfig.example.org", "/mail/config-v1.1.xml?emailaddress=alice%40example.org"},
				{"example.org", "/.well-known/autoconfig/mail/config-v1.1.xml"},
			} {
				code, body := getAutoconfig(t, s, client, hp.host, hp.path)
				if code != http.StatusOK {
					t.Fatalf("GET %s%s: status %d\n%s\n%s", hp.host, hp.path, code, body, s.logs())
				}
				var doc acDoc
				if err := xml.Unmarshal(body, &doc); err != nil {
					t.Fatalf("GET %s%s: %v\n%s", hp.host, hp.path, err, body)
				}
				if doc.Version != "1.1" || doc.Provider.ID != "example.org" || len(doc.Provider.Domain) != 1 || doc.Provider.Domain[0] != "example.org" {
					t.Errorf("provider: version %q id %q domains %v", doc.Version, doc.Provider.ID, doc.Provider.Domain)
				}
				wantIn := []acServer{
					{"imap", "mail.example.org", imaps, "SSL", "password-cleartext", "%EMAILADDRESS%"},
					{"imap", "mail.example.org", imap, "STARTTLS", "password-cleartext", "%EMAILADDRESS%"},
					{"pop3", "mail.example.org", pop3s, "SSL", "password-cleartext", "%EMAILADDRESS%"},
					{"pop3", "mail.example.org", pop3, "STARTTLS", "password-cleartext", "%EMAILADDRESS%"},
				}
				if len(doc.Provider.Incoming) != len(wantIn) {
					t.Fatalf("incoming servers %+v, want %+v", doc.Provider.Incoming, wantIn)
				}
				for i, w := range wantIn {
					if doc.Provider.Incoming[i] != w {
						t.Errorf("incoming %d = %+v, want %+v", i, doc.Provider.Incoming[i], w)
					}
				}
				wantOut := acServer{"smtp", tc.wantHost, tc.wantPort, tc.wantSocket, "password-cleartext", "%EMAILADDRESS%"}
				if len(doc.Provider.Outgoing) != 1 || doc.Provider.Outgoing[0] != wantOut {
					t.Errorf("outgoing servers %+v, want [%+v]", doc.Provider.Outgoing, wantOut)
				}
				if strings.Contains(string(body), "127.0.0.1") || strings.Contains(strings.ToLower(string(body)), "plain<") {
					t.Errorf("autoconfig names the listen address or plaintext:\n%s", body)
				}
			}
			// A domain that is not configured gets nothing.
			if code, _ := getAutoconfig(t, s, client, "autoconfig.example.net", "/mail/config-v1.1.xml"); code != http.StatusNotFound {
				t.Errorf("autoconfig for an unconfigured domain: status %d, want 404", code)
			}
			if err := s.stop(t, syscall.SIGTERM); err != nil {
				t.Fatalf("serve after SIGTERM: %v\n%s", err, s.logs())
			}

			// `dns` publishes the autoconfig name and the submission SRV
			// record once the IMAP ports are fixed ones (":0" in the test
			// environment is known only when bound).
			te.setenv("SEALMAIL_LISTEN_IMAPS=127.0.0.1:993", "SEALMAIL_LISTEN_IMAP=127.0.0.1:143")
			out := te.ok("", "dns", "example.org").stdout
			srv := "_submissions._tcp.example.org."
			if tc.mode == "starttls" {
				srv = "_submission._tcp.example.org."
			}
			for _, want := range []string{
				"autoconfig.example.org.",
				"CNAME mail.example.org.",
				srv,
				strconv.Itoa(tc.wantPort) + " " + tc.wantHost + ".",
				"_imaps._tcp.example.org.",
				"993 mail.example.org.",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("dns lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "Autoconfig needs") {
				t.Errorf("dns says autoconfig is off:\n%s", out)
			}
		})
	}
}

// TestAutoconfigConfigErrors runs the binary with bad autoconfig values:
// each is refused, naming the key, by the commands that read the
// configuration. TestConfigErrors has the full list of bad values.
func TestAutoconfigConfigErrors(t *testing.T) {
	te := newTestEnv(t)
	for _, tc := range []struct {
		submission, mode, want string
	}{
		{"relay.example.net:465", "", "autoconfig.submission_tls: required"},
		{"relay.example.net:25", "plain", `autoconfig.submission_tls: want tls or starttls, got "plain"`},
		{"relay.example.net:0", "tls", "autoconfig.submission: bad port"},
	} {
		te.setenv("SEALMAIL_AUTOCONFIG_SUBMISSION="+tc.submission, "SEALMAIL_AUTOCONFIG_SUBMISSION_TLS="+tc.mode)
		te.fails(exitError, tc.want, "", "config", "show")
		te.fails(exitError, tc.want, "", "dns", "example.org")
		te.fails(exitError, tc.want, "", "serve")
	}
	// From the file; an empty environment variable is set and wins.
	cfg := writeFile(t, te.dir, "ac.yaml", "autoconfig:\n  submission: relay.example.net:465\n  submission_tls: ssl\n")
	te.setenv("SEALMAIL_AUTOCONFIG_SUBMISSION=", "SEALMAIL_AUTOCONFIG_SUBMISSION_TLS=")
	te.ok("", "--config", cfg, "config", "show")
	te.unsetenv("SEALMAIL_AUTOCONFIG_SUBMISSION", "SEALMAIL_AUTOCONFIG_SUBMISSION_TLS")
	te.fails(exitError, `autoconfig.submission_tls: want tls or starttls, got "ssl"`, "", "--config", cfg, "config", "show")
	cfg = writeFile(t, te.dir, "ac2.yaml", "autoconfig:\n  imap: mail.example.org:993\n")
	te.fails(exitError, "unknown key autoconfig.imap", "", "--config", cfg, "config", "show")
	te.setenv("SEALMAIL_AUTOCONFIG_SUBMISION=relay.example.net:465")
	te.fails(exitError, "SEALMAIL_AUTOCONFIG_SUBMISION matches no configuration key", "", "config", "show")
}
