package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// mapLookup is an in-memory AccountLookup; fail makes every lookup of that
// address fail with a non-NotFound error.
type mapLookup struct {
	accounts map[string]bool
	fail     string
}

func (m mapLookup) PublicAccount(_ context.Context, addr string) (store.PublicAccount, error) {
	if addr == m.fail {
		return store.PublicAccount{}, errors.New("disk on fire")
	}
	if m.accounts[addr] {
		return store.PublicAccount{Address: addr}, nil
	}
	return store.PublicAccount{}, fmt.Errorf("lookup %s: %w", addr, store.ErrNotFound)
}

func newTestRecipients(t *testing.T, pm string) *Recipients {
	t.Helper()
	r, err := NewRecipients(RecipientOptions{
		Domains: []string{"Example.ORG.", "other.test"},
		Aliases: map[string][]string{
			"team@example.org":  {"alice@example.org", "Bob@Example.org", "alice@example.org"},
			"sales@other.test":  {"carol@other.test"},
			"broken@other.test": {"ghost@other.test"},
		},
		Postmaster: pm,
	})
	if err != nil {
		t.Fatalf("NewRecipients: %v", err)
	}
	return r
}

func TestResolve(t *testing.T) {
	lk := mapLookup{accounts: map[string]bool{
		"alice@example.org":      true,
		"bob@example.org":        true,
		"carol@other.test":       true,
		"postmaster@example.org": true,
		"a+b@example.org":        true,
	}, fail: "slow@example.org"}
	r := newTestRecipients(t, "")
	ctx := context.Background()

	ok := []struct {
		addr string
		want []string
	}{
		{"alice@example.org", []string{"alice@example.org"}},
		{"ALICE@EXAMPLE.ORG", []string{"alice@example.org"}},
		{"alice@example.org.", []string{"alice@example.org"}},
		{"alice+news@example.org", []string{"alice@example.org"}},
		{"Alice+a+b@Example.Org", []string{"alice@example.org"}},
		{"a+b@example.org", []string{"a+b@example.org"}}, // exact account wins over the tag rule
		{"team@example.org", []string{"alice@example.org", "bob@example.org"}},
		{"team+x@example.org", []string{"alice@example.org", "bob@example.org"}},
		{"sales@OTHER.test", []string{"carol@other.test"}},
		{"PostMaster@example.org", []string{"postmaster@example.org"}},
	}
	for _, tc := range ok {
		as, err := r.Resolve(ctx, lk, tc.addr)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.addr, err)
			continue
		}
		var got []string
		for _, a := range as {
			got = append(got, a.Address)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Resolve(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}

	bad := []struct {
		addr string
		want error
	}{
		{"nobody@example.org", ErrNoSuchUser},
		{"+tag@example.org", ErrNoSuchUser},
		{"postmaster@other.test", ErrNoSuchUser}, // no Postmaster option, no account
		{"alice@elsewhere.test", ErrRelayDenied},
		{"alice@example.org.evil.test", ErrRelayDenied},
		{"alice%elsewhere.test@example.org", ErrRelayDenied},
		{"elsewhere.test!alice@example.org", ErrRelayDenied},
		{"alice@elsewhere.test@example.org", ErrRelayDenied},
		{`"alice@elsewhere.test"@example.org`, ErrRelayDenied},
		{"@example.org:alice@elsewhere.test", ErrRelayDenied},
		{"alice:x@example.org", ErrRelayDenied},
		{"alice@[127.0.0.1]", ErrRelayDenied},
		{"alice", ErrRelayDenied},
		{"", ErrRelayDenied},
		{"al ice@example.org", ErrBadAddress},
		{".alice@example.org", ErrBadAddress},
		{"al\x00ice@example.org", ErrBadAddress},
	}
	for _, tc := range bad {
		_, err := r.Resolve(ctx, lk, tc.addr)
		if !errors.Is(err, tc.want) {
			t.Errorf("Resolve(%q) error = %v, want %v", tc.addr, err, tc.want)
		}
		if tc.want == ErrBadAddress && errors.Is(err, ErrRelayDenied) {
			t.Errorf("Resolve(%q) = relay, want plain bad address", tc.addr)
		}
	}

	// Lookup failures and missing configured targets are temporary: none
	// of the sentinels a server would turn into a permanent error.
	for _, addr := range []string{"slow@example.org", "broken@other.test"} {
		_, err := r.Resolve(ctx, lk, addr)
		if err == nil || errors.Is(err, ErrNoSuchUser) || errors.Is(err, ErrRelayDenied) || errors.Is(err, ErrBadAddress) {
			t.Errorf("Resolve(%q) error = %v, want a temporary error", addr, err)
		}
	}
}

func TestResolvePostmasterOption(t *testing.T) {
	lk := mapLookup{accounts: map[string]bool{"carol@other.test": true, "postmaster@example.org": true}}
	r := newTestRecipients(t, "Carol@other.test")
	for _, addr := range []string{"postmaster@example.org", "POSTMASTER@other.test", "postmaster+x@example.org"} {
		as, err := r.Resolve(context.Background(), lk, addr)
		if err != nil || len(as) != 1 || as[0].Address != "carol@other.test" {
			t.Errorf("Resolve(%q) = %v, %v; want carol@other.test", addr, as, err)
		}
	}
}

