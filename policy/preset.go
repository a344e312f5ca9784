package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // presets name IANA zones; a minimal system may lack the database

	"go.yaml.in/yaml/v3"
)

// Retention classes. A class is decided from metadata only (Classify, a
// mailbox's assignment) and is the one classification stored in the
// clear. Persisted: never rename one.
const (
	ClassDefault          = "default"
	ClassBusinessLetter   = "business-letter"
	ClassAccountingRecord = "accounting-record"
	ClassRegulatedComms   = "regulated-comms"
	ClassPersonal         = "personal"
	ClassNewsletter       = "newsletter"
	ClassSpam             = "spam"
	ClassTrash            = "trash"
)

// ClassInfo describes one retention class.
type ClassInfo struct {
	ID          string `json:"id"`
	Description string `json:"description"`
}

var classes = []ClassInfo{
	{ClassDefault, "mail no other class fits; a preset's default rule also applies to every class it has no rule for"},
	{ClassBusinessLetter, "commercial correspondence: letters received and copies of letters sent (HGB §257 Handelsbriefe)"},
	{ClassAccountingRecord, "accounting records and vouchers: invoices, receipts, bank statements (Buchungsbelege)"},
	{ClassRegulatedComms, "communications a regulator requires to be kept (SEC 17a-4, MiFID II, HIPAA documentation)"},
	{ClassPersonal, "private mail of staff"},
	{ClassNewsletter, "list and bulk mail (List-Id, List-Unsubscribe, Precedence: bulk)"},
	{ClassSpam, "mail judged to be spam, or kept in a \\Junk mailbox"},
	{ClassTrash, "mail kept in a \\Trash mailbox"},
}

// Classes lists the retention classes.
func Classes() []ClassInfo { return slices.Clone(classes) }

// IsClass reports whether id names a retention class.
func IsClass(id string) bool {
	return slices.ContainsFunc(classes, func(c ClassInfo) bool { return c.ID == id })
}

// Period is a retention period with a calendar unit: days, weeks, months
// or years. "0d" is none: what it bounds happens at the next sweep.
type Period struct {
	N    int
	Unit byte // 'd', 'w', 'm' or 'y'
}

// maxPeriodYears bounds a period (and so every computed time) far below
// store.Forever.
const maxPeriodYears = 200

// ParsePeriod parses "30d", "2w", "6m", "10y".
func ParsePeriod(s string) (Period, error) {
	if len(s) < 2 {
		return Period{}, fmt.Errorf("period %q: want a number and a unit (d, w, m or y), e.g. 30d or 6y", s)
	}
	unit := s[len(s)-1]
	digits := s[:len(s)-1]
	if strings.Trim(digits, "0123456789") != "" || len(digits) > 6 {
		return Period{}, fmt.Errorf("period %q: want a number and a unit (d, w, m or y), e.g. 30d or 6y", s)
	}
	n, _ := strconv.Atoi(digits)
	p := Period{N: n, Unit: unit}
	var years float64
	switch unit {
	case 'd':
		years = float64(n) / 365
	case 'w':
		years = float64(n) * 7 / 365
	case 'm':
		years = float64(n) / 12
	case 'y':
		years = float64(n)
	default:
		return Period{}, fmt.Errorf("period %q: unknown unit %q; use d, w, m or y", s, unit)
	}
	if years > maxPeriodYears {
		return Period{}, fmt.Errorf("period %q: longer than %d years", s, maxPeriodYears)
	}
	return p, nil
}

func (p Period) String() string {
	if p.Unit == 0 {
		return "0d"
	}
	return strconv.Itoa(p.N) + string(p.Unit)
}

// IsZero reports whether p is no time at all.
func (p Period) IsZero() bool { return p.N == 0 }

// AddTo returns t plus p, in t's location. Months and years keep the day
// of the month, or take the month's last day where it has no such day
// (as BGB §188(3) counts: a year from 29 February ends on 28 February),
// so a period never spills into the month after.
func (p Period) AddTo(t time.Time) time.Time {
	switch p.Unit {
	case 'd':
		return t.AddDate(0, 0, p.N)
	case 'w':
		return t.AddDate(0, 0, 7*p.N)
	case 'm':
		return addMonths(t, p.N)
	case 'y':
		return addMonths(t, 12*p.N)
	}
	return t
}

func addMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// fewestDays returns the fewest whole days p lasts from any start: it is
// tried from the first and last day of every month of a leap and a common
// year, as exceeds does.
func (p Period) fewestDays() int {
	switch p.Unit {
	case 'd':
		return p.N
	case 'w':
		return 7 * p.N
	}
	fewest := -1
	for _, y := range []int{2023, 2024} {
		for m := time.January; m <= time.December; m++ {
			for _, first := range []bool{true, false} {
				t := time.Date(y, m, 1, 12, 0, 0, 0, time.UTC)
				if !first {
					t = t.AddDate(0, 1, -1)
				}
				if d := int(p.AddTo(t).Sub(t) / (24 * time.Hour)); fewest < 0 || d < fewest {
					fewest = d
				}
			}
		}
	}
	return max(fewest, 0)
}

// exceeds reports whether p can end later than q from the same start: it
// is tried from the first and last day of every month of a leap and a
// common year.
func (p Period) exceeds(q Period) bool {
	for _, y := range []int{2023, 2024} {
		for m := time.January; m <= time.December; m++ {
			for _, first := range []bool{true, false} {
				t := time.Date(y, m, 1, 12, 0, 0, 0, time.UTC)
				if !first {
					t = t.AddDate(0, 1, -1)
				}
				if p.AddTo(t).After(q.AddTo(t)) {
					return true
				}
			}
		}
	}
	return false
}

// StartKind says when a retention period starts.
type StartKind uint8

const (
	StartReceipt         StartKind = iota // the server's arrival time
	StartEndOfYear                        // the end of the calendar year of arrival, in the zone
	StartEndOfFiscalYear                  // the end of the fiscal year of arrival, in the zone
	StartEvent                            // when an event ("account-closed") happens for the message's scope
)

// Start is a rule's start.
type Start struct {
	Kind  StartKind
	Event string // for StartEvent
}

var eventName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// EventAccountClosed happens for "user:ADDRESS" when the account is
// deleted; sealmail records it itself.
const EventAccountClosed = "account-closed"

// ParseStart parses "receipt", "end-of-year", "end-of-fiscal-year" or
// "event:NAME".
func ParseStart(s string) (Start, error) {
	switch s {
	case "receipt":
		return Start{Kind: StartReceipt}, nil
	case "end-of-year":
		return Start{Kind: StartEndOfYear}, nil
	case "end-of-fiscal-year":
		return Start{Kind: StartEndOfFiscalYear}, nil
	}
	if name, ok := strings.CutPrefix(s, "event:"); ok {
		if !eventName.MatchString(name) {
			return Start{}, fmt.Errorf("start %q: an event name is lower-case letters, digits and '-'", s)
		}
		return Start{Kind: StartEvent, Event: name}, nil
	}
	return Start{}, fmt.Errorf("start %q: want receipt, end-of-year, end-of-fiscal-year or event:NAME", s)
}

func (s Start) String() string {
	switch s.Kind {
	case StartEndOfYear:
		return "end-of-year"
	case StartEndOfFiscalYear:
		return "end-of-fiscal-year"
	case StartEvent:
		return "event:" + s.Event
	}
	return "receipt"
}

// MonthDay is the first day of a fiscal year ("04-06" for 6 April).
type MonthDay struct {
	Month time.Month
	Day   int
}

// ParseMonthDay parses "MM-DD"; 29 February is refused (a fiscal year
// must start every year).
func ParseMonthDay(s string) (MonthDay, error) {
	t, err := time.Parse("01-02", s)
	if err != nil || len(s) != 5 {
		return MonthDay{}, fmt.Errorf("fiscal year start %q: want MM-DD, e.g. 04-06", s)
	}
	if t.Month() == time.February && t.Day() == 29 {
		return MonthDay{}, fmt.Errorf("fiscal year start %q: not every year has one", s)
	}
	return MonthDay{Month: t.Month(), Day: t.Day()}, nil
}

func (md MonthDay) String() string { return fmt.Sprintf("%02d-%02d", int(md.Month), md.Day) }

