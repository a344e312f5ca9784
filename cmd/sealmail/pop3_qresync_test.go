package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"testing"
)

// qresyncAfterPOP3Script is a QRESYNC client (Python's imaplib) that
// keeps the mod-sequence it was last told, as RFC 7162 §3.2 asks: the
// newest MODSEQ or HIGHESTMODSEQ, where a HIGHESTMODSEQ response code may
// also lower it. With INBOX selected it expunges UID 2, then flags UID 1
// (the mod-sequence it is told is above the expunge's), and while POP3
// (poplib) deletes UID 3 it fetches by sequence number (which holds the
// removal back), then drops the connection without hearing of it. A second connection resynchronises with SELECT (QRESYNC …) from
// what the first kept. It prints what it kept and the resync's VANISHED
// and FETCH responses.
const qresyncAfterPOP3Script = `import imaplib, json, poplib, re, ssl, sys
ihost, iport, phost, pport, ca, user, pw = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)

class Client(imaplib.IMAP4_SSL):
    """Keeps every line the server sends, in order."""
    def __init__(self):
        self.lines = []
        super().__init__(ihost, int(iport), ssl_context=ctx)
    def _get_line(self):
        line = super()._get_line()
        self.lines.append(line.decode())
        return line
    def take(self):
        out, self.lines = self.lines, []
        return out

def check(res):
    typ, data = res
    if typ != "OK":
        sys.exit("imap: %s %s" % (typ, data))

kept = 0
told = []  # the first session's lines that carry a mod-sequence
def follow(lines):
    global kept
    for l in lines:
        if "MODSEQ" in l:
            told.append(l)
        m = re.search(r"\[HIGHESTMODSEQ (\d+)\]", l)
        if m:
            kept = int(m.group(1))
        m = re.search(r"MODSEQ \((\d+)\)", l)
        if m:
            kept = max(kept, int(m.group(1)))

a = Client()
check(a.login(user, pw))
check(a.enable("QRESYNC"))
a.take()
check(a.select("INBOX"))
lines = a.take()
follow(lines)
uidvalidity = int(next(re.search(r"\[UIDVALIDITY (\d+)\]", l).group(1) for l in lines if "UIDVALIDITY" in l))
check(a.uid("STORE", "2", "+FLAGS", "(\\Deleted)"))
check(a.uid("EXPUNGE", "2"))
# A change after the expunge tells the client a mod-sequence above it.
check(a.uid("STORE", "1", "+FLAGS", "(\\Flagged)"))
follow(a.take())

p = poplib.POP3_SSL(phost, int(pport), context=ctx)
p.user(user)
p.pass_(pw)
# The maildrop holds UIDs 1, 3, 4, 5: message 2 is UID 3.
dele = p.dele(2).decode()
quit = p.quit().decode()

check(a.fetch("1", "(FLAGS)"))
follow(a.take())
a.shutdown()

b = Client()
check(b.login(user, pw))
check(b.enable("QRESYNC"))
b.take()
check(b._simple_command("SELECT", "INBOX", "(QRESYNC (%d %d))" % (uidvalidity, kept)))
resync = [l for l in b.take() if "VANISHED" in l or "FETCH" in l]
b.logout()
print(json.dumps({"dele": dele, "quit": quit, "kept": kept, "told": told, "resync": resync}))
`

// TestQResyncAfterPOP3Delete: a POP3 DELE that an IMAP session has to
// hold back (it arrives while the client works by sequence numbers) lets
// the QRESYNC client keep the mod-sequence it had, since the removal came
// after it; the client's next resync names exactly that removal and
// nothing else. Before, the session knew no mod-sequence of a POP3
// removal and sent the client back to SELECT's HIGHESTMODSEQ, and its
// resync repeated the client's own EXPUNGE of UID 2 and flag change of
// UID 1.
func TestQResyncAfterPOP3Delete(t *testing.T) {
	const alice = "alice@example.org"
	py := python3(t)
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", alice, "--password-stdin")
	s := te.serve()
	for i := range 5 {
		if err := sendTo(s.addr("smtp"), []string{alice}, fmt.Sprintf("Subject: %d\r\n\r\nmessage %d\r\n", i+1, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	ca := caFile(t, te.dataDir, t.TempDir())
	script := writeFile(t, te.dir, "qresync.py", qresyncAfterPOP3Script)
	ihost, iport, _ := net.SplitHostPort(s.addr("imaps"))
	phost, pport, _ := net.SplitHostPort(s.addr("pop3s"))
	out, err := exec.Command(py, script, ihost, iport, phost, pport, ca, alice, alicePW).CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib/poplib: %v\n%s\n%s", err, out, s.logs())
	}
	var got struct {
		Dele, Quit string
		Kept       uint64
		Told       []string
		Resync     []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("script output %q: %v", out, err)
	}
	t.Logf("told %q, kept %d; resync %q", got.Told, got.Kept, got.Resync)
	if got.Quit != "+OK Bye (1 message deleted)" {
		t.Fatalf("POP3: DELE %q, QUIT %q", got.Dele, got.Quit)
	}
	if want := []string{"* VANISHED (EARLIER) 3"}; !slices.Equal(got.Resync, want) {
		t.Errorf("resync after the POP3 DELE: %q, want %q", got.Resync, want)
	}
}
