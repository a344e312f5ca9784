package crypto

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/ecdh"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/x25519"
)

// keyTypes is every key type NewAccount makes; suites run over all of them.
var keyTypes = []KeyType{KeyEd25519, KeyRSA3072, KeyRSA4096, KeyV6Ed25519}

// account is one test account: its secrets, a parsed public key and an
// unlocked keyring.
type account struct {
	sec *AccountSecrets
	pub *PublicKey
	kr  *Keyring
	pw  []byte
}

// accountCache shares one generated account per key type across tests:
// RSA-4096 generation takes seconds. Tests must not Wipe a cached keyring;
// they unlock their own for that.
var (
	accountMu    sync.Mutex
	accountCache = map[KeyType]*account{}
)

func testAccount(t testing.TB, kt KeyType) *account {
	t.Helper()
	accountMu.Lock()
	defer accountMu.Unlock()
	if a := accountCache[kt]; a != nil {
		return a
	}
	pw := []byte("correct horse " + kt.String())
	sec, err := NewAccount("alice@example.org", pw, AccountOptions{KeyType: kt, KDF: TestKDF()})
	if err != nil {
		t.Fatalf("NewAccount(%s): %v", kt, err)
	}
	pub, err := ParsePublicKey(sec.PublicKey)
	if err != nil {
		t.Fatalf("ParsePublicKey(%s): %v", kt, err)
	}
	kr, err := Unlock([][]byte{sec.Slot}, pw, sec.WrappedKey)
	if err != nil {
		t.Fatalf("Unlock(%s): %v", kt, err)
	}
	a := &account{sec: sec, pub: pub, kr: kr, pw: pw}
	accountCache[kt] = a
	return a
}

func seal(t testing.TB, pub *PublicKey, msg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pub.Seal(&buf)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if _, err := w.Write(msg); err != nil {
		t.Fatalf("Seal write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Seal close: %v", err)
	}
	return buf.Bytes()
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTripEveryKeyType(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(kt.String(), func(t *testing.T) {
			a := testAccount(t, kt)
			if a.pub.Fingerprint() != a.sec.Fingerprint || a.kr.Fingerprint() != a.sec.Fingerprint {
				t.Fatalf("fingerprints differ: secrets %s, public %s, keyring %s", a.sec.Fingerprint, a.pub.Fingerprint(), a.kr.Fingerprint())
			}
			if a.sec.Fingerprint != strings.ToLower(a.sec.Fingerprint) {
				t.Errorf("fingerprint %q is not lower case", a.sec.Fingerprint)
			}
			wantLen := 40
			if kt == KeyV6Ed25519 {
				wantLen = 64
			}
			if len(a.sec.Fingerprint) != wantLen {
				t.Errorf("fingerprint %q has length %d, want %d", a.sec.Fingerprint, len(a.sec.Fingerprint), wantLen)
			}
			for _, size := range []int{0, 1, 100, 64 << 10, 300 << 10} {
				msg := randomBytes(t, size)
				sealed := seal(t, a.pub, msg)
				if size > 16 && bytes.Contains(sealed, msg[:16]) {
					t.Fatalf("sealed message contains plaintext")
				}
				plain, sk, err := a.kr.Open(bytes.NewReader(sealed))
				if err != nil {
					t.Fatalf("Open(%d bytes): %v", size, err)
				}
				got, err := io.ReadAll(plain)
				if err != nil {
					t.Fatalf("read opened %d bytes: %v", size, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("Open: got %d bytes, want %d", len(got), len(msg))
				}
				plain, err = a.kr.OpenWithSessionKey(bytes.NewReader(sealed), sk)
				if err != nil {
					t.Fatalf("OpenWithSessionKey: %v", err)
				}
				got, err = io.ReadAll(plain)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("OpenWithSessionKey: %d bytes, err %v; want %d bytes", len(got), err, len(msg))
				}
			}
		})
	}
}