// Rule is a preset's rule for one class.
type Rule struct {
	Class string
	Min   Period
	// Max is the longest the class is kept, if HasMax.
	Max    Period
	HasMax bool
	Start  Start
	// Locked rules can only be lengthened: a new version of the preset
	// may not shorten or drop them, an assignment holding one cannot be
	// removed, and a message's keep-until from one never goes down (SEC
	// 17a-4's non-rewriteable, non-erasable records).
	Locked bool
	// Producible marks mail that escrow, when enabled, also seals to the
	// organisation's key so that it stays producible.
	Producible bool
	Note       string
	Line       int // in the preset's source
}

func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s min %s", r.Class, r.Min)
	if r.HasMax {
		fmt.Fprintf(&b, " max %s", r.Max)
	}
	fmt.Fprintf(&b, " from %s", r.Start)
	if r.Locked {
		b.WriteString(" locked")
	}
	return b.String()
}

// Preset is a jurisdiction's (or an organisation's own) retention rules,
// as data.
type Preset struct {
	ID          string
	Name        string
	Version     int
	Description string
	Notice      string   // says it is not legal advice
	Sources     []string // the law it follows
	ZoneName    string
	Zone        *time.Location // for end-of-year starts; UTC if not given
	FiscalYear  MonthDay       // start of the fiscal year; 01-01 if not given
	Rules       []Rule
	Builtin     bool
	Source      []byte // the YAML as written
}

// Rule returns p's rule for class, else its default rule, else nil.
func (p *Preset) Rule(class string) *Rule {
	var def *Rule
	for i := range p.Rules {
		switch p.Rules[i].Class {
		case class:
			return &p.Rules[i]
		case ClassDefault:
			def = &p.Rules[i]
		}
	}
	return def
}

// HasLocked reports whether p has a locked rule.
func (p *Preset) HasLocked() bool {
	return slices.ContainsFunc(p.Rules, func(r Rule) bool { return r.Locked })
}

// Ref is "ID@VERSION".
func (p *Preset) Ref() string { return p.ID + "@" + strconv.Itoa(p.Version) }

// Limits of a preset file.
const (
	MaxPresetBytes = 64 << 10
	maxRules       = 64
	maxSources     = 32
	maxTextBytes   = 1024
)

var presetID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// PresetError is a problem in a preset file, with the line it is on.
type PresetError struct {
	File string
	Line int // 0 if the whole file
	Msg  string
}

