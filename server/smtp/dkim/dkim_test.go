package dkim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/sealmail/sealmail/server/smtp"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
)

var ctxBg = context.Background()

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)} }

func openKeys(t *testing.T, dir string, c *clock, wait time.Duration) *Keys {
	t.Helper()
	k, err := Open(Options{Dir: dir, Now: c.now, PublishWait: wait})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// publish puts the records of k's published selectors of domain into the
// test DNS server, replacing what was there.
func publish(t *testing.T, dns *dnstest.Server, k *Keys, domain string) {
	t.Helper()
	recs, err := k.Records(domain)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range recs {
		if err := dns.Replace(s.DNSName(), 16, txtRR(s)); err != nil {
			t.Fatal(err)
		}
	}
}

// txtRR renders a selector's record as one zone-file line, its text split
// into strings of at most 255 bytes (RFC 1035 §3.3.14).
func txtRR(s Selector) string {
	txt := s.TXT()
	var parts []string
	for len(txt) > 255 {
		parts = append(parts, `"`+txt[:255]+`"`)
		txt = txt[255:]
	}
	parts = append(parts, `"`+txt+`"`)
	return s.DNSName() + ". 300 IN TXT " + strings.Join(parts, " ")
}

func newResolver(t *testing.T, dns *dnstest.Server) *resolver.Resolver {
	t.Helper()
	r, err := resolver.New(resolver.Options{Server: dns.Addr, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// verify checks every DKIM signature of msg against DNS and returns the
// domains of those that verified, failing on any that did not.
func verify(t *testing.T, r *resolver.Resolver, msg []byte) []string {
	t.Helper()
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(msg), &msgauth.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(ctxBg, name) },
	})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var ok []string
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("signature of %s does not verify: %v", v.Domain, v.Err)
			continue
		}
		ok = append(ok, v.Domain)
	}
	return ok
}

// verifyErrs returns each signature's verification error (nil if it
// verified), in order.
func verifyErrs(t *testing.T, r *resolver.Resolver, msg []byte) []error {
	t.Helper()
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(msg), &msgauth.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(ctxBg, name) },
	})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var out []error
	for _, v := range vs {
		out = append(out, v.Err)
	}
	return out
}

// signatureFields returns the unfolded DKIM-Signature fields of msg.
func signatureFields(msg []byte) []string {
	hdr, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	var out []string
	for _, f := range strings.Split(strings.ReplaceAll(string(hdr), "\r\n ", " "), "\r\n") {
		if strings.HasPrefix(f, "DKIM-Signature:") {
			out = append(out, f)
		}
	}
	return out
}

func selectorsIn(msg []byte) []string {
	var out []string
	for _, f := range signatureFields(msg) {
		_, rest, _ := strings.Cut(f, " s=")
		sel, _, _ := strings.Cut(rest, ";")
		out = append(out, sel)
	}
	return out
}

const testMessage = "From: Alice <alice@example.org>\r\n" +
	"To: bob@example.net\r\n" +
	"Subject: the plan\r\n" +
	"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n" +
	"Message-ID: <1@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Meet at   noon.  \r\n" +
	"\r\n\r\n"

func sign(t *testing.T, s *Signer, m *smtp.Submitted, msg string) []byte {
	t.Helper()
	fields, err := s.Transform(ctxBg, m, strings.NewReader(msg))
	if err != nil {
		t.Fatalf("transform: %v", err)
	}
	return append(fields, msg...)
}

var alice = &smtp.Submitted{ID: "t1", Account: "alice@example.org", From: "alice@example.org",
	HeaderFrom: []string{"alice@example.org"}, Recipients: []string{"bob@example.net"}}

