package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

func TestParsePeriod(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Period
		bad  bool
	}{
		{"0d", Period{0, 'd'}, false},
		{"30d", Period{30, 'd'}, false},
		{"2w", Period{2, 'w'}, false},
		{"6m", Period{6, 'm'}, false},
		{"10y", Period{10, 'y'}, false},
		{"200y", Period{200, 'y'}, false},
		{"201y", Period{}, true},
		{"10", Period{}, true},
		{"y", Period{}, true},
		{"-1d", Period{}, true},
		{"1.5y", Period{}, true},
		{"3h", Period{}, true},
		{"1Y", Period{}, true},
		{"", Period{}, true},
		{"9999999d", Period{}, true},
	} {
		got, err := ParsePeriod(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParsePeriod(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func date(y int, m time.Month, d, h, min int, loc *time.Location) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, loc)
}

func TestPeriodAddTo(t *testing.T) {
	utc := time.UTC
	for _, tc := range []struct {
		p    string
		from time.Time
		want time.Time
	}{
		// Leap years: a year from 29 February ends on 28 February (BGB
		// §188(3)), four years later on 29 February again.
		{"1y", date(2024, 2, 29, 10, 0, utc), date(2025, 2, 28, 10, 0, utc)},
		{"4y", date(2024, 2, 29, 10, 0, utc), date(2028, 2, 29, 10, 0, utc)},
		{"1m", date(2024, 1, 31, 0, 0, utc), date(2024, 2, 29, 0, 0, utc)},
		{"1m", date(2023, 1, 31, 0, 0, utc), date(2023, 2, 28, 0, 0, utc)},
		{"13m", date(2023, 1, 31, 0, 0, utc), date(2024, 2, 29, 0, 0, utc)},
		{"6y", date(2025, 1, 1, 0, 0, utc), date(2031, 1, 1, 0, 0, utc)},
		{"30d", date(2024, 2, 15, 0, 0, utc), date(2024, 3, 16, 0, 0, utc)},
		{"2w", date(2024, 12, 25, 0, 0, utc), date(2025, 1, 8, 0, 0, utc)},
		{"0d", date(2024, 12, 25, 0, 0, utc), date(2024, 12, 25, 0, 0, utc)},
	} {
		p, err := ParsePeriod(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.AddTo(tc.from); !got.Equal(tc.want) {
			t.Errorf("%s from %s = %s, want %s", tc.p, tc.from, got, tc.want)
		}
	}
}

func TestBuiltinPresets(t *testing.T) {
	ps, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
		if !strings.Contains(p.Notice, "Not legal advice") {
			t.Errorf("%s: notice does not say it is not legal advice: %q", p.ID, p.Notice)
		}
		if len(p.Sources) == 0 || p.Name == "" || p.Version < 1 {
			t.Errorf("%s: sources %v, name %q, version %d", p.ID, p.Sources, p.Name, p.Version)
		}
	}
	want := "AT-BAO CH-OR DE-HGB-AO EU-GDPR FR UK US-HIPAA US-SEC-17a-4"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("builtin presets %s, want %s", got, want)
	}
}