func (e *PresetError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ParsePreset reads a preset in sealmail's YAML schema (docs/retention.md)
// from r; file names it in errors. Unknown keys, missing required keys,
// bad values and impossible rules are *PresetError values naming the
// line.
func ParsePreset(r io.Reader, file string) (*Preset, error) {
	src, err := io.ReadAll(io.LimitReader(r, MaxPresetBytes+1))
	if err != nil {
		return nil, &PresetError{File: file, Msg: err.Error()}
	}
	if len(src) > MaxPresetBytes {
		return nil, &PresetError{File: file, Msg: fmt.Sprintf("larger than %d KiB", MaxPresetBytes>>10)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &PresetError{File: file, Msg: "empty file"}
		}
		return nil, &PresetError{File: file, Line: yamlErrLine(err), Msg: "not YAML: " + yamlErrText(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &PresetError{File: file, Line: extra.Line, Msg: "more than one YAML document"}
	}
	pp := presetParser{file: file}
	p := pp.preset(&doc)
	if pp.err != nil {
		return nil, pp.err
	}
	p.Source = src
	return p, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func yamlErrText(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	return yamlLine.ReplaceAllString(s, "")
}

// presetParser walks the YAML tree; the first error sticks.
type presetParser struct {
	file string
	err  error
}

func (pp *presetParser) fail(n *yaml.Node, format string, args ...any) {
	if pp.err == nil {
		pp.err = &PresetError{File: pp.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
	}
}

// mapping returns n's keys and values in order, failing on anything but a
// mapping of scalar keys without duplicates.
func (pp *presetParser) mapping(n *yaml.Node, what string) (keys []*yaml.Node, vals []*yaml.Node) {
	if n.Kind != yaml.MappingNode {
		pp.fail(n, "%s: want a mapping of keys to values", what)
		return nil, nil
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			pp.fail(k, "%s: keys are plain words", what)
			return nil, nil
		}
		if seen[k.Value] {
			pp.fail(k, "%s: key %q given twice", what, k.Value)
			return nil, nil
		}
		seen[k.Value] = true
		keys = append(keys, k)
		vals = append(vals, n.Content[i+1])
	}
	return keys, vals
}

func (pp *presetParser) str(n *yaml.Node, key string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		pp.fail(n, "%s: want a single value", key)
		return ""
	}
	if len(n.Value) > maxTextBytes {
		pp.fail(n, "%s: longer than %d bytes", key, maxTextBytes)
		return ""
	}
	return n.Value
}

func (pp *presetParser) boolean(n *yaml.Node, key string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		pp.fail(n, "%s: want true or false", key)
		return false
	}
	return n.Value == "true"
}

func (pp *presetParser) preset(doc *yaml.Node) *Preset {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	p := &Preset{FiscalYear: MonthDay{time.January, 1}, Zone: time.UTC}
	keys, vals := pp.mapping(root, "preset")
	have := map[string]*yaml.Node{}
	var rules *yaml.Node
	for i, k := range keys {
		v := vals[i]
		have[k.Value] = k
		switch k.Value {
		case "id":
			p.ID = pp.str(v, "id")
			if pp.err == nil && !presetID.MatchString(p.ID) {
				pp.fail(v, "id %q: letters, digits, '.', '_' and '-', at most 64", p.ID)
			}
		case "name":
			p.Name = pp.str(v, "name")
		case "version":
			s := pp.str(v, "version")
			n, err := strconv.Atoi(s)
			if pp.err == nil && (err != nil || n < 1 || n > 1<<30) {
				pp.fail(v, "version %q: want a whole number from 1 up", s)
			}
			p.Version = n
		case "description":
			p.Description = pp.str(v, "description")
		case "notice":
			p.Notice = pp.str(v, "notice")
		case "sources":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				pp.fail(v, "sources: want a list of the laws and documents the preset follows")
				break
			}
			if len(v.Content) > maxSources {
				pp.fail(v, "sources: more than %d", maxSources)
			}
			for _, s := range v.Content {
				p.Sources = append(p.Sources, pp.str(s, "sources"))
			}
		case "zone":
			p.ZoneName = pp.str(v, "zone")
			if pp.err == nil {
				loc, err := loadZone(p.ZoneName)
				if err != nil {
					pp.fail(v, "%v", err)
				}
				p.Zone = loc
			}
		case "fiscal-year-start":
			md, err := ParseMonthDay(pp.str(v, "fiscal-year-start"))
			if pp.err == nil && err != nil {
				pp.fail(v, "%v", err)
			}
			p.FiscalYear = md
		case "rules":
			rules = v
		default:
			pp.fail(k, "unknown key %q (known: id, name, version, description, notice, sources, zone, fiscal-year-start, rules)", k.Value)
		}
	}
	if pp.err != nil {
		return nil
	}
	for _, req := range []string{"id", "name", "version", "notice", "sources", "rules"} {
		if have[req] == nil {
			pp.fail(root, "missing key %q", req)
			return nil
		}
	}
	if strings.TrimSpace(p.Notice) == "" {
		pp.fail(have["notice"], "notice: say what the preset is and that it is not legal advice")
	}
	if rules.Kind != yaml.SequenceNode || len(rules.Content) == 0 {
		pp.fail(rules, "rules: want a list of rules")
		return nil
	}
	if len(rules.Content) > maxRules {
		pp.fail(rules, "rules: more than %d", maxRules)
	}
	seen := map[string]int{}
	for i, rn := range rules.Content {
		r := pp.rule(rn, i+1)
		if pp.err != nil {
			return nil
		}
		if prev, dup := seen[r.Class]; dup {
			pp.fail(rn, "rule %d: class %q has a rule already (line %d)", i+1, r.Class, prev)
			return nil
		}
		seen[r.Class] = rn.Line
		p.Rules = append(p.Rules, r)
	}
	return p
}

func (pp *presetParser) rule(n *yaml.Node, i int) Rule {
	r := Rule{Line: n.Line}
	what := fmt.Sprintf("rule %d", i)
	keys, vals := pp.mapping(n, what)
	var hasClass bool
	var maxNode *yaml.Node
	for j, k := range keys {
		v := vals[j]
		switch k.Value {
		case "class":
			hasClass = true
			r.Class = pp.str(v, "class")
			if pp.err == nil && !IsClass(r.Class) {
				pp.fail(v, "%s: unknown class %q (known: %s)", what, r.Class, classList())
			}
		case "min":
			p, err := ParsePeriod(pp.str(v, "min"))
			if pp.err == nil && err != nil {
				pp.fail(v, "%s: min: %v", what, err)
			}
			r.Min = p
		case "max":
			s := pp.str(v, "max")
			if s == "none" {
				break
			}
			p, err := ParsePeriod(s)
			if pp.err == nil && err != nil {
				pp.fail(v, "%s: max: %v (or none)", what, err)
			}
			r.Max, r.HasMax, maxNode = p, true, v
		case "start":
			s, err := ParseStart(pp.str(v, "start"))
			if pp.err == nil && err != nil {
				pp.fail(v, "%s: %v", what, err)
			}
			r.Start = s
		case "locked":
			r.Locked = pp.boolean(v, "locked")
		case "producible":
			r.Producible = pp.boolean(v, "producible")
		case "note":
			r.Note = pp.str(v, "note")
		default:
			pp.fail(k, "%s: unknown key %q (known: class, min, max, start, locked, producible, note)", what, k.Value)
		}
	}
	if pp.err != nil {
		return r
	}
	if !hasClass {
		pp.fail(n, "%s: missing key \"class\"", what)
		return r
	}
	if r.HasMax && r.Min.exceeds(r.Max) {
		lock := ""
		if r.Locked {
			lock = "locked "
		}
		pp.fail(maxNode, "%s: class %s: min %s is longer than its %smax %s; the rule cannot be kept", what, r.Class, r.Min, lock, r.Max)
	}
	return r
}

func classList() string {
	ids := make([]string, len(classes))
	for i, c := range classes {
		ids[i] = c.ID
	}
	return strings.Join(ids, ", ")
}

// loadZone loads an IANA zone name; "" is UTC.
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if strings.ContainsAny(name, " \\") || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return nil, fmt.Errorf("zone %q: want an IANA zone name such as Europe/Berlin", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("zone %q: want an IANA zone name such as Europe/Berlin", name)
	}
	return loc, nil
}

