package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// testFilterRules checks allow and deny rules: IDs, duplicates, owners,
// removal, and that an account's rules go with the account.
func testFilterRules(t *testing.T, s store.Store) {
	newAccount(t, s, "alice@example.org")
	add := func(r store.FilterRule) store.FilterRule {
		t.Helper()
		got, err := s.AddFilterRule(ctxBg, r)
		if err != nil {
			t.Fatalf("AddFilterRule(%+v): %v", r, err)
		}
		if got.ID == 0 || got.Created.IsZero() {
			t.Fatalf("AddFilterRule: %+v: want an ID and a creation time", got)
		}
		return got
	}
	org := add(store.FilterRule{Action: store.FilterDeny, Kind: store.FilterCIDR, Value: "192.0.2.0/24", Note: "abuse"})
	user := add(store.FilterRule{Owner: "alice@example.org", Action: store.FilterAllow, Kind: store.FilterDomain, Value: "partner.example"})
	same := add(store.FilterRule{Action: store.FilterAllow, Kind: store.FilterCIDR, Value: "192.0.2.0/24"}) // other action: fine
	if !(org.ID < user.ID && user.ID < same.ID) {
		t.Errorf("IDs %d %d %d do not increase", org.ID, user.ID, same.ID)
	}
	if _, err := s.AddFilterRule(ctxBg, store.FilterRule{Action: store.FilterDeny, Kind: store.FilterCIDR, Value: "192.0.2.0/24"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate rule: %v, want ErrExists", err)
	}
	// The same rule for another owner is not a duplicate.
	add(store.FilterRule{Owner: "alice@example.org", Action: store.FilterDeny, Kind: store.FilterCIDR, Value: "192.0.2.0/24"})
	if _, err := s.AddFilterRule(ctxBg, store.FilterRule{Owner: "nobody@example.org", Action: store.FilterDeny, Kind: store.FilterAddress, Value: "x@y.example"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rule for a missing account: %v, want ErrNotFound", err)
	}
	rules, err := s.FilterRules(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 4 || rules[0] != org || rules[1] != user {
		t.Fatalf("FilterRules: %+v", rules)
	}
	if err := s.RemoveFilterRule(ctxBg, org.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveFilterRule(ctxBg, org.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second remove: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteAccount(ctxBg, "alice@example.org"); err != nil {
		t.Fatal(err)
	}
	rules, err = s.FilterRules(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || rules[0] != same {
		t.Errorf("after deleting the account: %+v, want only the organisation's rule", rules)
	}
	// A new account at the same address starts without rules.
	newAccount(t, s, "alice@example.org")
	if rules, _ := s.FilterRules(ctxBg); len(rules) != 1 {
		t.Errorf("a new account inherited rules: %+v", rules)
	}
}

// testGreylist checks greylist entries and their expiry.
func testGreylist(t *testing.T, s store.Store) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	if _, err := s.Greylist(ctxBg, k1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown key: %v, want ErrNotFound", err)
	}
	e1 := store.GreylistEntry{First: date0, Last: date0.Add(time.Hour), Passes: 3}
	e2 := store.GreylistEntry{First: date0, Last: date0.Add(48 * time.Hour)}
	if err := s.SetGreylist(ctxBg, k1, e1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGreylist(ctxBg, k2, e2); err != nil {
		t.Fatal(err)
	}
	got, err := s.Greylist(ctxBg, k1)
	if err != nil || !got.First.Equal(e1.First) || !got.Last.Equal(e1.Last) || got.Passes != 3 {
		t.Errorf("Greylist: %+v, %v; want %+v", got, err, e1)
	}
	if err := s.SetGreylist(ctxBg, nil, e1); err == nil {
		t.Error("empty key accepted")
	}
	n, err := s.ExpireGreylist(ctxBg, date0.Add(24*time.Hour))
	if err != nil || n != 1 {
		t.Errorf("ExpireGreylist: %d, %v; want 1", n, err)
	}
	if _, err := s.Greylist(ctxBg, k1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired entry: %v", err)
	}
	if _, err := s.Greylist(ctxBg, k2); err != nil {
		t.Errorf("younger entry gone: %v", err)
	}
}

// testFilterModels checks the generations of models and that an
// account's model goes with the account.
func testFilterModels(t *testing.T, s store.Store) {
	newAccount(t, s, "alice@example.org")
	for _, owner := range []string{"", "alice@example.org"} {
		if _, err := s.FilterModel(ctxBg, owner); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("model of %q before any: %v, want ErrNotFound", owner, err)
		}
		m := store.FilterModel{Key: []byte("key " + owner), Data: blob(7, 100_000)}
		g1, err := s.PutFilterModel(ctxBg, owner, m, 0)
		if err != nil || g1 == 0 {
			t.Fatalf("first PutFilterModel(%q): %d, %v", owner, g1, err)
		}
		if _, err := s.PutFilterModel(ctxBg, owner, m, 0); !errors.Is(err, store.ErrConflict) {
			t.Errorf("second first write: %v, want ErrConflict", err)
		}
		m.Data = []byte("newer")
		g2, err := s.PutFilterModel(ctxBg, owner, m, g1)
		if err != nil || g2 == g1 {
			t.Fatalf("PutFilterModel at %d: %d, %v", g1, g2, err)
		}
		if _, err := s.PutFilterModel(ctxBg, owner, m, g1); !errors.Is(err, store.ErrConflict) {
			t.Errorf("stale write: %v, want ErrConflict", err)
		}
		got, err := s.FilterModel(ctxBg, owner)
		if err != nil || got.Gen != g2 || string(got.Data) != "newer" || string(got.Key) != "key "+owner {
			t.Errorf("FilterModel(%q): %+v, %v", owner, got, err)
		}
	}
	if _, err := s.PutFilterModel(ctxBg, "nobody@example.org", store.FilterModel{}, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("model of a missing account: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteAccount(ctxBg, "alice@example.org"); err != nil {
		t.Fatal(err)
	}
	newAccount(t, s, "alice@example.org")
	if _, err := s.FilterModel(ctxBg, "alice@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a new account inherited the old model: %v", err)
	}
	if _, err := s.FilterModel(ctxBg, ""); err != nil {
		t.Errorf("the organisation's model went with an account: %v", err)
	}
}