func TestSealUsesSEIPDVersionForKey(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyV6Ed25519} {
		a := testAccount(t, kt)
		sealed := seal(t, a.pub, []byte("hello"))
		// Skip the PKESK (new-format header, tag 1) and look at the SEIPD
		// packet's version octet.
		pkeskLen, hdr := newFormatLength(t, sealed[1:])
		seipd := sealed[hdr+pkeskLen:]
		if seipd[0] != 0xC0|18 {
			t.Fatalf("%s: packet after PKESK has tag byte %#x, want SEIPD", kt, seipd[0])
		}
		// Partial-length header: one octet.
		version := seipd[2]
		want := byte(1)
		if kt == KeyV6Ed25519 {
			want = 2
		}
		if version != want {
			t.Errorf("%s: SEIPD version %d, want %d", kt, version, want)
		}
	}
}

// newFormatLength decodes a one- or two-octet new-format packet length.
func newFormatLength(t *testing.T, b []byte) (length, headerLen int) {
	t.Helper()
	switch {
	case b[0] < 192:
		return int(b[0]), 2
	case b[0] < 224:
		return (int(b[0])-192)<<8 + int(b[1]) + 192, 3
	}
	t.Fatalf("unexpected length octet %#x", b[0])
	return 0, 0
}

func TestWrongPassword(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	_, err := Unlock([][]byte{a.sec.Slot}, []byte("wrong"), a.sec.WrappedKey)
	if !errors.Is(err, ErrBadPassword) {
		t.Fatalf("Unlock with wrong password: %v, want ErrBadPassword", err)
	}
	_, err = Unlock(nil, a.pw, a.sec.WrappedKey)
	if !errors.Is(err, ErrBadPassword) {
		t.Fatalf("Unlock with no slots: %v, want ErrBadPassword", err)
	}
}

func TestSlotParamsStoredAndHonoured(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	got, err := SlotKDF(a.sec.Slot)
	if err != nil || got != TestKDF() {
		t.Fatalf("SlotKDF = %+v, %v; want %+v", got, err, TestKDF())
	}
	custom := KDFParams{Time: 2, MemoryKiB: 2048, Threads: 2}
	slot, err := a.kr.NewSlot([]byte("other"), custom)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := SlotKDF(slot); err != nil || got != custom {
		t.Fatalf("SlotKDF = %+v, %v; want %+v", got, err, custom)
	}
	if _, err := Unlock([][]byte{slot}, []byte("other"), a.sec.WrappedKey); err != nil {
		t.Fatalf("Unlock with custom-parameter slot: %v", err)
	}
	// The parameters are bound to the slot: changing them makes the slot
	// fail like a wrong password, not open with other costs.
	altered := bytes.Clone(slot)
	altered[4]++ // time 2 -> 3
	if _, err := Unlock([][]byte{altered}, []byte("other"), a.sec.WrappedKey); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("Unlock with altered parameters: %v, want ErrBadPassword", err)
	}
	// Zero parameters mean DefaultKDF().
	if testing.Short() {
		return
	}
	slot, err = a.kr.NewSlot([]byte("default"), KDFParams{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := SlotKDF(slot); got != DefaultKDF() {
		t.Fatalf("NewSlot with zero KDF stored %+v, want DefaultKDF() %+v", got, DefaultKDF())
	}
}

func TestKDFBounds(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	bad := []KDFParams{
		{Time: 0, MemoryKiB: 1024, Threads: 1},
		{Time: 1, MemoryKiB: 1024, Threads: 0},
		{Time: 1, MemoryKiB: 4, Threads: 1},
		{Time: 1, MemoryKiB: 64, Threads: 16 + 1},
		{Time: MaxKDFTime + 1, MemoryKiB: 1024, Threads: 1},
		{Time: 1, MemoryKiB: MaxKDFMemoryKiB + 1, Threads: 1},
		{Time: 64, MemoryKiB: MaxKDFMemoryKiB, Threads: 4},
	}
	for _, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", p)
		}
		if _, err := a.kr.NewSlot([]byte("x"), p); err == nil {
			t.Errorf("NewSlot(%+v) = nil error", p)
		}
		if _, err := NewAccount("bob@example.org", []byte("x"), AccountOptions{KDF: p}); err == nil {
			t.Errorf("NewAccount(KDF %+v) = nil error", p)
		}
	}
	// A slot claiming absurd parameters is refused before any work.
	huge := bytes.Clone(a.sec.Slot)
	copy(huge[1:9], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if _, err := SlotKDF(huge); err == nil {
		t.Fatal("SlotKDF accepted absurd parameters")
	}
	if _, err := Unlock([][]byte{huge}, a.pw, a.sec.WrappedKey); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("Unlock with absurd slot: %v, want ErrBadPassword", err)
	}
	for _, p := range []KDFParams{DefaultKDF(), TestKDF()} {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", p, err)
		}
	}
}