func parseT(t *testing.T, src string) *Preset {
	t.Helper()
	p, err := ParsePreset(strings.NewReader(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const presetHead = "id: X\nname: x\nversion: 1\nnotice: Not legal advice.\nsources: [s]\n"

func TestPresetErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		msg       string
	}{
		{"unknown top key", presetHead + "colour: blue\nrules:\n  - {class: default, min: 0d}\n", 6, `unknown key "colour"`},
		{"unknown rule key", presetHead + "rules:\n  - class: default\n    minimum: 1y\n", 8, `rule 1: unknown key "minimum"`},
		{"unknown class", presetHead + "rules:\n  - class: default\n    min: 1y\n  - class: letters\n    min: 1y\n", 9, `unknown class "letters"`},
		{"min above locked max", presetHead + "rules:\n  - class: default\n    min: 7y\n    max: 6y\n    locked: true\n", 9, "min 7y is longer than its locked max 6y"},
		{"min above max", presetHead + "rules:\n  - class: spam\n    min: 31d\n    max: 1m\n", 9, "min 31d is longer than its max 1m"},
		{"duplicate class", presetHead + "rules:\n  - {class: spam, max: 30d}\n  - {class: spam, max: 60d}\n", 8, `class "spam" has a rule already (line 7)`},
		{"bad period", presetHead + "rules:\n  - class: default\n    min: six years\n", 8, "rule 1: min: period"},
		{"bad start", presetHead + "rules:\n  - class: default\n    start: end-of-decade\n", 8, `start "end-of-decade"`},
		{"bad event", presetHead + "rules:\n  - class: default\n    start: event:Account Closed\n", 8, "an event name"},
		{"missing id", "name: x\nversion: 1\nnotice: n\nsources: [s]\nrules: [{class: default}]\n", 1, `missing key "id"`},
		{"missing class", presetHead + "rules:\n  - min: 1y\n", 7, `rule 1: missing key "class"`},
		{"bad zone", presetHead + "zone: Mars/Olympus\nrules: [{class: default}]\n", 6, `zone "Mars/Olympus"`},
		{"bad version", "id: X\nname: x\nversion: one\nnotice: n\nsources: [s]\nrules: [{class: default}]\n", 3, `version "one"`},
		{"bad id", "id: \"../etc\"\nname: x\nversion: 1\nnotice: n\nsources: [s]\nrules: [{class: default}]\n", 1, `id "../etc"`},
		{"empty rules", presetHead + "rules: []\n", 6, "want a list of rules"},
		{"no sources", "id: X\nname: x\nversion: 1\nnotice: n\nsources: []\nrules: [{class: default}]\n", 5, "sources"},
		{"locked not bool", presetHead + "rules:\n  - class: default\n    locked: yes please\n", 8, "locked: want true or false"},
		{"fiscal 29 Feb", presetHead + "fiscal-year-start: 02-29\nrules: [{class: default}]\n", 6, "not every year"},
		{"two documents", presetHead + "rules: [{class: default}]\n---\nid: Y\n", 7, "more than one YAML document"},
		{"not yaml", presetHead + "rules: [\n", 6, "not YAML"},
		{"duplicate key", presetHead + "name: y\nrules: [{class: default}]\n", 6, `key "name" given twice`},
		{"empty notice", "id: X\nname: x\nversion: 1\nnotice: \" \"\nsources: [s]\nrules: [{class: default}]\n", 4, "notice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePreset(strings.NewReader(tc.src), "test.yaml")
			var pe *PresetError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *PresetError", err)
			}
			if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) || !strings.HasPrefix(err.Error(), "test.yaml:") {
				t.Errorf("err = %q (line %d), want line %d and %q", err, pe.Line, tc.line, tc.msg)
			}
		})
	}
	big := presetHead + "rules: [{class: default}]\n#" + strings.Repeat("x", MaxPresetBytes) + "\n"
	if _, err := ParsePreset(strings.NewReader(big), "big.yaml"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized preset: %v", err)
	}
}

// policyWith returns a policy with the builtin presets plus extra, and the
// assignments given as "PRESET SCOPE [CLASS]".
func policyWith(t *testing.T, extra []*Preset, assigns []store.Assignment, holds []store.Hold, events []store.RetentionEvent) *Policy {
	t.Helper()
	b, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var imported []store.Preset
	for _, p := range extra {
		imported = append(imported, store.Preset{ID: p.ID, Version: p.Version, Source: p.Source})
	}
	p := NewPolicy(7, b, imported, assigns, holds, events)
	if len(p.Problems) > 0 {
		t.Fatalf("problems: %v", p.Problems)
	}
	return p
}