func TestNewRecipientsRejects(t *testing.T) {
	cases := map[string]RecipientOptions{
		"bad domain":          {Domains: []string{"exa mple.org"}},
		"foreign postmaster":  {Domains: []string{"example.org"}, Postmaster: "pm@elsewhere.test"},
		"foreign alias":       {Domains: []string{"example.org"}, Aliases: map[string][]string{"a@elsewhere.test": {"b@example.org"}}},
		"foreign target":      {Domains: []string{"example.org"}, Aliases: map[string][]string{"a@example.org": {"b@elsewhere.test"}}},
		"routed target":       {Domains: []string{"example.org"}, Aliases: map[string][]string{"a@example.org": {"b%elsewhere.test@example.org"}}},
		"empty alias":         {Domains: []string{"example.org"}, Aliases: map[string][]string{"a@example.org": nil}},
		"alias to alias":      {Domains: []string{"example.org"}, Aliases: map[string][]string{"a@example.org": {"b@example.org"}, "b@example.org": {"c@example.org"}}},
		"alias defined twice": {Domains: []string{"example.org"}, Aliases: map[string][]string{"a@example.org": {"c@example.org"}, "A@example.org": {"c@example.org"}}},
	}
	for name, opt := range cases {
		if _, err := NewRecipients(opt); err == nil {
			t.Errorf("%s: NewRecipients accepted %+v", name, opt)
		}
	}
	r, err := NewRecipients(RecipientOptions{})
	if err != nil {
		t.Fatalf("zero options: %v", err)
	}
	if _, err := r.Resolve(context.Background(), mapLookup{}, "a@example.org"); !errors.Is(err, ErrRelayDenied) {
		t.Errorf("zero options: Resolve error = %v, want relay denied", err)
	}
}

func TestCanonicalAddress(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Example.ORG":        "alice@example.org",
		" bob@example.org. ":       "bob@example.org",
		"Jörg@Bücher.example":      "jörg@xn--bcher-kva.example",
		"x@XN--BCHER-KVA.example.": "x@xn--bcher-kva.example",
	} {
		got, err := CanonicalAddress(in)
		if err != nil || got != want {
			t.Errorf("CanonicalAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"a\"b@example.org", "a%b@example.org", "a!b@example.org", "a@b@example.org", "a\\b@example.org"} {
		_, err := CanonicalAddress(in)
		if !errors.Is(err, ErrBadAddress) || !errors.Is(err, ErrRouting) {
			t.Errorf("CanonicalAddress(%q) error = %v, want ErrBadAddress and ErrRouting", in, err)
		}
	}
}

// FuzzResolve checks that no envelope recipient makes Resolve panic, and
// that whatever it accepts is in a local domain with no routing characters.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"alice@example.org", "a%b@example.org", "@a:b@c", `"x@y"@example.org`, "a+b@example.org", "postmaster@other.test", "\xff@example.org"} {
		f.Add(s)
	}
	r, err := NewRecipients(RecipientOptions{Domains: []string{"example.org", "other.test"}})
	if err != nil {
		f.Fatal(err)
	}
	lk := acceptAll{}
	f.Fuzz(func(t *testing.T, addr string) {
		as, err := r.Resolve(context.Background(), lk, addr)
		if err != nil {
			return
		}
		for _, a := range as {
			local, domain, err := SplitAddress(a.Address)
			if err != nil || !r.IsLocalDomain(domain) {
				t.Fatalf("Resolve(%q) accepted %q (%v)", addr, a.Address, err)
			}
			if local == "" {
				t.Fatalf("Resolve(%q) gave empty local part", addr)
			}
		}
	})
}

type acceptAll struct{}

func (acceptAll) PublicAccount(_ context.Context, addr string) (store.PublicAccount, error) {
	return store.PublicAccount{Address: addr}, nil
}

func TestOwns(t *testing.T) {
	r, err := NewRecipients(RecipientOptions{
		Domains:    []string{"example.org", "bücher.example"},
		Aliases:    map[string][]string{"sales@example.org": {"alice@example.org", "bob@example.org"}, "info@example.org": {"bob@example.org"}},
		Postmaster: "alice@example.org",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"alice@example.org", true},
		{"Alice@Example.ORG", true},
		{"alice+lists@example.org", true},
		{"sales@example.org", true},
		{"sales+x@example.org", true},
		{"postmaster@example.org", true},
		{"postmaster@xn--bcher-kva.example", true},
		{"info@example.org", false},
		{"bob@example.org", false},
		{"alice@elsewhere.test", false},
		{"alice%elsewhere.test@example.org", false},
		{`"alice"@example.org`, false},
		{"", false},
		{"alice", false},
	} {
		if got := r.Owns("alice@example.org", c.addr); got != c.want {
			t.Errorf("Owns(alice, %q) = %v, want %v", c.addr, got, c.want)
		}
	}
	j, _ := NewRecipients(RecipientOptions{Domains: []string{"bücher.example"}})
	if !j.Owns("jörg@xn--bcher-kva.example", "Jörg@Bücher.example") {
		t.Error("an IDN address is not its own account's")
	}
}
