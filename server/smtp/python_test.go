package smtp

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pythonClient is driven by TestPythonSmtplib: each scenario prints one
// line "name: result" where result is "ok" or the SMTP code the client
// library reported.
const pythonClient = `
import smtplib, ssl, sys

host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
MSG = b"From: py <py@remote.test>\r\nTo: alice@example.org\r\nSubject: from python\r\n\r\nhello from smtplib\r\n"

def run(name, fn):
    try:
        fn()
        print(name + ": ok")
    except smtplib.SMTPRecipientsRefused as e:
        code = list(e.recipients.values())[0][0]
        print(name + ": rcpt %d" % code)
    except smtplib.SMTPResponseException as e:
        print(name + ": %d %s" % (e.smtp_code, e.smtp_error.decode(errors="replace").split(" ")[0]))
    sys.stdout.flush()

def conn():
    s = smtplib.SMTP(host, port, local_hostname="py.remote.test", timeout=30)
    s.ehlo()
    return s

def deliver():
    with conn() as s:
        s.sendmail("py@remote.test", ["alice@example.org"], MSG)

def unknown():
    with conn() as s:
        s.sendmail("py@remote.test", ["nobody@example.org"], MSG)

def relay():
    with conn() as s:
        s.sendmail("py@remote.test", ["victim@elsewhere.test"], MSG)

def percent():
    with conn() as s:
        s.sendmail("py@remote.test", ["victim%elsewhere.test@example.org"], MSG)

def bang():
    with conn() as s:
        s.sendmail("py@remote.test", ["elsewhere.test!victim@example.org"], MSG)

def quoted():
    with conn() as s:
        s.sendmail("py@remote.test", ['"victim@elsewhere.test"@example.org'], MSG)

def oversize():
    with conn() as s:
        # smtplib announces SIZE when the server offers it.
        s.sendmail("py@remote.test", ["alice@example.org"], MSG + b"x" * 70000)

def oversize_unannounced():
    with conn() as s:
        s.mail("py@remote.test")
        s.rcpt("alice@example.org")
        code, msg = s.data(MSG + (b"y" * 70 + b"\r\n") * 1000)
        if code != 250:
            raise smtplib.SMTPResponseException(code, msg)

def too_many():
    with conn() as s:
        s.mail("py@remote.test")
        for r in ["alice@example.org", "bob@example.org", "carol@other.test"]:
            code, _ = s.rcpt(r)
            if code != 250:
                raise smtplib.SMTPResponseException(code, _)

def bare_lf():
    with conn() as s:
        s.mail("py@remote.test")
        s.rcpt("alice@example.org")
        # smtplib's data() fixes line endings; send raw bytes instead.
        code, _ = s.docmd("DATA")
        assert code == 354
        s.send(b"Subject: lf\r\n\r\nbody\n.\nMAIL FROM:<x@elsewhere.test>\r\n.\r\n")
        code, msg = s.getreply()
        if code != 250:
            raise smtplib.SMTPResponseException(code, msg)

def postmaster():
    # swaks --to postmaster: RCPT TO:<postmaster>, no domain (RFC 5321 §4.5.1).
    with conn() as s:
        s.sendmail("py@remote.test", ["postmaster"], MSG)

def auth():
    # The MX offers no AUTH; smtplib's login() needs it offered, so ask raw.
    with conn() as s:
        code, msg = s.docmd("AUTH", "PLAIN AGFsaWNlAHBhc3M=")
        raise smtplib.SMTPResponseException(code, msg)

def starttls():
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # we dial 127.0.0.1; the chain is still verified
    with smtplib.SMTP(host, port, local_hostname="py.remote.test", timeout=30) as s:
        s.starttls(context=ctx)
        s.ehlo()
        s.sendmail("py@remote.test", ["bob@example.org"], MSG)

for name, fn in [("deliver", deliver), ("unknown", unknown), ("relay", relay),
                 ("percent", percent), ("bang", bang), ("quoted", quoted),
                 ("oversize", oversize), ("oversize_unannounced", oversize_unannounced),
                 ("too_many", too_many), ("bare_lf", bare_lf), ("postmaster", postmaster),
                 ("auth", auth), ("starttls", starttls)]:
    run(name, fn)
`

func TestPythonSmtplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed (README lists the test prerequisites; .ci/run installs them)")
	}
	srvTLS, _ := testTLSConfig(t)
	e := newEnv(t, func(o *Options) {
		o.TLSConfig = srvTLS
		o.Limits.MessageBytes = 64 << 10
		o.Limits.Recipients = 2
		o.Postmaster = "carol@other.test"
	})
	dir := t.TempDir()
	script := filepath.Join(dir, "client.py")
	if err := os.WriteFile(script, []byte(pythonClient), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, certPEM(srvTLS), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(e.addr, ":")
	cmd := exec.Command(py, script, host, port, ca)
	done := make(chan struct{})
	var out []byte
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("python client hung; output:\n%s", out)
	}
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, out)
	}
	want := map[string]string{
		"deliver":              "ok",
		"unknown":              "rcpt 550",
		"relay":                "rcpt 550",
		"percent":              "rcpt 550",
		"bang":                 "rcpt 550",
		"quoted":               "rcpt 550",
		"oversize":             "552 5.3.4",
		"oversize_unannounced": "552 5.3.4",
		"too_many":             "452 4.5.3",
		"bare_lf":              "550 5.6.11",
		"postmaster":           "ok",
		"auth":                 "502 5.5.1",
		"starttls":             "ok",
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, res, ok := strings.Cut(line, ": ")
		if ok {
			got[name] = res
		}
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %q, want %q", name, got[name], w)
		}
	}
	c := e.counts()
	if c["alice@example.org"] != 1 || c["bob@example.org"] != 1 || c["carol@other.test"] != 1 {
		t.Errorf("stored %v, want alice 1 (plain), bob 1 (STARTTLS), carol 1 (postmaster)", c)
	}
	if m := e.inbox("bob@example.org"); len(m) != 1 || !strings.Contains(m[0], "from py.remote.test ([127.0.0.1])") || !strings.Contains(m[0], "with ESMTPS id") {
		t.Errorf("bob's message: %q", m)
	}
	// The relay attempts carry the enhanced code too.
	if !strings.Contains(e.logs.String(), `result="550 5.7.1"`) {
		t.Error("no 550 5.7.1 in the log")
	}
}