// TestSignVerify: a submitted message gets an RSA and an Ed25519
// signature that go-msgauth's verifier accepts with the keys served by
// DNS; the h= list oversigns as documented.
func TestSignVerify(t *testing.T) {
	c := newClock()
	k := openKeys(t, t.TempDir(), c, 0)
	made, err := k.Ensure([]string{"Example.ORG", "example.net"})
	if err != nil || len(made) != 4 {
		t.Fatalf("ensure: %v, %d keys", err, len(made))
	}
	for _, s := range made {
		if s.Status != Active {
			t.Errorf("first key %s is %s, want active", s.Name, s.Status)
		}
	}
	// A second Ensure makes nothing.
	if again, err := k.Ensure([]string{"example.org"}); err != nil || len(again) != 0 {
		t.Fatalf("second ensure: %v, %d keys", err, len(again))
	}
	dns := dnstest.Start(t)
	publish(t, dns, k, "example.org")
	r := newResolver(t, dns)
	s, err := NewSigner(SignerOptions{Keys: k})
	if err != nil {
		t.Fatal(err)
	}
	signed := sign(t, s, alice, testMessage)
	sels := verify(t, r, signed)
	if len(sels) != 2 {
		t.Fatalf("%d signatures verified, want 2:\n%s", len(sels), signed)
	}
	fields := signatureFields(signed)
	if !strings.Contains(fields[0], "a=rsa-sha256") || !strings.Contains(fields[1], "a=ed25519-sha256") {
		t.Errorf("want RSA then Ed25519:\n%s", strings.Join(fields, "\n"))
	}
	for _, f := range fields {
		_, h, _ := strings.Cut(f, " h=")
		h, _, _ = strings.Cut(h, ";")
		want := "From:From:Reply-To:Subject:Subject:To:To:Cc:Date:Date:Message-ID:Message-ID:MIME-Version:MIME-Version:Content-Type:Content-Type"
		if h != want {
			t.Errorf("h=%s\nwant %s", h, want)
		}
		if !strings.Contains(f, "c=relaxed/relaxed") || !strings.Contains(f, "d=example.org") {
			t.Errorf("field %s", f)
		}
	}
	for _, line := range strings.Split(string(signed), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d bytes", len(line))
		}
	}

	// Fields added in transit break both signatures: a second From, a Cc
	// (absent when signed), a Reply-To.
	for _, add := range []string{"From: mallory@example.com\r\n", "Cc: eve@example.com\r\n", "Reply-To: eve@example.com\r\n"} {
		hdr, body, _ := bytes.Cut(signed, []byte("\r\n\r\n"))
		tampered := append(append(append(slicesClone(hdr), "\r\n"...), add...), append([]byte("\r\n"), body...)...)
		for i, err := range verifyErrs(t, r, tampered) {
			if err == nil {
				t.Errorf("adding %q: signature %d still verifies", strings.TrimSpace(add), i)
			}
		}
	}
	// A changed body breaks them too.
	tampered := bytes.Replace(signed, []byte("noon"), []byte("nine"), 1)
	for i, err := range verifyErrs(t, r, tampered) {
		if err == nil {
			t.Errorf("changed body: signature %d still verifies", i)
		}
	}
	// Received fields added in transit do not (they are not signed).
	relayed := append([]byte("Received: from mx by relay; Tue, 01 Dec 2026 10:00:01 +0000\r\n"), signed...)
	if n := len(verify(t, r, relayed)); n != 2 {
		t.Errorf("after a Received field, %d verify", n)
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// TestSignDomains: the From: domain signs; without keys there, the
// envelope sender's; without either, nothing (and no error).
func TestSignDomains(t *testing.T) {
	k := openKeys(t, t.TempDir(), newClock(), 0)
	if _, err := k.Ensure([]string{"example.org", "example.net"}); err != nil {
		t.Fatal(err)
	}
	s, _ := NewSigner(SignerOptions{Keys: k})
	domainsOf := func(m *smtp.Submitted) string {
		out, err := s.Transform(ctxBg, m, strings.NewReader(testMessage))
		if err != nil {
			t.Fatal(err)
		}
		var ds []string
		for _, f := range signatureFields(append(out, "\r\n"...)) {
			_, rest, _ := strings.Cut(f, " d=")
			d, _, _ := strings.Cut(rest, ";")
			ds = append(ds, d)
		}
		return strings.Join(ds, " ")
	}
	for _, tc := range []struct {
		m    smtp.Submitted
		want string
	}{
		{smtp.Submitted{From: "a@example.net", HeaderFrom: []string{"a@example.org"}}, "example.org example.org"},
		{smtp.Submitted{From: "a@example.net", HeaderFrom: []string{"a@example.org", "b@example.net", "c@example.org"}},
			"example.org example.org example.net example.net"},
		{smtp.Submitted{From: "a@example.net", HeaderFrom: []string{"a@other.example"}}, "example.net example.net"},
		{smtp.Submitted{From: "", HeaderFrom: []string{"a@other.example"}}, ""},
	} {
		if got := domainsOf(&tc.m); got != tc.want {
			t.Errorf("%v: signed by %q, want %q", tc.m.HeaderFrom, got, tc.want)
		}
	}
}

// TestSignEdgeCases: a message without body, a header too large, an
// absurd run of empty lines, and a context that ends.
func TestSignEdgeCases(t *testing.T) {
	k := openKeys(t, t.TempDir(), newClock(), 0)
	if _, err := k.Ensure([]string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t)
	publish(t, dns, k, "example.org")
	r := newResolver(t, dns)
	s, _ := NewSigner(SignerOptions{Keys: k, MaxHeaderBytes: 4096, MaxBlankRun: 1000})

	// No body, no empty line: signed as with an empty body; verifiers
	// see the empty line when the message is sent with the fields.
	headerOnly := "From: alice@example.org\r\nSubject: x\r\n"
	out, err := s.Transform(ctxBg, alice, strings.NewReader(headerOnly))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(verify(t, r, append(append(out, headerOnly...), "\r\n"...))); n != 2 {
		t.Errorf("header-only message: %d signatures verify", n)
	}

	big := "From: alice@example.org\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\nbody\r\n"
	if _, err := s.Transform(ctxBg, alice, strings.NewReader(big)); !errors.Is(err, replyHeaderTooLarge) {
		t.Errorf("large header: %v", err)
	}
	// Just under the run limit signs; just over is refused.
	for _, tc := range []struct {
		run  int
		want error
	}{{998, nil}, {1002, replyBlankRun}} {
		msg := "From: alice@example.org\r\n\r\nfirst\r\n" + strings.Repeat("\r\n", tc.run/2) + "last\r\n"
		out, err := s.Transform(ctxBg, alice, strings.NewReader(msg))
		if !errors.Is(err, tc.want) {
			t.Errorf("run of %d: %v, want %v", tc.run, err, tc.want)
		}
		if err == nil && len(verify(t, r, append(out, msg...))) != 2 {
			t.Errorf("run of %d: does not verify", tc.run)
		}
	}
	var rep *smtp.Reply
	if _, err := s.Transform(ctxBg, alice, strings.NewReader(big)); !errors.As(err, &rep) || rep.Code != 552 {
		t.Errorf("large header: not a 552 reply: %v", err)
	}

	ctx, cancel := context.WithCancel(ctxBg)
	cancel()
	if _, err := s.Transform(ctx, alice, strings.NewReader(testMessage)); !errors.Is(err, context.Canceled) {
		t.Errorf("ended context: %v", err)
	}
}

// messageReader produces a message of about size bytes without holding
// it: a header, then 76-character lines.
type messageReader struct {
	hdr  *strings.Reader
	left int64
	line []byte
	pos  int
}

func newMessageReader(size int64) *messageReader {
	return &messageReader{
		hdr:  strings.NewReader("From: alice@example.org\r\nTo: bob@example.net\r\nSubject: large\r\n\r\n"),
		left: size,
		line: []byte(strings.Repeat("0123456789abcdef", 5)[:74] + "\r\n"),
	}
}

func (m *messageReader) Read(p []byte) (int, error) {
	if m.hdr.Len() > 0 {
		return m.hdr.Read(p)
	}
	if m.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && m.left > 0 {
		room := p[n:]
		if int64(len(room)) > m.left {
			room = room[:m.left]
		}
		c := copy(room, m.line[m.pos:])
		n += c
		m.pos = (m.pos + c) % len(m.line)
		m.left -= int64(c)
	}
	return n, nil
}

// TestSignLargeBoundedMemory signs a 64 MiB message read as a stream
// and checks that the heap never grew by anything near its size; the
// signatures verify over the same stream.
func TestSignLargeBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB of hashing")
	}
	k := openKeys(t, t.TempDir(), newClock(), 0)
	if _, err := k.Ensure([]string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t)
	publish(t, dns, k, "example.org")
	r := newResolver(t, dns)
	s, _ := NewSigner(SignerOptions{Keys: k})
	const size = 32 << 20

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	fields, err := s.Transform(ctxBg, alice, newMessageReader(size))
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap grew by at most %d KiB while signing %d MiB", grew>>10, size>>20)
	if grew > 8<<20 {
		t.Errorf("heap grew by %d MiB signing a %d MiB message: not streaming", grew>>20, size>>20)
	}
	vs, err := msgauth.VerifyWithOptions(io.MultiReader(bytes.NewReader(fields), newMessageReader(size)), &msgauth.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(ctxBg, name) },
	})
	if err != nil || len(vs) != 2 || vs[0].Err != nil || vs[1].Err != nil {
		t.Fatalf("verify large message: %v %v", err, vs)
	}
}