func zone(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

const alice = "alice@example.org"

// TestDecideEveryPreset runs each shipped preset, assigned to the whole
// organisation, over real dates: end-of-year starts in the preset's zone
// (around New Year's Eve in UTC), fiscal years, leap days, locked rules.
func TestDecideEveryPreset(t *testing.T) {
	berlin, zurich, vienna, paris := zone(t, "Europe/Berlin"), zone(t, "Europe/Zurich"), zone(t, "Europe/Vienna"), zone(t, "Europe/Paris")
	london, ny := zone(t, "Europe/London"), zone(t, "America/New_York")
	utc := time.UTC
	never := time.Time{}
	type c struct {
		preset, fy string
		class      string
		arrival    time.Time
		keep, del  time.Time
		locked     bool
	}
	for _, tc := range []c{
		// DE-HGB-AO: 6 years from the end of the calendar year, Berlin time.
		{"DE-HGB-AO", "", "business-letter", date(2024, 5, 1, 9, 0, utc), date(2031, 1, 1, 0, 0, berlin), never, false},
		// 23:30 UTC on 31 December is already 2025 in Berlin.
		{"DE-HGB-AO", "", "business-letter", date(2024, 12, 31, 23, 30, utc), date(2032, 1, 1, 0, 0, berlin), never, false},
		{"DE-HGB-AO", "", "business-letter", date(2024, 12, 31, 22, 30, utc), date(2031, 1, 1, 0, 0, berlin), never, false},
		{"DE-HGB-AO", "", "accounting-record", date(2024, 2, 29, 12, 0, utc), date(2033, 1, 1, 0, 0, berlin), never, false},
		{"DE-HGB-AO", "", "default", date(2025, 7, 14, 12, 0, utc), date(2032, 1, 1, 0, 0, berlin), never, false},
		{"DE-HGB-AO", "", "newsletter", date(2025, 7, 14, 12, 0, utc), never, never, false},
		// CH-OR: 10 years from the end of the fiscal year (here from 1 July).
		{"CH-OR", "07-01", "accounting-record", date(2024, 6, 30, 12, 0, utc), date(2034, 7, 1, 0, 0, zurich), never, false},
		{"CH-OR", "07-01", "accounting-record", date(2024, 7, 1, 12, 0, utc), date(2035, 7, 1, 0, 0, zurich), never, false},
		{"CH-OR", "", "business-letter", date(2024, 3, 1, 0, 0, utc), date(2035, 1, 1, 0, 0, zurich), never, false},
		{"CH-OR", "", "personal", date(2024, 3, 1, 0, 0, utc), never, never, false},
		// AT-BAO: 7 years from the end of the calendar year.
		{"AT-BAO", "", "business-letter", date(2023, 11, 30, 0, 0, utc), date(2031, 1, 1, 0, 0, vienna), never, false},
		{"AT-BAO", "", "spam", date(2023, 11, 30, 0, 0, utc), never, never, false},
		// FR: 10 years from the close of the fiscal year; letters 5 from receipt.
		{"FR", "", "accounting-record", date(2024, 2, 29, 8, 0, utc), date(2035, 1, 1, 0, 0, paris), never, false},
		{"FR", "", "business-letter", date(2024, 2, 29, 8, 0, utc), date(2029, 2, 28, 8, 0, utc), never, false},
		// UK: fiscal year from 6 April (tax year), letters 6 from receipt.
		{"UK", "04-06", "accounting-record", date(2024, 4, 5, 22, 0, utc), date(2030, 4, 6, 0, 0, london), never, false},
		{"UK", "04-06", "accounting-record", date(2024, 4, 5, 23, 30, utc), date(2031, 4, 6, 0, 0, london), never, false},
		{"UK", "", "business-letter", date(2024, 1, 31, 0, 0, utc), date(2030, 1, 31, 0, 0, utc), never, false},
		// SEC 17a-4: 3 years from receipt, locked.
		{"US-SEC-17a-4", "", "regulated-comms", date(2024, 2, 29, 15, 0, utc), date(2027, 2, 28, 15, 0, utc), never, true},
		{"US-SEC-17a-4", "", "default", date(2024, 2, 29, 15, 0, utc), date(2027, 2, 28, 15, 0, utc), never, true},
		{"US-SEC-17a-4", "", "personal", date(2024, 2, 29, 15, 0, utc), date(2027, 2, 28, 15, 0, utc), never, true},
		// HIPAA: 6 years from receipt for regulated documentation only.
		{"US-HIPAA", "", "regulated-comms", date(2020, 6, 1, 0, 0, ny), date(2026, 6, 1, 0, 0, ny), never, false},
		{"US-HIPAA", "", "default", date(2020, 6, 1, 0, 0, ny), never, never, false},
		// EU-GDPR: maximums only.
		{"EU-GDPR", "", "spam", date(2024, 2, 10, 0, 0, utc), never, date(2024, 3, 11, 0, 0, utc), false},
		{"EU-GDPR", "", "newsletter", date(2024, 2, 29, 0, 0, utc), never, date(2025, 2, 28, 0, 0, utc), false},
		{"EU-GDPR", "", "default", date(2024, 2, 29, 0, 0, utc), never, never, false},
	} {
		p := policyWith(t, nil, []store.Assignment{{Preset: tc.preset, Scope: "org", FiscalYearStart: tc.fy}}, nil, nil)
		d := p.Decide(Subject{Address: alice, MailboxID: 1, Arrival: tc.arrival, Origin: tc.class})
		if !d.KeepUntil.Equal(tc.keep) || !d.DeleteAfter.Equal(tc.del) || d.Locked != tc.locked || d.Class != tc.class {
			t.Errorf("%s %s from %s: keep %s, delete %s, locked %v, class %s; want %s, %s, %v", tc.preset, tc.class,
				tc.arrival, d.KeepUntil, d.DeleteAfter, d.Locked, d.Class, tc.keep, tc.del, tc.locked)
		}
	}
}

func TestDecideConflictsAndLevels(t *testing.T) {
	custom := parseT(t, "id: LOCAL\nname: local\nversion: 1\nnotice: Not legal advice.\nsources: [house rules]\n"+
		"rules:\n  - {class: newsletter, max: 3y}\n  - {class: personal, max: 1m}\n")
	lockedMax := parseT(t, "id: PURGE\nname: purge\nversion: 1\nnotice: Not legal advice.\nsources: [house rules]\n"+
		"rules:\n  - {class: newsletter, max: 2y, locked: true}\n")
	arrival := date(2024, 3, 1, 12, 0, time.UTC)
	as := []store.Assignment{
		{Preset: "DE-HGB-AO", Scope: "org"},
		{Preset: "EU-GDPR", Scope: "org"},
		{Preset: "LOCAL", Scope: "mailbox:" + alice + "#5"},
		{Preset: "EU-GDPR", Scope: "mailbox:" + alice + "#6", Class: ClassTrash},
	}
	p := policyWith(t, []*Preset{custom, lockedMax}, as, nil, nil)

	// A business letter moved into the trash: its origin's minimum (6 years
	// from the end of the year) beats the trash's 30 days. Conflict shown.
	d := p.Decide(Subject{Address: alice, MailboxID: 9, SpecialUse: `\Trash`, Arrival: arrival, Origin: ClassDefault})
	berlin := zone(t, "Europe/Berlin")
	if d.Class != ClassTrash || !d.KeepUntil.Equal(date(2031, 1, 1, 0, 0, berlin)) || !d.Conflict || !d.DeleteAfter.Equal(d.KeepUntil) {
		t.Errorf("letter in trash: %+v", d)
	}
	if txt := d.RuleText(); !strings.Contains(txt, "min DE-HGB-AO@1") || !strings.Contains(txt, "max EU-GDPR@1 trash") || !strings.Contains(txt, "conflict") {
		t.Errorf("rule text %q", txt)
	}
	// A mailbox whose assignment sets a class.
	d = p.Decide(Subject{Address: alice, MailboxID: 6, Arrival: arrival, Origin: ClassNewsletter})
	// 30 days in Brussels time, across the change to summer time.
	if d.Class != ClassTrash || !d.DeleteAfter.Equal(date(2024, 3, 31, 13, 0, zone(t, "Europe/Brussels"))) || !d.KeepUntil.IsZero() {
		t.Errorf("newsletter in a trash-class mailbox: %+v", d)
	}
	// Explicit beats inherited among maximums: the mailbox's 3 years beat
	// the organisation's 1 year for newsletters.
	d = p.Decide(Subject{Address: alice, MailboxID: 5, Arrival: arrival, Origin: ClassNewsletter})
	if !d.DeleteAfter.Equal(date(2027, 3, 1, 12, 0, time.UTC)) {
		t.Errorf("newsletter in mailbox 5: delete %s", d.DeleteAfter)
	}
	// ...but never below a legal minimum: personal mail is no business
	// letter, but default mail moved into mailbox 5 keeps its 6 years.
	d = p.Decide(Subject{Address: alice, MailboxID: 5, Arrival: arrival, Origin: ClassDefault, Class: ClassPersonal})
	if !d.KeepUntil.Equal(date(2031, 1, 1, 0, 0, berlin)) || !d.Conflict {
		t.Errorf("default mail as personal in mailbox 5: %+v", d)
	}
	// A locked maximum at the organisation applies below too.
	p2 := policyWith(t, []*Preset{custom, lockedMax}, append(as, store.Assignment{Preset: "PURGE", Scope: "org"}), nil, nil)
	d = p2.Decide(Subject{Address: alice, MailboxID: 5, Arrival: arrival, Origin: ClassNewsletter})
	if !d.DeleteAfter.Equal(date(2026, 3, 1, 12, 0, time.UTC)) {
		t.Errorf("locked max: delete %s", d.DeleteAfter)
	}
	// Other accounts and domains are not covered by alice's mailboxes.
	d = p.Decide(Subject{Address: "bob@example.org", MailboxID: 5, Arrival: arrival, Origin: ClassNewsletter})
	if !d.DeleteAfter.Equal(date(2025, 3, 1, 12, 0, time.UTC)) {
		t.Errorf("bob's newsletter: delete %s", d.DeleteAfter)
	}
	// Domain scope.
	p3 := policyWith(t, nil, []store.Assignment{{Preset: "EU-GDPR", Scope: "domain:example.net"}}, nil, nil)
	if d := p3.Decide(Subject{Address: alice, Arrival: arrival, Origin: ClassSpam}); !d.DeleteAfter.IsZero() {
		t.Errorf("other domain's assignment applied: %+v", d)
	}
	if d := p3.Decide(Subject{Address: "carol@example.net", Arrival: arrival, Origin: ClassSpam}); d.DeleteAfter.IsZero() {
		t.Errorf("domain assignment not applied: %+v", d)
	}
}

func TestDecideHolds(t *testing.T) {
	as := []store.Assignment{{Preset: "EU-GDPR", Scope: "org"}}
	hs := []store.Hold{
		{ID: 1, Matter: "M-1", Scope: "user:" + alice, From: date(2024, 1, 1, 0, 0, time.UTC), To: date(2024, 7, 1, 0, 0, time.UTC)},
		{ID: 2, Matter: "M-2", Scope: "domain:example.net"},
		{ID: 3, Matter: "M-3", Scope: "org", Released: date(2024, 1, 1, 0, 0, time.UTC)},
		{ID: 4, Matter: "M-4", Scope: "mailbox:" + alice + "#8"},
	}
	p := policyWith(t, nil, as, hs, nil)
	for _, tc := range []struct {
		addr    string
		mbox    uint64
		arrival time.Time
		holds   []uint64
	}{
		{alice, 1, date(2023, 12, 31, 23, 59, time.UTC), nil},
		{alice, 1, date(2024, 1, 1, 0, 0, time.UTC), []uint64{1}},
		{alice, 1, date(2024, 6, 30, 23, 59, time.UTC), []uint64{1}},
		{alice, 1, date(2024, 7, 1, 0, 0, time.UTC), nil},
		{alice, 8, date(2020, 7, 1, 0, 0, time.UTC), []uint64{4}},
		{alice, 8, date(2024, 3, 1, 0, 0, time.UTC), []uint64{1, 4}},
		{"bob@example.net", 1, date(2010, 1, 1, 0, 0, time.UTC), []uint64{2}},
	} {
		d := p.Decide(Subject{Address: tc.addr, MailboxID: tc.mbox, Arrival: tc.arrival, Origin: ClassSpam})
		if d.Held != (len(tc.holds) > 0) || !equalIDs(d.Holds, tc.holds) {
			t.Errorf("%s #%d %s: held %v %v, want %v", tc.addr, tc.mbox, tc.arrival, d.Held, d.Holds, tc.holds)
		}
		// A held message still has its computed maximum; the hold, not the
		// time, keeps it.
		if d.DeleteAfter.IsZero() {
			t.Errorf("%s: no delete-after", tc.addr)
		}
	}
	if got := p.HoldsOn(alice); len(got) != 2 {
		t.Errorf("HoldsOn(alice) = %v", got)
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDecideEvents(t *testing.T) {
	pr := parseT(t, "id: OFFBOARD\nname: offboarding\nversion: 1\nnotice: Not legal advice.\nsources: [contract]\nzone: Europe/Berlin\n"+
		"rules:\n  - {class: default, min: 2y, max: 3y, start: \"event:account-closed\"}\n")
	as := []store.Assignment{{Preset: "OFFBOARD", Scope: "domain:example.org"}}
	arrival := date(2024, 3, 1, 12, 0, time.UTC)
	p := policyWith(t, []*Preset{pr}, as, nil, nil)
	d := p.Decide(Subject{Address: alice, Arrival: arrival})
	if !d.KeepUntil.Equal(store.Forever) || !d.DeleteAfter.IsZero() {
		t.Errorf("before the event: %+v", d)
	}
	closed := date(2025, 5, 5, 10, 0, time.UTC)
	p = policyWith(t, []*Preset{pr}, as, nil, []store.RetentionEvent{{Name: EventAccountClosed, Scope: "user:" + alice, At: closed}})
	d = p.Decide(Subject{Address: alice, Arrival: arrival})
	if !d.KeepUntil.Equal(date(2027, 5, 5, 10, 0, time.UTC)) || !d.DeleteAfter.Equal(date(2028, 5, 5, 10, 0, time.UTC)) {
		t.Errorf("after the event: %+v", d)
	}
	// Mail that arrived after the event counts from its arrival.
	late := date(2026, 1, 1, 0, 0, time.UTC)
	if d := p.Decide(Subject{Address: alice, Arrival: late}); !d.KeepUntil.Equal(date(2028, 1, 1, 0, 0, time.UTC)) {
		t.Errorf("late mail: %+v", d)
	}
	// Another account's event does not start alice's period.
	if d := p.Decide(Subject{Address: "bob@example.org", Arrival: arrival}); !d.KeepUntil.Equal(store.Forever) {
		t.Errorf("bob: %+v", d)
	}
}

func TestCheckUpgrade(t *testing.T) {
	v1 := parseT(t, "id: L\nname: l\nversion: 1\nnotice: n\nsources: [s]\nrules:\n  - {class: regulated-comms, min: 3y, locked: true}\n  - {class: spam, max: 30d}\n")
	for _, tc := range []struct {
		rules string
		ver   int
		msg   string
	}{
		{"  - {class: regulated-comms, min: 5y, locked: true}\n", 2, ""},
		{"  - {class: regulated-comms, min: 36m, locked: true}\n  - {class: spam, max: 1d}\n", 2, ""},
		{"  - {class: regulated-comms, min: 5y, locked: true}\n", 1, "not above"},
		{"  - {class: regulated-comms, min: 2y, locked: true}\n", 2, "shortens the locked minimum"},
		{"  - {class: regulated-comms, min: 5y}\n", 2, "unlocks"},
		{"  - {class: spam, max: 30d}\n", 2, "drops the locked rule"},
		{"  - {class: regulated-comms, min: 5y, start: end-of-year, locked: true}\n", 2, "changes the start"},
		{"  - {class: regulated-comms, min: 5y, max: 9y, locked: true}\n", 2, "adds a maximum"},
	} {
		next := parseT(t, "id: L\nname: l\nversion: "+string(rune('0'+tc.ver))+"\nnotice: n\nsources: [s]\nrules:\n"+tc.rules)
		err := CheckUpgrade(v1, next)
		if tc.msg == "" && err != nil || tc.msg != "" && (err == nil || !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("upgrade to %q: %v, want %q", tc.rules, err, tc.msg)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		m    DeliveryMeta
		want string
	}{
		{DeliveryMeta{}, ClassDefault},
		{DeliveryMeta{Spam: true}, ClassSpam},
		{DeliveryMeta{ListID: "<list.example.org>"}, ClassNewsletter},
		{DeliveryMeta{ListUnsubscribe: "<mailto:u@x>"}, ClassNewsletter},
		{DeliveryMeta{Precedence: " Bulk "}, ClassNewsletter},
		{DeliveryMeta{Precedence: "first-class"}, ClassDefault},
		{DeliveryMeta{Submission: true, ListID: "x", Spam: true}, ClassDefault},
		{DeliveryMeta{Spam: true, ListID: "x"}, ClassSpam},
	} {
		if got := Classify(tc.m); got != tc.want {
			t.Errorf("Classify(%+v) = %s, want %s", tc.m, got, tc.want)
		}
	}
}

func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		in, key, str string
		bad          bool
	}{
		{"org", "org", "org", false},
		{"domain:Bücher.Example", "domain:xn--bcher-kva.example", "domain:xn--bcher-kva.example", false},
		{"user:Alice@Example.ORG", "user:alice@example.org", "user:alice@example.org", false},
		{"mailbox:alice@example.org/Archive/2024", "mailbox:alice@example.org#0", "mailbox:alice@example.org/Archive/2024", false},
		{"mailbox:alice@example.org/inbox", "mailbox:alice@example.org#0", "mailbox:alice@example.org/INBOX", false},
		{"mailbox:alice@example.org#42", "mailbox:alice@example.org#42", "mailbox:alice@example.org#42", false},
		{"mailbox:alice@example.org#0", "", "", true},
		{"mailbox:alice@example.org", "", "", true},
		{"user:not an address", "", "", true},
		{"domain:1.2.3.4", "", "", true},
		{"team:x", "", "", true},
		{"", "", "", true},
	} {
		s, err := ParseScope(tc.in)
		if (err != nil) != tc.bad || err == nil && (s.Key() != tc.key || s.String() != tc.str) {
			t.Errorf("ParseScope(%q) = %q %q, %v", tc.in, s.Key(), s.String(), err)
		}
	}
}

func FuzzParsePreset(f *testing.F) {
	ps, _ := Builtin()
	for _, p := range ps {
		f.Add(p.Source)
	}
	f.Add([]byte(presetHead + "rules: [{class: default, min: 0d, max: 0d, start: receipt}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePreset(strings.NewReader(string(b)), "fuzz.yaml")
		if err != nil {
			var pe *PresetError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a *PresetError: %v", err)
			}
			return
		}
		if p.ID == "" || len(p.Rules) == 0 || p.Version < 1 {
			t.Fatalf("accepted an incomplete preset: %+v", p)
		}
		for _, r := range p.Rules {
			if r.HasMax && r.Min.exceeds(r.Max) {
				t.Fatalf("accepted min above max: %+v", r)
			}
		}
	})
}

// TestShortestMax: the fewest days the policy keeps an account's mail
// before a sweep may destroy it, over the rules assigned to scopes that
// cover the account; months count from their shortest start.
func TestShortestMax(t *testing.T) {
	keep := parseT(t, "id: KEEP\nname: keep\nversion: 1\nnotice: Not legal advice.\nsources: [house rules]\n"+
		"rules:\n  - {class: default, min: 30d, max: 90d}\n  - {class: newsletter, max: 1m}\n")
	forever := parseT(t, "id: FOREVER\nname: forever\nversion: 1\nnotice: Not legal advice.\nsources: [house rules]\n"+
		"rules:\n  - {class: default, min: 1y}\n")
	as := []store.Assignment{
		{Preset: "KEEP", Scope: "domain:example.org"},
		{Preset: "FOREVER", Scope: "user:bob@example.net"},
	}
	p := policyWith(t, []*Preset{keep, forever}, as, nil, nil)
	for _, c := range []struct {
		address string
		days    int
		ok      bool
	}{
		{alice, 28, true},               // one month from the start of February 2023
		{"bob@example.net", 0, false},   // a minimum only: never deleted on its own
		{"carol@example.com", 0, false}, // nothing assigned
		{"", 28, true},                  // any account
	} {
		if days, ok := p.ShortestMax(c.address); days != c.days || ok != c.ok {
			t.Errorf("ShortestMax(%q) = %d, %v; want %d, %v", c.address, days, ok, c.days, c.ok)
		}
	}
	if days, ok := policyWith(t, nil, nil, nil, nil).ShortestMax(""); ok {
		t.Errorf("no assignments: %d days", days)
	}
}