func TestMultipleSlots(t *testing.T) {
	old := []byte("old password")
	sec, err := NewAccount("carol@example.org", old, AccountOptions{KDF: TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(sec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("mail that arrived before the password change")
	sealed := seal(t, pub, msg)

	kr, err := Unlock([][]byte{sec.Slot}, old, sec.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	_, sk, err := kr.Open(bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	summary, err := kr.SealIndex([]byte("summary"), []byte("INBOX/1"))
	if err != nil {
		t.Fatal(err)
	}
	// Password change: a new slot replaces the old one; a recovery code
	// gets one more.
	newPW := []byte("new password")
	pwSlot, err := kr.NewSlot(newPW, TestKDF())
	if err != nil {
		t.Fatal(err)
	}
	code, recSlot, err := kr.NewCode(CodeRecovery, TestKDF())
	if err != nil {
		t.Fatal(err)
	}
	kr.Wipe()
	slots := [][]byte{pwSlot, recSlot}

	if _, err := Unlock(slots, old, sec.WrappedKey); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("old password after change: %v, want ErrBadPassword", err)
	}
	typed, ok := ParseCode([]byte(strings.ToLower(strings.ReplaceAll(code, "-", " "))))
	if !ok {
		t.Fatalf("ParseCode refused the typed form of %q", code)
	}
	for name, secret := range map[string][]byte{"new password": newPW, "recovery code": typed.Secret} {
		kr, err := Unlock(slots, secret, sec.WrappedKey)
		if err != nil {
			t.Fatalf("%s: Unlock: %v", name, err)
		}
		plain, err := kr.OpenWithSessionKey(bytes.NewReader(sealed), sk)
		if err != nil {
			t.Fatalf("%s: OpenWithSessionKey with stored key: %v", name, err)
		}
		if got, err := io.ReadAll(plain); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%s: old mail: %q, %v", name, got, err)
		}
		if got, err := kr.OpenIndex(summary, []byte("INBOX/1")); err != nil || string(got) != "summary" {
			t.Fatalf("%s: old index data: %q, %v", name, got, err)
		}
		kr.Wipe()
	}
}

// TestCodes: recovery codes and app passwords have their printed shape,
// name their slot, and unlock however a person types them.
func TestCodes(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	for _, tc := range []struct {
		kind   CodeKind
		groups int
		lower  bool
	}{{CodeRecovery, 8, false}, {CodeAppPassword, 5, true}} {
		code, slot, err := a.kr.NewCode(tc.kind, TestKDF())
		if err != nil {
			t.Fatal(err)
		}
		other, _, err := a.kr.NewCode(tc.kind, TestKDF())
		if err != nil || other == code {
			t.Fatalf("%v: two codes %q %q, %v", tc.kind, code, other, err)
		}
		groups := strings.Split(code, "-")
		if len(groups) != tc.groups {
			t.Fatalf("%v %q has %d groups, want %d", tc.kind, code, len(groups), tc.groups)
		}
		alphabet := crockford
		if tc.lower {
			alphabet = strings.ToLower(crockford)
		}
		for _, g := range groups {
			if len(g) != 4 || strings.Trim(g, alphabet) != "" {
				t.Fatalf("%v %q has bad group %q", tc.kind, code, g)
			}
		}
		sel, err := SlotSelector(slot)
		if err != nil {
			t.Fatal(err)
		}
		// How people type it: other case, spaces, no dashes, and the
		// look-alikes of 0 and 1.
		variants := []string{
			code,
			strings.ToLower(code),
			strings.ToUpper(code),
			" " + strings.ReplaceAll(code, "-", " ") + "\t",
			strings.ReplaceAll(code, "-", ""),
			strings.NewReplacer("0", "o", "1", "l").Replace(code),
			strings.NewReplacer("0", "O", "1", "I").Replace(code),
		}
		for _, v := range variants {
			c, ok := ParseCode([]byte(v))
			if !ok || c.Kind != tc.kind || c.Selector != sel {
				t.Fatalf("ParseCode(%q) = %+v %v; want kind %v selector %s", v, c, ok, tc.kind, sel)
			}
			kr, err := UnlockSlot(slot, c.Secret, a.sec.WrappedKey)
			if err != nil {
				t.Fatalf("%v typed as %q does not unlock: %v", tc.kind, v, err)
			}
			kr.Wipe()
			c.Wipe()
		}
		// One character off is a wrong secret, not a near miss.
		wrong := []byte(code)
		if wrong[len(wrong)-1] == '2' {
			wrong[len(wrong)-1] = '3'
		} else {
			wrong[len(wrong)-1] = '2'
		}
		c, ok := ParseCode(wrong)
		if !ok {
			t.Fatalf("ParseCode(%q) refused", wrong)
		}
		if _, err := UnlockSlot(slot, c.Secret, a.sec.WrappedKey); !errors.Is(err, ErrBadPassword) {
			t.Fatalf("wrong code: %v, want ErrBadPassword", err)
		}
	}
	for _, notCode := range []string{
		"", "correct horse battery staple", "ABCD", strings.Repeat("A", 31), strings.Repeat("A", 33),
		strings.Repeat("U", 32), "ABCD-EFGH-JKMN-PQRS-TVW!", strings.Repeat(" ", 200) + strings.Repeat("A", 20),
	} {
		if c, ok := ParseCode([]byte(notCode)); ok {
			t.Errorf("ParseCode(%q) = %+v, want not a code", notCode, c)
		}
	}
	if _, err := SlotSelector([]byte("short")); err == nil {
		t.Error("SlotSelector of a malformed slot succeeded")
	}
}

// TestCachedSecret: the cached form of M opens only with the secret it was
// made with and rebuilds a working keyring; wiping it makes it useless.
func TestCachedSecret(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	own, err := Unlock([][]byte{a.sec.Slot}, a.pw, a.sec.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := own.Cache(a.pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unlock([]byte("wrong"), a.sec.WrappedKey); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("cached unlock with a wrong secret: %v, want ErrBadPassword", err)
	}
	kr, err := c.Unlock(a.pw, a.sec.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err := kr.Open(bytes.NewReader(seal(t, a.pub, []byte("cached"))))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(plain); string(got) != "cached" {
		t.Fatalf("open with the cached keyring: %q", got)
	}
	kr.Wipe()
	other, err := NewAccount("bob@example.org", []byte("other"), AccountOptions{KDF: TestKDF()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unlock(a.pw, other.WrappedKey); err == nil || errors.Is(err, ErrBadPassword) {
		t.Fatalf("cached M against another account's wrapped key: %v, want an unwrap error", err)
	}
	c.Wipe()
	c.Wipe()
	if _, err := c.Unlock(a.pw, a.sec.WrappedKey); !errors.Is(err, ErrWiped) {
		t.Fatalf("after Wipe: %v, want ErrWiped", err)
	}
	own.Wipe()
	if _, err := own.Cache(a.pw); !errors.Is(err, ErrWiped) {
		t.Fatalf("Cache of a wiped keyring: %v", err)
	}
	if _, _, err := own.NewCode(CodeRecovery, TestKDF()); !errors.Is(err, ErrWiped) {
		t.Fatalf("NewCode of a wiped keyring: %v", err)
	}
}

func TestTamperedAndTruncated(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyRSA3072, KeyV6Ed25519} {
		t.Run(kt.String(), func(t *testing.T) {
			a := testAccount(t, kt)
			msg := randomBytes(t, 200<<10)
			sealed := seal(t, a.pub, msg)
			_, sk, err := a.kr.Open(bytes.NewReader(sealed))
			if err != nil {
				t.Fatal(err)
			}
			type opener func(r io.Reader) (io.Reader, error)
			openers := map[string]opener{
				"Open": func(r io.Reader) (io.Reader, error) {
					p, _, err := a.kr.Open(r)
					return p, err
				},
				"OpenWithSessionKey": func(r io.Reader) (io.Reader, error) {
					return a.kr.OpenWithSessionKey(r, sk)
				},
			}
			cases := map[string][]byte{}
			for _, off := range []int{len(sealed) / 2, len(sealed) - 1, len(sealed) - 30, 600} {
				b := bytes.Clone(sealed)
				b[off] ^= 0x01
				cases["flip@"+itoa(off)] = b
			}
			for _, n := range []int{len(sealed) - 1, len(sealed) - 22, len(sealed) / 2, 700, 10} {
				cases["truncate@"+itoa(n)] = sealed[:n]
			}
			for oname, open := range openers {
				for cname, b := range cases {
					p, err := open(bytes.NewReader(b))
					if err == nil {
						_, err = io.Copy(io.Discard, p)
					}
					if !errors.Is(err, ErrIntegrity) {
						t.Errorf("%s %s: err = %v, want ErrIntegrity", oname, cname, err)
					}
				}
			}
		})
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func TestOpenNotForUs(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	other := testAccount(t, KeyV6Ed25519)
	sealed := seal(t, other.pub, []byte("for someone else"))
	if _, _, err := a.kr.Open(bytes.NewReader(sealed)); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("Open of a message for another key: %v", err)
	}
	// A session key of another account does not open our message.
	_, sk, err := other.kr.Open(bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.kr.OpenWithSessionKey(bytes.NewReader(sealed), sk); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("OpenWithSessionKey with another account's session key: %v", err)
	}
	for _, junk := range [][]byte{nil, []byte("hello"), randomBytes(t, 1000)} {
		if _, _, err := a.kr.Open(bytes.NewReader(junk)); !errors.Is(err, ErrIntegrity) {
			t.Errorf("Open(%d junk bytes): %v", len(junk), err)
		}
	}
}

func TestIndex(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	plain := []byte("From: bob; Subject: secret")
	s1, err := a.kr.SealIndex(plain, []byte("INBOX\x00uid 7"))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := a.kr.SealIndex(plain, []byte("INBOX\x00uid 7"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(s1, s2) {
		t.Fatal("two seals of the same data are equal: nonce reused")
	}
	if bytes.Contains(s1, plain) {
		t.Fatal("sealed index data contains plaintext")
	}
	got, err := a.kr.OpenIndex(s1, []byte("INBOX\x00uid 7"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("OpenIndex = %q, %v", got, err)
	}
	if _, err := a.kr.OpenIndex(s1, []byte("INBOX\x00uid 8")); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("OpenIndex with wrong ad: %v, want ErrIntegrity", err)
	}
	bad := bytes.Clone(s1)
	bad[len(bad)-1] ^= 1
	if _, err := a.kr.OpenIndex(bad, []byte("INBOX\x00uid 7")); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("OpenIndex of tampered data: %v, want ErrIntegrity", err)
	}
	for _, b := range [][]byte{nil, {1}, s1[:20]} {
		if _, err := a.kr.OpenIndex(b, nil); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("OpenIndex(%x): %v, want ErrIntegrity", b, err)
		}
	}
	// Index data of another account does not open.
	other := testAccount(t, KeyV6Ed25519)
	if _, err := other.kr.OpenIndex(s1, []byte("INBOX\x00uid 7")); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("OpenIndex with another account's keyring: %v", err)
	}
	// Session keys and index data are not interchangeable.
	_, sk, err := a.kr.Open(bytes.NewReader(seal(t, a.pub, []byte("x"))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.kr.OpenIndex(sk, sessionKeyAD); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("OpenIndex opened a session key: %v", err)
	}
	if _, err := a.kr.OpenWithSessionKey(bytes.NewReader(nil), s1); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("OpenWithSessionKey took index data as a session key: %v", err)
	}
}

func TestWipe(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	kr, err := Unlock([][]byte{a.sec.Slot}, a.pw, a.sec.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	sealed := seal(t, a.pub, []byte("hello"))
	// A stream opened before Wipe still reads to the end.
	plain, sk, err := kr.Open(bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := kr.SealIndex([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	master, indexKey := kr.master, kr.indexKey
	var secrets [][]byte // the decryption keys' secret bytes
	for _, d := range kr.decrypters {
		switch priv := d.PrivateKey.(type) {
		case *ecdh.PrivateKey:
			secrets = append(secrets, priv.D)
		case *x25519.PrivateKey:
			secrets = append(secrets, priv.Secret)
		default:
			t.Fatalf("decryption key %T", priv)
		}
	}
	if len(secrets) == 0 {
		t.Fatal("no decryption key")
	}
	kr.Wipe()
	kr.Wipe() // idempotent
	for _, sec := range secrets {
		if !bytes.Equal(sec, make([]byte, len(sec))) {
			t.Fatal("Wipe left the decryption key's secret in place")
		}
	}
	if got, err := io.ReadAll(plain); err != nil || string(got) != "hello" {
		t.Fatalf("stream opened before Wipe: %q, %v", got, err)
	}
	if !bytes.Equal(master, make([]byte, len(master))) || !bytes.Equal(indexKey, make([]byte, len(indexKey))) {
		t.Fatal("Wipe left key bytes in place")
	}
	checks := map[string]error{}
	_, _, checks["Open"] = kr.Open(bytes.NewReader(sealed))
	_, checks["OpenWithSessionKey"] = kr.OpenWithSessionKey(bytes.NewReader(sealed), sk)
	_, checks["SealIndex"] = kr.SealIndex([]byte("x"), nil)
	_, checks["OpenIndex"] = kr.OpenIndex(idx, nil)
	_, checks["NewSlot"] = kr.NewSlot([]byte("x"), TestKDF())
	_, checks["ExportSecretKey"] = kr.ExportSecretKey([]byte("x"))
	for name, err := range checks {
		if !errors.Is(err, ErrWiped) {
			t.Errorf("%s after Wipe: %v, want ErrWiped", name, err)
		}
	}
	if kr.Fingerprint() != a.sec.Fingerprint {
		t.Errorf("Fingerprint after Wipe = %q", kr.Fingerprint())
	}
}

// TestKeyringKeepsDecryptionKeysOnly: an unlocked keyring (one per
// logged-in session) keeps only the secret keys that open mail, not the
// whole parsed key (issue 11: memory per idle session), and still opens
// mail, exports the whole key and checks the public key.
func TestKeyringKeepsDecryptionKeysOnly(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyV6Ed25519} {
		a := testAccount(t, kt)
		const n = 200
		before := heapAlloc()
		rings := make([]*Keyring, n)
		for i := range rings {
			var err error
			if rings[i], err = newKeyring(a.kr.master, a.sec.WrappedKey); err != nil {
				t.Fatal(err)
			}
		}
		per := (heapAlloc() - before) / n
		t.Logf("%s: %d bytes per keyring", kt, per)
		if per > 3<<10 {
			t.Errorf("%s: %d bytes per unlocked keyring, want under 3 KiB", kt, per)
		}
		kr := rings[0]
		plain, _, err := kr.Open(bytes.NewReader(seal(t, a.pub, []byte("still opens"))))
		if err != nil {
			t.Fatalf("%s: Open: %v", kt, err)
		}
		if got, err := io.ReadAll(plain); err != nil || string(got) != "still opens" {
			t.Fatalf("%s: opened %q, %v", kt, got, err)
		}
		if err := kr.CheckPublicKey(a.sec.PublicKey); err != nil {
			t.Fatalf("%s: CheckPublicKey: %v", kt, err)
		}
		if _, err := kr.ExportSecretKey([]byte("export")); err != nil {
			t.Fatalf("%s: ExportSecretKey: %v", kt, err)
		}
		for _, kr := range rings {
			kr.Wipe()
		}
	}
}

// heapAlloc is the heap in use after a collection.
func heapAlloc() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func TestKeyringConcurrentUse(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	kr, err := Unlock([][]byte{a.sec.Slot}, a.pw, a.sec.WrappedKey)
	if err != nil {
		t.Fatal(err)
	}
	sealed := seal(t, a.pub, []byte("concurrent"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				p, _, err := kr.Open(bytes.NewReader(sealed))
				if errors.Is(err, ErrWiped) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := io.ReadAll(p); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(kr.Wipe)
	wg.Wait()
}

func TestCorruptedSecrets(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	// Every single-byte change of a slot fails cleanly.
	for i := range a.sec.Slot {
		b := bytes.Clone(a.sec.Slot)
		b[i] ^= 0x80
		if _, err := Unlock([][]byte{b}, a.pw, a.sec.WrappedKey); err == nil {
			t.Fatalf("Unlock with slot byte %d changed succeeded", i)
		}
	}
	for _, b := range [][]byte{nil, {}, {1}, a.sec.Slot[:slotLen-1], append(bytes.Clone(a.sec.Slot), 0)} {
		if _, err := Unlock([][]byte{b}, a.pw, a.sec.WrappedKey); !errors.Is(err, ErrBadPassword) {
			t.Fatalf("Unlock with slot of %d bytes: %v", len(b), err)
		}
	}
	// A corrupted wrapped key fails with an error, not a panic, and not
	// ErrBadPassword: the password was right.
	wks := [][]byte{nil, {1}, {2, 3}, a.sec.WrappedKey[:40], a.sec.WrappedKey[:len(a.sec.WrappedKey)-1]}
	for _, i := range []int{0, 1, 13, len(a.sec.WrappedKey) / 2, len(a.sec.WrappedKey) - 1} {
		b := bytes.Clone(a.sec.WrappedKey)
		b[i] ^= 0x04
		wks = append(wks, b)
	}
	for _, wk := range wks {
		kr, err := Unlock([][]byte{a.sec.Slot}, a.pw, wk)
		if err == nil || kr != nil {
			t.Fatalf("Unlock with corrupted wrapped key (%d bytes) succeeded", len(wk))
		}
		if errors.Is(err, ErrBadPassword) {
			t.Fatalf("corrupted wrapped key reported as bad password: %v", err)
		}
	}
	// A slot that opens with the right password but belongs to another
	// account's wrapped key fails too.
	other := testAccount(t, KeyV6Ed25519)
	if _, err := Unlock([][]byte{a.sec.Slot}, a.pw, other.sec.WrappedKey); err == nil {
		t.Fatal("Unlock with another account's wrapped key succeeded")
	}
}

func TestParsePublicKeyRejects(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	b := testAccount(t, KeyRSA3072)
	two := append(bytes.Clone(a.sec.PublicKey), b.sec.PublicKey...)
	flipped := bytes.Clone(a.sec.PublicKey)
	flipped[len(flipped)-10] ^= 1 // inside the subkey binding signature
	for name, in := range map[string][]byte{
		"empty":     nil,
		"junk":      []byte("not a key"),
		"two keys":  two,
		"truncated": a.sec.PublicKey[:len(a.sec.PublicKey)/2],
		"bad sig":   flipped,
	} {
		if _, err := ParsePublicKey(in); err == nil {
			t.Errorf("ParsePublicKey(%s) succeeded", name)
		}
	}
}

func TestNewAccountRejectsBadAddress(t *testing.T) {
	for _, addr := range []string{"", "alice", "@example.org", "alice@", "a@b@c", "Alice <a@b>", "a b@c", "a\x00@b", strings.Repeat("a", 250) + "@b.cd"} {
		if _, err := NewAccount(addr, []byte("pw"), AccountOptions{KDF: TestKDF()}); err == nil {
			t.Errorf("NewAccount(%q) succeeded", addr)
		}
	}
	if _, err := NewAccount("a@b", []byte("pw"), AccountOptions{KeyType: KeyType(99), KDF: TestKDF()}); err == nil {
		t.Error("NewAccount with unknown key type succeeded")
	}
}

func TestPublicKeyUserIDAndArmor(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyV6Ed25519} {
		a := testAccount(t, kt)
		ids := a.pub.entity.Identities
		if len(ids) != 1 || ids["<alice@example.org>"] == nil {
			t.Fatalf("%s: identities %v, want exactly <alice@example.org>", kt, ids)
		}
		arm, err := a.pub.Armored()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(arm, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
			t.Fatalf("%s: armored key starts %q", kt, arm[:40])
		}
		if bytes.Contains(arm, []byte("PRIVATE")) {
			t.Fatalf("%s: armored public key mentions PRIVATE", kt)
		}
	}
}

func TestExportSecretKeyRefusesEmptyPassword(t *testing.T) {
	a := testAccount(t, KeyEd25519)
	if _, err := a.kr.ExportSecretKey(nil); err == nil {
		t.Fatal("ExportSecretKey with empty password succeeded")
	}
}

func TestBurnUnlock(t *testing.T) {
	if testing.Short() {
		t.Skip("runs DefaultKDF()")
	}
	// Must not panic, also with parameters no slot could carry; its cost is
	// measured by BenchmarkBurnUnlock.
	BurnUnlock([]byte("anything"), KDFParams{})
	BurnUnlock([]byte("anything"), KDFParams{Time: 1 << 30})
}

func TestExportSecretKeyIsProtected(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyV6Ed25519} {
		a := testAccount(t, kt)
		armored, err := a.kr.ExportSecretKey([]byte("export"))
		if err != nil {
			t.Fatal(err)
		}
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
		if err != nil || len(el) != 1 {
			t.Fatalf("%s: read export: %d entities, %v", kt, len(el), err)
		}
		e := el[0]
		if hex.EncodeToString(e.PrimaryKey.Fingerprint) != a.sec.Fingerprint {
			t.Fatalf("%s: exported key has another fingerprint", kt)
		}
		keys := []*packet.PrivateKey{e.PrivateKey}
		for _, sk := range e.Subkeys {
			keys = append(keys, sk.PrivateKey)
		}
		for _, k := range keys {
			if k == nil || !k.Encrypted {
				t.Fatalf("%s: exported secret key is not encrypted", kt)
			}
		}
		if err := e.DecryptPrivateKeys([]byte("wrong")); err == nil {
			t.Fatalf("%s: exported key decrypts with a wrong password", kt)
		}
		if err := e.DecryptPrivateKeys([]byte("export")); err != nil {
			t.Fatalf("%s: exported key does not decrypt: %v", kt, err)
		}
		// The keyring still works after an export (it exported a copy).
		plain, _, err := a.kr.Open(bytes.NewReader(seal(t, a.pub, []byte("after export"))))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(plain); string(got) != "after export" {
			t.Fatalf("%s: open after export: %q", kt, got)
		}
	}
}