// TestRotation walks a domain's keys through a rotation: the new pair is
// pending (published, not signing) until DNS shows it for PublishWait;
// then it signs, and the old pair is retiring: still published, and mail
// it signed still verifies, until RetireAfter, when it is retired and
// its private keys are gone.
func TestRotation(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	k := openKeys(t, dir, c, time.Hour)
	first, err := k.Ensure([]string{"example.org"})
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t)
	publish(t, dns, k, "example.org")
	r := newResolver(t, dns)
	s, _ := NewSigner(SignerOptions{Keys: k})
	oldMail := sign(t, s, alice, testMessage)
	oldSels := selectorsIn(oldMail)

	if _, err := k.Activate("example.org"); err != nil {
		t.Fatal(err)
	}
	// The command line is another process: its own Keys on the same
	// directory.
	cli := openKeys(t, dir, c, time.Hour)
	c.add(time.Minute)
	next, err := cli.Rotate("example.org")
	if err != nil || len(next) != 2 {
		t.Fatalf("rotate: %v %v", err, next)
	}
	if _, err := cli.Rotate("example.org"); !errors.Is(err, ErrPending) {
		t.Errorf("second rotate: %v, want ErrPending", err)
	}
	statuses := func() map[string]Status {
		all, err := k.List("example.org")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]Status{}
		for _, s := range all {
			m[s.Name] = s.Status
		}
		return m
	}
	for _, s := range next {
		if st := statuses()[s.Name]; st != Pending {
			t.Errorf("new %s is %s", s.Name, st)
		}
	}
	recs, _ := k.Records("example.org")
	if len(recs) != 4 {
		t.Errorf("%d records to publish during rotation, want 4", len(recs))
	}
	// Pending keys do not sign; the server still uses the old ones.
	if got := selectorsIn(sign(t, s, alice, testMessage)); strings.Join(got, " ") != strings.Join(oldSels, " ") {
		t.Errorf("signed with %v before the new keys were published, want %v", got, oldSels)
	}
	// Not yet in DNS: nothing happens.
	if act, err := k.CheckPending(ctxBg, r); err != nil || len(act) != 0 {
		t.Fatalf("check before publishing: %v %v", act, err)
	}
	// Published: seen, but the wait runs.
	publish(t, dns, k, "example.org")
	if act, err := k.CheckPending(ctxBg, r); err != nil || len(act) != 0 {
		t.Fatalf("check right after publishing: %v %v", act, err)
	}
	c.add(30 * time.Minute)
	if act, _ := k.CheckPending(ctxBg, r); len(act) != 0 {
		t.Fatalf("activated after 30 minutes: %v", act)
	}
	c.add(31 * time.Minute)
	act, err := k.CheckPending(ctxBg, r)
	if err != nil || len(act) != 2 {
		t.Fatalf("check after the wait: %v %v", act, err)
	}
	newMail := sign(t, s, alice, testMessage)
	newSels := selectorsIn(newMail)
	if newSels[0] != next[0].Name && newSels[0] != next[1].Name {
		t.Errorf("signed with %v after rotation, want %s and %s", newSels, next[0].Name, next[1].Name)
	}
	for _, sel := range oldSels {
		if st := statuses()[sel]; st != Retiring {
			t.Errorf("old %s is %s, want retiring", sel, st)
		}
	}
	// During the grace period old and new mail both verify.
	if n := len(verify(t, r, oldMail)); n != 2 {
		t.Errorf("old mail: %d signatures verify during the grace period", n)
	}
	if n := len(verify(t, r, newMail)); n != 2 {
		t.Errorf("new mail: %d signatures verify", n)
	}
	for _, s := range first {
		if _, err := os.Stat(filepath.Join(dir, "example.org", s.Name+".key")); err != nil {
			t.Errorf("retiring key file: %v", err)
		}
	}
	// After the grace period the old selectors are retired: their records
	// may go, and their private keys are destroyed.
	c.add(DefaultRetireAfter)
	for _, sel := range oldSels {
		if st := statuses()[sel]; st != Retired {
			t.Errorf("old %s is %s after the grace period", sel, st)
		}
	}
	if recs, _ := k.Records("example.org"); len(recs) != 2 {
		t.Errorf("%d records to publish after retirement, want 2", len(recs))
	}
	if _, err := k.CheckPending(ctxBg, r); err != nil {
		t.Fatal(err)
	}
	for _, s := range first {
		if _, err := os.Stat(filepath.Join(dir, "example.org", s.Name+".key")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("retired key file %s still there: %v", s.Name, err)
		}
		if !strings.Contains((Selector{Status: Retired, Algorithm: s.Algorithm}).TXT(), "p=") ||
			strings.HasSuffix(s.TXT(), "p=") {
			t.Errorf("TXT of %s: %s", s.Name, s.TXT())
		}
	}
	// A third rotation the same day gets fresh names.
	c.add(time.Minute)
	third, err := k.Rotate("example.org")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range third {
		for _, old := range append(first, next...) {
			if s.Name == old.Name {
				t.Errorf("selector name %s reused", s.Name)
			}
		}
	}
}

