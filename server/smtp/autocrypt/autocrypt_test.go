package autocrypt

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/smtp"
	"github.com/sealmail/sealmail/store"
)

var ctxBg = context.Background()

type fakeAccounts struct {
	mu    sync.Mutex
	accts map[string]store.PublicAccount
	calls int
}

func (f *fakeAccounts) PublicAccount(_ context.Context, addr string) (store.PublicAccount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	a, ok := f.accts[addr]
	if !ok {
		return a, fmt.Errorf("no %s: %w", addr, store.ErrNotFound)
	}
	return a, nil
}

// newAccount makes an account with a real key of type kt.
func newAccount(t *testing.T, addr string, kt crypto.KeyType) store.PublicAccount {
	t.Helper()
	sec, err := crypto.NewAccount(addr, []byte("pw"), crypto.AccountOptions{KeyType: kt, KDF: crypto.TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	return store.PublicAccount{Address: addr, PublicKey: sec.PublicKey, KeyFingerprint: sec.Fingerprint}
}

const msg = "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nbody\r\n"

func submitted(from ...string) *smtp.Submitted {
	return &smtp.Submitted{ID: "t", Account: "alice@example.org", From: "alice@example.org", HeaderFrom: from}
}

// parseField unfolds an Autocrypt field and returns addr and the key.
func parseField(t *testing.T, field []byte) (string, *openpgp.Entity, []byte) {
	t.Helper()
	s := string(field)
	if !strings.HasPrefix(s, "Autocrypt: ") || !strings.HasSuffix(s, "\r\n") {
		t.Fatalf("field %q", s)
	}
	for _, line := range strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d bytes", len(line))
		}
	}
	v := strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(s, "Autocrypt: "), "\r\n"), "\r\n ", "")
	attrs := map[string]string{}
	for _, part := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		attrs[k] = val
	}
	raw, err := base64.StdEncoding.DecodeString(attrs["keydata"])
	if err != nil {
		t.Fatalf("keydata: %v", err)
	}
	e, err := openpgp.ReadEntity(packet.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("keydata does not parse: %v", err)
	}
	if len(attrs) != 2 {
		t.Errorf("attributes %v, want addr and keydata", attrs)
	}
	return attrs["addr"], e, raw
}

