package keyserver_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/keyserver"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// TestWKDInternationalDomain serves WKD for a domain configured as a
// U-label: the Host header carries the A-label, the path's domain element
// either form, and a key whose user ID writes the domain as a U-label is
// served for the canonical (A-label) account too.
func TestWKDInternationalDomain(t *testing.T) {
	db, err := badgerstore.Open(filepath.Join(t.TempDir(), "store"), badgerstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	// The account is stored under its canonical address; one key names
	// it that way, the other as people write it.
	for local, uid := range map[string]string{
		"jörg": "jörg@xn--bcher-kva.example",
		"info": "info@Bücher.example",
	} {
		s, err := crypto.NewAccount(uid, []byte(password), crypto.AccountOptions{KeyType: crypto.KeyEd25519, KDF: crypto.TestKDF()})
		if err != nil {
			t.Fatal(err)
		}
		err = db.CreateAccount(ctx, store.Account{
			Address: local + "@xn--bcher-kva.example", PublicKey: s.PublicKey, KeyFingerprint: s.Fingerprint,
			WrappedKey: s.WrappedKey, PublishWKD: true, Slots: []store.Slot{{Kind: store.SlotPassword, Data: s.Slot}},
		}, store.DefaultMailboxes)
		if err != nil {
			t.Fatal(err)
		}
	}
	h, err := keyserver.New(keyserver.Options{Keys: db, Hostname: "mx.xn--bcher-kva.example", Domains: []string{"Bücher.example"}})
	if err != nil {
		t.Fatalf("keyserver.New with a U-label domain: %v", err)
	}
	fetch := func(host, path string) (int, []byte) {
		req := httptest.NewRequest("GET", "https://"+host+path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}
	for _, local := range []string{"jörg", "info"} {
		q := "/hu/" + keyserver.WKDHash(local) + "?l=" + url.QueryEscape(local)
		for _, hp := range [][2]string{
			{"openpgpkey.xn--bcher-kva.example", "/.well-known/openpgpkey/xn--bcher-kva.example" + q},
			{"openpgpkey.xn--bcher-kva.example", "/.well-known/openpgpkey/" + url.PathEscape("bücher.example") + q},
			{"OPENPGPKEY.XN--BCHER-KVA.EXAMPLE.", "/.well-known/openpgpkey/XN--BCHER-KVA.example" + q},
			{"xn--bcher-kva.example", "/.well-known/openpgpkey" + q},
		} {
			code, body := fetch(hp[0], hp[1])
			if code != http.StatusOK {
				t.Errorf("%s%s: status %d", hp[0], hp[1], code)
				continue
			}
			e, err := openpgp.ReadEntity(packet.NewReader(bytes.NewReader(body)))
			if err != nil || len(e.Identities) != 1 {
				t.Errorf("%s%s: served key %v, %d identities", hp[0], hp[1], err, len(e.Identities))
			}
		}
	}
	// Another domain's name in the path, or a raw UTF-8 Host, is no match.
	if code, _ := fetch("openpgpkey.xn--bcher-kva.example", "/.well-known/openpgpkey/buecher.example/hu/"+keyserver.WKDHash("info")+"?l=info"); code != http.StatusNotFound {
		t.Errorf("other domain in the path: status %d", code)
	}
	req := httptest.NewRequest("GET", "https://openpgpkey.xn--bcher-kva.example/.well-known/openpgpkey/xn--bcher-kva.example/policy", nil)
	req.Host = "openpgpkey.bücher.example"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("UTF-8 Host header: status %d", rec.Code)
	}
	// DNS records and ACME names are A-labels.
	recs, err := keyserver.DNSRecords("bücher.example", keyserver.Options{Hostname: "mx.xn--bcher-kva.example", Domains: []string{"xn--bcher-kva.example"}})
	if err != nil || !strings.Contains(recs, "openpgpkey.xn--bcher-kva.example.") || strings.Contains(recs, "bücher.example.") {
		t.Errorf("DNSRecords: %v\n%s", err, recs)
	}
	if hosts := strings.Join(keyserver.AutocertHosts("mx.xn--bcher-kva.example", []string{"bücher.example"}), " "); !strings.Contains(hosts, "openpgpkey.xn--bcher-kva.example") {
		t.Errorf("AutocertHosts: %s", hosts)
	}
}