// TestCheckPendingRecordWithdrawn: a record that disappears during the
// wait restarts it; a failed lookup leaves it alone.
func TestCheckPendingRecordWithdrawn(t *testing.T) {
	c := newClock()
	k := openKeys(t, t.TempDir(), c, time.Hour)
	if _, err := k.Ensure([]string{"example.org"}); err != nil {
		t.Fatal(err)
	}
	next, err := k.Rotate("example.org")
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t)
	r := newResolver(t, dns)
	publish(t, dns, k, "example.org")
	k.CheckPending(ctxBg, r)
	c.add(50 * time.Minute)
	// The lookup fails: the sighting stands.
	dns.Fail(next[0].DNSName(), 2) // SERVFAIL
	if _, err := k.CheckPending(ctxBg, r); !errors.Is(err, resolver.ErrTemporary) {
		t.Errorf("failed lookup: %v", err)
	}
	dns.Fail(next[0].DNSName(), 0)
	// Withdrawn: the sighting is forgotten.
	dns.Replace(next[1].DNSName(), 16)
	k.CheckPending(ctxBg, r)
	publish(t, dns, k, "example.org")
	c.add(20 * time.Minute)
	if act, _ := k.CheckPending(ctxBg, r); len(act) != 0 {
		t.Fatalf("activated although the record was withdrawn 20 minutes ago: %v", act)
	}
	c.add(time.Hour)
	if act, _ := k.CheckPending(ctxBg, r); len(act) != 2 {
		t.Fatalf("not activated an hour after republishing: %v", act)
	}
	// A record with another key does not count.
	if recordHolds("v=DKIM1; k=ed25519; p=AAAA", next[1]) || recordHolds(next[1].TXT(), next[0]) {
		t.Error("recordHolds accepts another key")
	}
	if !recordHolds(strings.ReplaceAll(next[0].TXT(), "p=", "p = ")+" ;", next[0]) {
		t.Error("recordHolds refuses spaces")
	}
}