// CheckUpgrade reports why next may not replace prev (the same preset
// ID): its version must be higher, and every locked rule of prev must
// still be there, locked, from the same start, and no shorter.
func CheckUpgrade(prev, next *Preset) error {
	if next.Version <= prev.Version {
		return fmt.Errorf("preset %s: version %d is not above version %d, which is in force", next.ID, next.Version, prev.Version)
	}
	for _, old := range prev.Rules {
		if !old.Locked {
			continue
		}
		var nr *Rule
		for i := range next.Rules {
			if next.Rules[i].Class == old.Class {
				nr = &next.Rules[i]
			}
		}
		switch {
		case nr == nil:
			return fmt.Errorf("preset %s version %d drops the locked rule for %s of version %d; a locked rule can only be lengthened", next.ID, next.Version, old.Class, prev.Version)
		case !nr.Locked:
			return fmt.Errorf("preset %s version %d (line %d) unlocks the rule for %s; a locked rule stays locked", next.ID, next.Version, nr.Line, old.Class)
		case nr.Start != old.Start:
			return fmt.Errorf("preset %s version %d (line %d) changes the start of the locked rule for %s", next.ID, next.Version, nr.Line, old.Class)
		case old.Min.exceeds(nr.Min):
			return fmt.Errorf("preset %s version %d (line %d) shortens the locked minimum for %s from %s to %s; a locked rule can only be lengthened", next.ID, next.Version, nr.Line, old.Class, old.Min, nr.Min)
		case old.HasMax && nr.HasMax && old.Max.exceeds(nr.Max):
			return fmt.Errorf("preset %s version %d (line %d) shortens the locked maximum for %s from %s to %s", next.ID, next.Version, nr.Line, old.Class, old.Max, nr.Max)
		case !old.HasMax && nr.HasMax:
			return fmt.Errorf("preset %s version %d (line %d) adds a maximum to the locked rule for %s", next.ID, next.Version, nr.Line, old.Class)
		}
	}
	return nil
}