// TestHeader: the header carries the sender's key, reduced to one user
// ID and the encryption subkey, and it can be encrypted to; for each key
// type sealmail makes.
func TestHeader(t *testing.T) {
	for _, kt := range []crypto.KeyType{crypto.KeyEd25519, crypto.KeyRSA3072, crypto.KeyV6Ed25519} {
		t.Run(kt.String(), func(t *testing.T) {
			acct := newAccount(t, "alice@example.org", kt)
			accts := &fakeAccounts{accts: map[string]store.PublicAccount{acct.Address: acct}}
			h, err := New(Options{Accounts: accts})
			if err != nil {
				t.Fatal(err)
			}
			field, err := h.Transform(ctxBg, submitted("alice@example.org"), strings.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			addr, e, raw := parseField(t, field)
			if addr != "alice@example.org" {
				t.Errorf("addr %q", addr)
			}
			if len(e.Identities) != 1 || len(e.Subkeys) != 1 {
				t.Errorf("%d identities, %d subkeys", len(e.Identities), len(e.Subkeys))
			}
			if fmt.Sprintf("%x", e.PrimaryKey.Fingerprint) != acct.KeyFingerprint {
				t.Errorf("fingerprint %x, want %s", e.PrimaryKey.Fingerprint, acct.KeyFingerprint)
			}
			// What a recipient's client does with it: encrypt.
			pk, err := crypto.ParsePublicKey(raw)
			if err != nil {
				t.Fatalf("keydata is not an encryption key: %v", err)
			}
			w, err := pk.Seal(io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("reply"))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			// Cached: the same bytes without parsing again.
			again, _ := h.Transform(ctxBg, submitted("alice@example.org"), strings.NewReader(msg))
			if !bytes.Equal(again, field) {
				t.Error("second header differs")
			}
		})
	}
}

// TestHeaderWhenNot: no header for several From addresses, an alias, a
// message that has one, an account that turned it off or is gone.
func TestHeaderWhenNot(t *testing.T) {
	acct := newAccount(t, "alice@example.org", crypto.KeyEd25519)
	accts := &fakeAccounts{accts: map[string]store.PublicAccount{acct.Address: acct}}
	h, _ := New(Options{Accounts: accts, MaxHeaderBytes: 4096})
	for name, tc := range map[string]struct {
		m   *smtp.Submitted
		msg string
	}{
		"two From addresses": {submitted("alice@example.org", "carol@example.org"), msg},
		"an alias":           {submitted("sales@example.org"), msg},
		"own Autocrypt":      {submitted("alice@example.org"), "From: alice@example.org\r\nautocrypt: addr=alice@example.org; keydata=AAAA\r\n\r\nx\r\n"},
		"huge header":        {submitted("alice@example.org"), "From: alice@example.org\r\nX: " + strings.Repeat("y", 5000) + "\r\n\r\n"},
	} {
		field, err := h.Transform(ctxBg, tc.m, strings.NewReader(tc.msg))
		if err != nil || field != nil {
			t.Errorf("%s: %q %v", name, field, err)
		}
	}
	// Autocrypt in the body is not a header.
	field, err := h.Transform(ctxBg, submitted("alice@example.org"), strings.NewReader(msg+"Autocrypt: x\r\n"))
	if err != nil || field == nil {
		t.Errorf("Autocrypt in the body suppressed the header: %v", err)
	}
	// Turned off.
	acct.AutocryptOff = true
	accts.accts[acct.Address] = acct
	if field, err := h.Transform(ctxBg, submitted("alice@example.org"), strings.NewReader(msg)); err != nil || field != nil {
		t.Errorf("off: %q %v", field, err)
	}
	// Gone.
	delete(accts.accts, acct.Address)
	if field, err := h.Transform(ctxBg, submitted("alice@example.org"), strings.NewReader(msg)); err != nil || field != nil {
		t.Errorf("no account: %q %v", field, err)
	}
}

// TestMinimalKeyRefuses: a key without the address, or revoked.
func TestMinimalKeyRefuses(t *testing.T) {
	acct := newAccount(t, "alice@example.org", crypto.KeyEd25519)
	if _, err := MinimalKey(acct.PublicKey, "bob@example.org", time.Now()); err == nil {
		t.Error("key for another address accepted")
	}
	if _, err := MinimalKey([]byte("junk"), "alice@example.org", time.Now()); err == nil {
		t.Error("junk accepted")
	}
	// Revoke the key (a test-only entity with its private key).
	e, err := openpgp.NewEntity("", "", "alice@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RevokeKey(packet.KeyCompromised, "lost", nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := MinimalKey(buf.Bytes(), "alice@example.org", time.Now()); err == nil {
		t.Error("revoked key accepted")
	}
}

// TestKeydataGnuPG: GnuPG imports the key from the header as one user ID
// and an encryption subkey, and encrypts to it.
func TestKeydataGnuPG(t *testing.T) {
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		t.Fatal("gpg is needed for this test (apt-get install gnupg)")
	}
	acct := newAccount(t, "alice@example.org", crypto.KeyEd25519)
	raw, err := MinimalKey(acct.PublicKey, "alice@example.org", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	home, err := os.MkdirTemp("/tmp", "ac") // short: gpg-agent's socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--kill", "all")
		kill.Env = append(os.Environ(), "GNUPGHOME="+home)
		kill.Run()
		os.RemoveAll(home)
	})
	os.Chmod(home, 0o700)
	run := func(stdin []byte, args ...string) string {
		t.Helper()
		cmd := exec.Command(gpg, append([]string{"--batch", "--no-tty"}, args...)...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home, "LC_ALL=C")
		cmd.Stdin = bytes.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, errb.String())
		}
		return out.String()
	}
	run(raw, "--import")
	listing := run(nil, "--with-colons", "--list-keys", "alice@example.org")
	var uids, subs int
	for _, line := range strings.Split(listing, "\n") {
		switch {
		case strings.HasPrefix(line, "uid:"):
			uids++
		case strings.HasPrefix(line, "sub:"):
			subs++
			if f := strings.Split(line, ":"); len(f) < 12 || !strings.Contains(f[11], "e") {
				t.Errorf("subkey cannot encrypt: %s", line)
			}
		}
	}
	if uids != 1 || subs != 1 {
		t.Errorf("gpg sees %d user IDs and %d subkeys:\n%s", uids, subs, listing)
	}
	enc := run([]byte("reply"), "--trust-model", "always", "--encrypt", "--recipient", "alice@example.org")
	if len(enc) == 0 {
		t.Error("gpg did not encrypt")
	}
}