// TestKeysFiles: the store's files are private, a damaged state or key
// file is an error (not an empty store), and keys from another store
// are refused.
func TestKeysFiles(t *testing.T) {
	dir := t.TempDir()
	k := openKeys(t, dir, newClock(), 0)
	made, err := k.Ensure([]string{"example.org"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stateFile, lockFile, filepath.Join("example.org", made[0].Name+".key")} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", p, fi.Mode().Perm())
		}
	}
	// Swap the two key files: each names the wrong key.
	a := filepath.Join(dir, "example.org", made[0].Name+".key")
	b := filepath.Join(dir, "example.org", made[1].Name+".key")
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	os.WriteFile(a, bb, 0o600)
	os.WriteFile(b, ab, 0o600)
	k2 := openKeys(t, dir, newClock(), 0)
	s, _ := NewSigner(SignerOptions{Keys: k2})
	if _, err := s.Sign(ctxBg, []string{"example.org"}, strings.NewReader(testMessage)); err == nil ||
		!strings.Contains(err.Error(), "does not hold") {
		t.Errorf("swapped key files: %v", err)
	}
	os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o600)
	if _, err := Open(Options{Dir: dir}); err == nil {
		t.Error("damaged state file opens")
	}
	if _, err := k2.List(""); err == nil {
		t.Error("damaged state file lists")
	}
}
