package store

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalFlags(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want []string
	}{
		{nil, []string{}},
		{[]string{`\seen`, `\ANSWERED`, `\flagged`, `\deleted`, `\draft`}, []string{`\Answered`, `\Deleted`, `\Draft`, `\Flagged`, `\Seen`}},
		{[]string{"Work", "work", "WORK", "$Junk"}, []string{"$Junk", "Work"}},
		{[]string{`\Seen`, `\seen`}, []string{`\Seen`}},
		{[]string{`\Custom`, `\custom`}, []string{`\Custom`}},
	} {
		got, err := CanonicalFlags(c.in)
		if err != nil || !SameFlags(got, c.want) {
			t.Errorf("CanonicalFlags(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", `\`, "a b", "a(b", "a)", "a{", "a%", "a*", `a"`, `a\b`, "a]", "ä", "a\x7f", strings.Repeat("x", MaxFlagLen+1)} {
		if _, err := CanonicalFlags([]string{bad}); !errors.Is(err, ErrBadFlag) {
			t.Errorf("CanonicalFlags(%q): %v", bad, err)
		}
	}
	many := make([]string, MaxFlags+1)
	for i := range many {
		many[i] = "k" + strings.Repeat("x", i)
	}
	if _, err := CanonicalFlags(many); !errors.Is(err, ErrBadFlag) {
		t.Errorf("too many flags accepted")
	}
}

func TestApplyFlags(t *testing.T) {
	cur := []string{"Work", `\Seen`}
	for _, c := range []struct {
		op   FlagOp
		ch   []string
		want []string
	}{
		{FlagsAdd, []string{"work", `\flagged`}, []string{"Work", `\Flagged`, `\Seen`}},
		{FlagsRemove, []string{"WORK"}, []string{`\Seen`}},
		{FlagsRemove, []string{"other"}, []string{"Work", `\Seen`}},
		{FlagsSet, []string{`\draft`}, []string{`\Draft`}},
		{FlagsSet, nil, []string{}},
	} {
		got, err := ApplyFlags(cur, c.op, c.ch)
		if err != nil || !SameFlags(got, c.want) {
			t.Errorf("ApplyFlags(%d, %q) = %q, %v; want %q", c.op, c.ch, got, err, c.want)
		}
	}
	if cur[0] != "Work" || len(cur) != 2 {
		t.Errorf("ApplyFlags modified its input")
	}
	if _, err := ApplyFlags(cur, 9, nil); err == nil {
		t.Errorf("unknown op accepted")
	}
}

func TestCheckNames(t *testing.T) {
	for _, ok := range []string{"INBOX", "a/b/c", "Entwürfe", "Tom & Jerry"} {
		if err := CheckMailboxName(ok); err != nil {
			t.Errorf("CheckMailboxName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "a\x00", "a\tb", "\xc3", strings.Repeat("a", MaxMailboxNameLen+1)} {
		if err := CheckMailboxName(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("CheckMailboxName(%q): %v", bad, err)
		}
	}
	if err := CheckAddress("a@b"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "a\nb@c", strings.Repeat("a", MaxAddressLen+1)} {
		if err := CheckAddress(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("CheckAddress(%q): %v", bad, err)
		}
	}
}

func FuzzCanonicalFlags(f *testing.F) {
	f.Add(`\seen`, "Work")
	f.Fuzz(func(t *testing.T, a, b string) {
		got, err := CanonicalFlags([]string{a, b})
		if err != nil {
			return
		}
		again, err := CanonicalFlags(got)
		if err != nil || !SameFlags(again, got) {
			t.Fatalf("not idempotent: %q -> %q (%v)", got, again, err)
		}
	})
}
