package filter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// fixture is a store with one account and its unlocked keyring.
type fixture struct {
	dir string
	st  *badgerstore.DB
	kr  *crypto.Keyring
}

const alice = "alice@example.org"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := badgerstore.Open(filepath.Join(dir, "store"), badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sec, err := crypto.NewAccount(alice, []byte("password"), crypto.AccountOptions{KDF: crypto.TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	err = st.CreateAccount(context.Background(), store.Account{
		Address: alice, KeyFingerprint: sec.Fingerprint, PublicKey: sec.PublicKey, WrappedKey: sec.WrappedKey,
		Slots: []store.Slot{{Kind: store.SlotPassword, Data: sec.Slot}},
	}, store.DefaultMailboxes)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := crypto.Unlock([][]byte{sec.Slot}, []byte("password"), sec.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kr.Wipe)
	return &fixture{dir: dir, st: st, kr: kr}
}

func msgs(texts ...string) iter.Seq2[io.Reader, error] {
	return func(yield func(io.Reader, error) bool) {
		for _, s := range texts {
			if !yield(strings.NewReader(s), nil) {
				return
			}
		}
	}
}

func letter(subject, body string) string {
	return "From: Someone <someone@sender.example>\r\nTo: alice@example.org\r\nSubject: " + subject +
		"\r\nMessage-ID: <x@sender.example>\r\nDate: Mon, 1 Jan 2026 00:00:00 +0000\r\n\r\n" + body + "\r\n"
}

var (
	spams = []string{
		letter("Cheap pills online", "Buy cheap pills now, viagra cialis discount pharmacy, click http://pills.example/buy"),
		letter("Discount pharmacy offer", "Best pharmacy prices, cheap viagra, order now at http://pills.example/order"),
		letter("You won a lottery prize", "Claim your lottery prize money now, send bank details to the winner desk"),
	}
	hams = []string{
		letter("Meeting on Tuesday", "Hi Alice, can we move the project meeting to Tuesday afternoon? Regards, Bob"),
		letter("Quarterly report draft", "Attached is the draft of the quarterly report for the board meeting"),
		letter("Lunch tomorrow", "Are you free for lunch tomorrow? The project team meets at noon"),
	}
)

func classify(t *testing.T, s *Service, msg string) *float64 {
	t.Helper()
	sc, err := s.Classify(context.Background(), strings.NewReader(msg), []string{alice})
	if err != nil {
		t.Fatal(err)
	}
	if sc[0] == nil {
		return nil
	}
	return &sc[0].Probability
}

func TestLearnAndClassify(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s, err := New(Options{Store: f.st})
	if err != nil {
		t.Fatal(err)
	}
	probe := letter("Cheap viagra pills", "Discount pharmacy, order cheap pills now at http://pills.example/")
	if p := classify(t, s, probe); p != nil {
		t.Fatalf("untrained model scored %v", *p)
	}
	if _, err := s.Learn(ctx, alice, f.kr, true, msgs(spams...)); err != nil {
		t.Fatal(err)
	}
	if p := classify(t, s, probe); p != nil {
		t.Fatalf("a model without ham scored %v", *p)
	}
	res, err := s.Learn(ctx, alice, f.kr, false, msgs(hams...))
	if err != nil || res.Messages != 3 || res.Unchanged != 0 {
		t.Fatalf("Learn ham: %+v, %v", res, err)
	}
	p := classify(t, s, probe)
	if p == nil || *p < 0.9 {
		t.Fatalf("spammy probe: %v, want > 0.9", p)
	}
	hp := classify(t, s, letter("Project meeting", "Can the team meet on Tuesday about the report? Bob"))
	if hp == nil || *hp > 0.1 {
		t.Fatalf("hammy probe: %v, want < 0.1", hp)
	}
	// Training the same message again changes nothing; training it the
	// other way undoes the first training.
	res, err = s.Learn(ctx, alice, f.kr, false, msgs(hams[0]))
	if err != nil || res.Unchanged != 1 {
		t.Fatalf("retrain: %+v, %v", res, err)
	}
	if _, err := s.Learn(ctx, alice, f.kr, true, msgs(hams...)); err != nil {
		t.Fatal(err)
	}
	sm, _ := f.st.FilterModel(ctx, alice)
	k := s.userKeys(alice)
	m, err := openModel(k, alice, sm.Data)
	if err != nil {
		t.Fatal(err)
	}
	if m.spam != 6 || m.ham != 0 {
		t.Errorf("after retraining every ham as spam: %d spam, %d ham; want 6, 0", m.spam, m.ham)
	}

	// A new service (a restart) has no key for alice until she logs in:
	// her model is sealed and scoring falls back to the organisation's
	// (none here).
	s2, _ := New(Options{Store: f.st})
	if p := classify(t, s2, probe); p != nil {
		t.Errorf("scored with a sealed personal model before login: %v", *p)
	}
	if err := s2.Unlocked(ctx, alice, f.kr); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Learn(ctx, alice, f.kr, false, msgs(letter("Lunch", "lunch with the team"))); err != nil {
		t.Fatal(err)
	}
	if p := classify(t, s2, probe); p == nil || *p < 0.9 {
		t.Errorf("after login: %v, want the personal model's verdict", p)
	}
}

func TestOrgModelAndSharing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s, _ := New(Options{Store: f.st, ShareTraining: true})
	if _, err := s.LearnOrg(ctx, true, msgs(spams...)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LearnOrg(ctx, false, msgs(hams...)); err != nil {
		t.Fatal(err)
	}
	// bob has never logged in: the organisation's model scores for him.
	sc, err := s.Classify(ctx, strings.NewReader(spams[0]), []string{"bob@example.org"})
	if err != nil || sc[0] == nil || sc[0].Probability < 0.9 {
		t.Fatalf("organisation model: %+v, %v", sc, err)
	}
	if len(sc[0].Top) == 0 || sc[0].Top[0].Class == "" {
		t.Errorf("no top weights: %+v", sc[0])
	}
	for _, w := range sc[0].Top {
		if w.Class != classSubject && w.Class != classBody && w.Class != classURL && w.Class != classFrom && w.Class != classHeader && w.Class != classMIME {
			t.Errorf("top weight class %q is not a class", w.Class)
		}
	}
	// Shared training reaches the organisation's model.
	before, _ := f.st.FilterModel(ctx, "")
	if _, err := s.Learn(ctx, alice, f.kr, true, msgs(letter("new spam", "brand new spam words"))); err != nil {
		t.Fatal(err)
	}
	after, _ := f.st.FilterModel(ctx, "")
	if after.Gen == before.Gen {
		t.Error("shared training left the organisation's model alone")
	}
}

// TestNoTokenText is the filter's canary scan: after training with
// words found nowhere else, no file of the data directory holds them,
// and the models' sealed sizes are padded.
func TestNoTokenText(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s, _ := New(Options{Store: f.st, ShareTraining: true})
	canaries := []string{"zqxcanaryalpha", "zqxcanarybeta", "zqxcanarygamma.example"}
	var texts []string
	for i := range 20 {
		texts = append(texts, letter("Subject "+canaries[0]+fmt.Sprint(i), "Body "+canaries[1]+" link http://"+canaries[2]+"/x"))
	}
	if _, err := s.Learn(ctx, alice, f.kr, true, msgs(texts...)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LearnOrg(ctx, false, msgs(texts...)); err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{"", alice} {
		m, err := f.st.FilterModel(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(m.Data) - 12 - 16; n&(n-1) != 0 || n < minPadded {
			t.Errorf("model of %q: %d plaintext bytes, want a power of two ≥ %d", owner, n, minPadded)
		}
	}
	f.st.Close()
	err := filepath.Walk(f.dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, c := range canaries {
			if bytes.Contains(bytes.ToLower(b), []byte(c)) {
				t.Errorf("%s holds %q", path, c)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestModelCorruption(t *testing.T) {
	k, err := deriveKeys(newKey())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := (&model{}).apply([]update{{msg: hash{1}, tokens: []hash{{2}, {3}}, spam: true}}, 10)
	sealed := m.seal(k, alice)
	if _, err := openModel(k, "bob@example.org", sealed); err == nil {
		t.Error("a model opened as another owner's")
	}
	sealed[len(sealed)/2] ^= 1
	if _, err := openModel(k, alice, sealed); err == nil {
		t.Error("a tampered model opened")
	}
	got, err := openModel(k, alice, m.seal(k, alice))
	if err != nil || got.spam != 1 || len(got.toks) != 2 || len(got.trained) != 1 {
		t.Errorf("round trip: %+v, %v", got, err)
	}
}

func TestTokenize(t *testing.T) {
	msg := "From: \"Big Prize\" <win@lottery.example>\r\nSubject: =?utf-8?q?Gro=C3=9Fer_Gewinn?=\r\n" +
		"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain words here\r\n" +
		"--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"PGEgaHJlZj0iaHR0cDovL3d3dy5jbGljay5leGFtcGxlL3giPkNsaWNrIG1lPC9hPg==\r\n--b--\r\n"
	got := map[token]bool{}
	for _, tk := range tokenize(strings.NewReader(msg)) {
		got[tk] = true
	}
	for _, want := range []token{
		{classSubject, "großer"}, {classSubject, "gewinn"}, {classFrom, "from:@lottery.example"}, {classFrom, "prize"},
		{classBody, "plain"}, {classBody, "words"}, {classBody, "click"}, {classURL, "www.click.example"}, {classURL, "click.example"},
		{classMIME, "type:text/html"}, {classHeader, "no-message-id"},
	} {
		if !got[want] {
			t.Errorf("missing token %+v in %v", want, got)
		}
	}
	// Garbage and huge input stay bounded.
	big := strings.Repeat("word"+strings.Repeat("x", 30)+" ", 200_000)
	if n := len(tokenize(strings.NewReader("Subject: x\r\n\r\n" + big))); n > maxTokens {
		t.Errorf("%d tokens", n)
	}
}

// TestRecreatedAccount: an account deleted and created again under the
// same address has a new filter key; the keys in memory from the old
// one must give way at the next login, not break training or scoring.
func TestRecreatedAccount(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s, _ := New(Options{Store: f.st})
	if _, err := s.Learn(ctx, alice, f.kr, true, msgs(spams...)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.DeleteAccount(ctx, alice); err != nil {
		t.Fatal(err)
	}
	sec, err := crypto.NewAccount(alice, []byte("password"), crypto.AccountOptions{KDF: crypto.TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateAccount(ctx, store.Account{Address: alice, KeyFingerprint: sec.Fingerprint, PublicKey: sec.PublicKey,
		WrappedKey: sec.WrappedKey, Slots: []store.Slot{{Kind: store.SlotPassword, Data: sec.Slot}}}, store.DefaultMailboxes); err != nil {
		t.Fatal(err)
	}
	kr, err := crypto.Unlock([][]byte{sec.Slot}, []byte("password"), sec.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Wipe()
	if err := s.Unlocked(ctx, alice, kr); err != nil {
		t.Fatalf("login of the new account: %v", err)
	}
	if _, err := s.Learn(ctx, alice, kr, true, msgs(spams...)); err != nil {
		t.Fatalf("training the new account: %v", err)
	}
	if _, err := s.Learn(ctx, alice, kr, false, msgs(hams...)); err != nil {
		t.Fatal(err)
	}
	if p := classify(t, s, spams[0]); p == nil || *p < 0.9 {
		t.Errorf("the new account's model does not score: %v", p)
	}
	m, _ := f.st.FilterModel(ctx, alice)
	got, err := openModel(s.userKeys(alice), alice, m.Data)
	if err != nil || got.spam != 3 || got.ham != 3 {
		t.Errorf("new model: %+v, %v; want 3 spam and 3 ham, none of the old account's", got, err)
	}
}
