package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// qresyncHeldScript is a QRESYNC client (Python's imaplib) that keeps
// the mod-sequence it was last told, as RFC 7162 §3.2 asks: the newest
// MODSEQ or HIGHESTMODSEQ, where a HIGHESTMODSEQ response code may also
// lower it. With INBOX selected it expunges UID 2, then flags UID 1 (the
// mod-sequence it is told is above the expunge's), and while another
// part of the server removes messages it fetches by sequence number
// (which holds the removal back), then drops the connection without
// hearing of it. A second connection resynchronises with SELECT
// (QRESYNC …) from what the first kept. The removal is a POP3 DELE of
// message 2 (UID 3) and QUIT (arguments "pop3 HOST PORT"), or a command
// it runs (arguments "run COMMAND…"). It prints what the removal
// answered, what it kept and the resync's VANISHED and FETCH responses.
const qresyncHeldScript = `import imaplib, json, poplib, re, ssl, subprocess, sys
ihost, iport, ca, user, pw, how = sys.argv[1:7]
rest = sys.argv[7:]
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

removal = {}
if how == "pop3":
    p = poplib.POP3_SSL(rest[0], int(rest[1]), context=ctx)
    p.user(user)
    p.pass_(pw)
    # The maildrop holds UIDs 1, 3, 4, 5: message 2 is UID 3.
    removal["dele"] = p.dele(2).decode()
    removal["quit"] = p.quit().decode()
else:
    r = subprocess.run(rest, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("%s: exit %d: %s %s" % (rest, r.returncode, r.stdout, r.stderr))
    removal["ran"] = r.stdout

# UID 1 may be gone too: then NO [EXPUNGEISSUED], and the removal is
# held back all the same.
a.fetch("1", "(FLAGS)")
follow(a.take())
a.shutdown()

b = Client()
check(b.login(user, pw))
check(b.enable("QRESYNC"))
b.take()
check(b._simple_command("SELECT", "INBOX", "(QRESYNC (%d %d))" % (uidvalidity, kept)))
resync = [l for l in b.take() if "VANISHED" in l or "FETCH" in l]
b.logout()
print(json.dumps({"removal": removal, "kept": kept, "told": told, "resync": resync}))
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
	te, s := serveFiveMessages(t)
	phost, pport, _ := net.SplitHostPort(s.addr("pop3s"))
	got := runQResyncHeld(t, te, s, "pop3", phost, pport)
	if got.Removal["quit"] != "+OK Bye (1 message deleted)" {
		t.Fatalf("POP3: DELE %q, QUIT %q", got.Removal["dele"], got.Removal["quit"])
	}
	if want := []string{"* VANISHED (EARLIER) 3"}; !slices.Equal(got.Resync, want) {
		t.Errorf("resync after the POP3 DELE: %q, want %q", got.Resync, want)
	}
}

// TestQResyncAfterErase: an administrator's erasure (`sealmail
// compliance erase`, through the control socket) that an IMAP session
// has to hold back lets the QRESYNC client keep the mod-sequence it had,
// as a POP3 removal does: the store reports the mod-sequence of the
// destroying commit, and the client's next resync names exactly the
// erased messages (all but UID 2, which the client expunged itself).
// Before, the session knew no mod-sequence of the erasure and sent the
// client back to SELECT's HIGHESTMODSEQ, and the resync named UID 2 again.
func TestQResyncAfterErase(t *testing.T) {
	te, s := serveFiveMessages(t)
	got := runQResyncHeld(t, te, s, "run", binary, "compliance", "erase", "alice@example.org", "--yes", "--reason", "test")
	if !strings.Contains(got.Removal["ran"], "destroyed 4 messages") {
		t.Fatalf("compliance erase: %q", got.Removal["ran"])
	}
	if want := []string{"* VANISHED (EARLIER) 1,3:5"}; !slices.Equal(got.Resync, want) {
		t.Errorf("resync after the erasure: %q, want %q", got.Resync, want)
	}
}

// serveFiveMessages starts a server with alice@example.org, to whom five
// messages were delivered (UIDs 1 to 5).
func serveFiveMessages(t *testing.T) (*testEnv, *server) {
	t.Helper()
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve()
	for i := range 5 {
		if err := sendTo(s.addr("smtp"), []string{"alice@example.org"}, fmt.Sprintf("Subject: %d\r\n\r\nmessage %d\r\n", i+1, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	return te, s
}

// qresyncHeld is what qresyncHeldScript prints.
type qresyncHeld struct {
	Removal map[string]string
	Kept    uint64
	Told    []string
	Resync  []string
}

// runQResyncHeld runs qresyncHeldScript as alice over s's IMAPS, the
// removal made as how and rest say (see the script), in te's
// environment.
func runQResyncHeld(t *testing.T, te *testEnv, s *server, how string, rest ...string) qresyncHeld {
	t.Helper()
	py := python3(t)
	ca := caFile(t, te.dataDir, t.TempDir())
	script := writeFile(t, te.dir, "qresync.py", qresyncHeldScript)
	ihost, iport, _ := net.SplitHostPort(s.addr("imaps"))
	cmd := exec.Command(py, append([]string{script, ihost, iport, ca, "alice@example.org", alicePW, how}, rest...)...)
	cmd.Dir, cmd.Env = te.dir, te.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib: %v\n%s\n%s", err, out, s.logs())
	}
	var got qresyncHeld
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("script output %q: %v", out, err)
	}
	t.Logf("told %q, kept %d; resync %q", got.Told, got.Kept, got.Resync)
	return got
}
