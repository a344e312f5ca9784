package smtp

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pythonSubmission is driven by TestSubmissionPythonSmtplib. It plays
// Thunderbird (EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT local and remote,
// DATA), then the other ways clients send: AUTH LOGIN, implicit TLS
// (SMTP_SSL), an app password, and the mistakes. Each scenario prints
// "name: ok" or the SMTP code the library reported.
const pythonSubmission = `
import smtplib, ssl, sys

host, port, tlsport, cafile, pw, app = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
MSG = b"From: Alice <alice@example.org>\r\nTo: bob@example.org, x@remote.test\r\nSubject: from python\r\n\r\nhello from smtplib\r\n"

def run(name, fn):
    try:
        fn()
        print(name + ": ok")
    except smtplib.SMTPRecipientsRefused as e:
        print(name + ": rcpt %d" % list(e.recipients.values())[0][0])
    except smtplib.SMTPResponseException as e:
        print(name + ": %d %s" % (e.smtp_code, e.smtp_error.decode(errors="replace").split(" ")[0]))
    except smtplib.SMTPNotSupportedError as e:
        print(name + ": not supported")
    sys.stdout.flush()

def ctx():
    c = ssl.create_default_context(cafile=cafile)
    c.check_hostname = False  # we dial 127.0.0.1; the chain is still verified
    return c

def thunderbird():
    with smtplib.SMTP(host, port, local_hostname="[192.0.2.7]", timeout=60) as s:
        s.ehlo()
        s.starttls(context=ctx())
        s.ehlo()
        s.login("alice@example.org", pw)
        s.sendmail("alice@example.org", ["bob@example.org", "x@remote.test"], MSG)

def login_mech():
    with smtplib.SMTP(host, port, timeout=60) as s:
        s.starttls(context=ctx())
        s.ehlo()
        s.user, s.password = "alice@example.org", pw
        s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        s.sendmail("alice@example.org", ["x@remote.test"], MSG)

def implicit():
    with smtplib.SMTP_SSL(host, tlsport, context=ctx(), timeout=60) as s:
        s.login("alice@example.org", app)
        s.sendmail("alice@example.org", ["x@remote.test"], MSG)

def plaintext_login():
    with smtplib.SMTP(host, port, timeout=60) as s:
        s.ehlo()
        s.login("alice@example.org", pw)

def no_auth():
    with smtplib.SMTP(host, port, timeout=60) as s:
        s.starttls(context=ctx())
        s.ehlo()
        s.sendmail("alice@example.org", ["x@remote.test"], MSG)

def spoof():
    with smtplib.SMTP(host, port, timeout=60) as s:
        s.starttls(context=ctx())
        s.ehlo()
        s.login("alice@example.org", pw)
        s.sendmail("bob@example.org", ["x@remote.test"], MSG.replace(b"Alice <alice", b"Bob <bob"))

def wrong():
    with smtplib.SMTP(host, port, timeout=60) as s:
        s.starttls(context=ctx())
        s.ehlo()
        s.login("alice@example.org", "not the password")

for name, fn in [("thunderbird", thunderbird), ("login_mech", login_mech), ("implicit", implicit),
                 ("plaintext_login", plaintext_login), ("no_auth", no_auth), ("spoof", spoof), ("wrong", wrong)]:
    run(name, fn)
`

// TestSubmissionPythonSmtplib runs Python's smtplib against submission:
// the Thunderbird-like session delivers to bob here and to the remote
// sink; AUTH LOGIN, implicit TLS and an app password work; AUTH without
// TLS, MAIL without AUTH, a spoofed sender and a wrong password are
// refused.
func TestSubmissionPythonSmtplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed (README lists the test prerequisites; .ci/run installs them)")
	}
	se := newSubEnv(t, subSetup{failureDelay: -1})
	ap, err := se.accts.AddAppPassword(context.Background(), "alice@example.org", []byte(testPassword), "python")
	if err != nil {
		t.Fatal(err)
	}
	tlsAddr := se.serveImplicitTLS(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "client.py")
	if err := os.WriteFile(script, []byte(pythonSubmission), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, certPEM(se.serverTLS), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(se.addr, ":")
	_, tlsPort, _ := strings.Cut(tlsAddr, ":")
	cmd := exec.Command(py, script, host, port, tlsPort, ca, testPassword, ap.Secret)
	done := make(chan struct{})
	var out []byte
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("python client hung; output:\n%s", out)
	}
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, out)
	}
	want := map[string]string{
		"thunderbird":     "ok",
		"login_mech":      "ok",
		"implicit":        "ok",
		"plaintext_login": "not supported", // AUTH is not offered before STARTTLS
		"no_auth":         "530 5.7.0",
		"spoof":           "550 5.7.1",
		"wrong":           "535 5.7.8",
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if name, res, ok := strings.Cut(line, ": "); ok {
			got[name] = res
		}
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %q, want %q", name, got[name], w)
		}
	}
	in := se.inbox("bob@example.org")
	if len(in) != 1 || !strings.Contains(in[0], "hello from smtplib") || !strings.Contains(in[0], "from [192.0.2.7] ([127.0.0.1])") {
		t.Fatalf("bob's INBOX: %q", in)
	}
	msgs := se.waitSink(t, 3)
	for _, m := range msgs {
		if m.From != "alice@example.org" || strings.Join(m.Rcpts, ",") != "x@remote.test" || !strings.Contains(string(m.Data), "hello from smtplib") {
			t.Fatalf("sink got %+v", m)
		}
	}
}

// serveImplicitTLS serves the submission server on a second,
// implicit-TLS listener and returns its address.
func (se *subEnv) serveImplicitTLS(t *testing.T) string {
	t.Helper()
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	go se.srv.Serve(tlsListener(ln, se.serverTLS))
	return ln.Addr().String()
}
