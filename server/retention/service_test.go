package retention

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

var bg = context.Background()

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Record(_ context.Context, e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Action)
	}
	return out
}

// find returns the last event with this action and scope, or nil.
func (r *recorder) find(action, scope string) *Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Action == action && r.events[i].Scope == scope {
			e := r.events[i]
			return &e
		}
	}
	return nil
}

func (r *recorder) last(action string) (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Action == action {
			return r.events[i], true
		}
	}
	return Event{}, false
}

type destroyedUIDs struct {
	mu     sync.Mutex
	uids   map[uint64][]uint32
	before map[uint64]uint64 // the last mod-sequence told per mailbox
}

func (d *destroyedUIDs) note(_ string, mbox uint64, uids []uint32, before uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.uids[mbox] = append(d.uids[mbox], uids...)
	d.before[mbox] = before
}

type fixture struct {
	st   *badgerstore.DB
	svc  *Service
	ws   store.Store // what the protocols use
	rec  *recorder
	gone *destroyedUIDs
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureAt(t, nil)
}

// newFixtureAt is newFixture with the service's clock now (nil: the
// real one).
func newFixtureAt(t *testing.T, now func() time.Time) *fixture {
	t.Helper()
	st, err := badgerstore.Open(t.TempDir(), badgerstore.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, rec: &recorder{}, gone: &destroyedUIDs{uids: map[uint64][]uint32{}, before: map[uint64]uint64{}}}
	f.svc, err = New(bg, Options{Store: st, Auditor: f.rec, OnDestroy: f.gone.note, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	f.ws = f.svc.Store()
	for _, a := range []string{"alice@example.org", "bob@example.org"} {
		if err := st.CreateAccount(bg, store.Account{Address: a, PublicKey: []byte("k"), Slots: []store.Slot{{Kind: store.SlotPassword, Data: []byte("s")}}}, store.DefaultMailboxes); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) mailbox(t *testing.T, addr, name string) store.Mailbox {
	t.Helper()
	mb, err := f.st.Mailbox(bg, addr, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

// deliver delivers n messages through the wrapped store (as SMTP does)
// with class origin ("" for default) to addr's mailbox.
func (f *fixture) deliver(t *testing.T, addr string, mailbox uint64, origin string, n int) []uint32 {
	t.Helper()
	var uids []uint32
	for i := 0; i < n; i++ {
		d := store.Delivery{Account: addr, MailboxID: mailbox, Blob: []byte("sealed " + strings.Repeat("x", i))}
		if origin != "" {
			d.Retention = &store.Retention{Origin: origin, Pending: true}
		}
		got, err := f.ws.Deliver(bg, []store.Delivery{d})
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, got[0].UID)
	}
	return uids
}

func (f *fixture) importPreset(t *testing.T, src string) {
	t.Helper()
	if _, err := f.svc.ImportPreset(bg, "cli:test", []byte(src), "test.yaml", ChangeOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) assign(t *testing.T, preset, scope string, force bool) ChangeResult {
	t.Helper()
	res, err := f.svc.Assign(bg, "cli:test", AssignRequest{Preset: preset, Scope: scope}, ChangeOptions{Force: force})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

const zeroDay = "id: ZERO\nname: zero\nversion: 1\nnotice: Not legal advice.\nsources: [test]\nrules:\n  - {class: default, min: 0d, max: 0d, start: receipt}\n"

const alice = "alice@example.org"

func TestStampAndVault(t *testing.T) {
	f := newFixture(t)
	f.assign(t, "DE-HGB-AO", "org", false)
	inbox := f.mailbox(t, alice, store.Inbox)
	uids := f.deliver(t, alice, 0, "", 2)
	news := f.deliver(t, alice, 0, policy.ClassNewsletter, 1)
	rs, err := f.st.RetainedByUID(bg, alice, inbox.ID, append(uids, news...))
	if err != nil || len(rs) != 3 {
		t.Fatalf("RetainedByUID = %v, %v", rs, err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	year := time.Now().In(berlin).Year()
	want := time.Date(year+7, 1, 1, 0, 0, 0, 0, berlin)
	if r := rs[0].Retention; r.Pending || !r.KeepUntil.Equal(want) || r.Class != policy.ClassDefault || !strings.Contains(r.Rule, "DE-HGB-AO@1") {
		t.Errorf("stamped %+v, want keep-until %s", r, want)
	}
	if r := rs[2].Retention; r.Class != policy.ClassNewsletter || !r.KeepUntil.IsZero() {
		t.Errorf("newsletter stamped %+v", r)
	}
	removed, err := f.ws.Expunge(bg, alice, inbox.ID, append(uids, news...))
	if err != nil || len(removed.UIDs) != 3 {
		t.Fatalf("Expunge = %v, %v", removed, err)
	}
	v, err := f.svc.Vault(bg, alice)
	if err != nil || len(v) != 2 || v[0].UID != uids[0] || !v[0].DueAt.Equal(want) {
		t.Errorf("Vault = %+v, %v", v, err)
	}
	e, ok := f.rec.last("vault.move")
	if !ok || e.Actor != "user:"+alice || e.Scope != "mailbox:"+alice+"/INBOX" || e.Detail["messages"] != "2" {
		t.Errorf("vault.move event %+v", e)
	}
	// Restore one.
	d, err := f.svc.Restore(bg, "cli:test", alice, v[0].ID, "")
	if err != nil || d.MailboxID != inbox.ID {
		t.Fatalf("Restore = %+v, %v", d, err)
	}
	if _, err := f.svc.Settle(bg); err != nil {
		t.Fatal(err)
	}
	if rs, _ := f.st.RetainedByUID(bg, alice, inbox.ID, []uint32{d.UID}); len(rs) != 1 || rs[0].Retention.Pending {
		t.Errorf("restored message not computed: %+v", rs)
	}
}

func TestZeroDaySweepAndHolds(t *testing.T) {
	f := newFixture(t)
	f.importPreset(t, zeroDay)
	inbox := f.mailbox(t, alice, store.Inbox)
	uids := f.deliver(t, alice, 0, "", 3)
	bobs := f.deliver(t, "bob@example.org", 0, "", 1)
	// Assigning it would destroy all four at the next sweep: refused
	// without --yes, listed by --dry-run.
	_, err := f.svc.Assign(bg, "cli:test", AssignRequest{Preset: "ZERO", Scope: "org"}, ChangeOptions{})
	if !errors.Is(err, ErrWouldDestroy) {
		t.Fatalf("Assign without force: %v", err)
	}
	res, err := f.svc.Assign(bg, "cli:test", AssignRequest{Preset: "ZERO", Scope: "org"}, ChangeOptions{DryRun: true})
	if err != nil || res.Applied || res.Impact.Messages != 4 || len(res.Impact.Lines) != 2 {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	if as, _ := f.st.Assignments(bg); len(as) != 0 {
		t.Fatalf("dry run assigned: %+v", as)
	}
	f.assign(t, "ZERO", "org", true)
	// A hold on alice: her mail survives the sweep and her account cannot
	// be deleted.
	h, err := f.svc.PlaceHold(bg, "cli:test", HoldRequest{Scope: "user:" + alice, Matter: "M-7", Reason: "lawsuit"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.MayDelete(bg, alice); !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "M-7") {
		t.Errorf("MayDelete under hold: %v", err)
	}
	if err := f.svc.MayDelete(bg, "bob@example.org"); err != nil {
		t.Errorf("MayDelete(bob): %v", err)
	}
	dry, err := f.svc.Sweep(bg, "cli:test", SweepOptions{DryRun: true})
	if err != nil || dry.Messages != 1 || dry.Lines[0].Account != "bob@example.org" {
		t.Fatalf("dry sweep = %+v, %v", dry, err)
	}
	rep, err := f.svc.Sweep(bg, ActorSweeper, SweepOptions{})
	if err != nil || rep.Messages != 1 || rep.Purge == nil {
		t.Fatalf("sweep = %+v, %v", rep, err)
	}
	if ms, _ := f.st.Messages(bg, alice, inbox.ID, store.ListOptions{}); len(ms) != 3 {
		t.Errorf("held mail destroyed: %d left", len(ms))
	}
	e, ok := f.rec.last("retention.destroy")
	if !ok || e.Actor != ActorSweeper || e.Scope != "org" || e.Detail["messages"] != "1" || !strings.Contains(e.Detail["rules"], "ZERO@1") ||
		e.Detail["account_list"] != "bob@example.org:1" {
		t.Errorf("retention.destroy event %+v", e)
	}
	if e := f.rec.find("retention.sweep", "user:bob@example.org"); e == nil || e.Detail["messages"] != "1" || e.Detail["classes"] != "default:1" {
		t.Errorf("retention.sweep event for bob %+v", e)
	}
	// Released: the next sweep destroys alice's mail and tells IMAP.
	rel, err := f.svc.ReleaseHold(bg, "cli:test", h.Hold.ID, "settled", nil)
	if err != nil || rel.Due.Messages != 3 {
		t.Fatalf("ReleaseHold = %+v, %v", rel, err)
	}
	if _, err := f.svc.ReleaseHold(bg, "cli:test", h.Hold.ID, "again", nil); err == nil {
		t.Errorf("released twice")
	}
	// Progress reaches the store.Progress of the context too (the
	// control socket's, the served sweeper's log).
	var progress []int64
	pctx := store.WithProgress(bg, func(done, total int64) { progress = append(progress, done) })
	rep, err = f.svc.Sweep(pctx, ActorSweeper, SweepOptions{})
	if err != nil || rep.Messages != 3 || rep.FromVault != 0 {
		t.Fatalf("sweep after release = %+v, %v", rep, err)
	}
	if len(progress) == 0 || progress[len(progress)-1] != 3 {
		t.Errorf("progress reported %v", progress)
	}
	if got := f.gone.uids[inbox.ID]; len(got) != 3 || got[0] != uids[0] {
		t.Errorf("OnDestroy told %v", got)
	}
	// The sweep's one destroying commit was the inbox's last change: the
	// mod-sequence told is the inbox's HIGHESTMODSEQ just before it.
	if got, now := f.gone.before[inbox.ID], f.mailbox(t, alice, store.Inbox).HighestModSeq; got == 0 || got != now-1 {
		t.Errorf("OnDestroy told mod-sequence %d before the removal; the inbox's HIGHESTMODSEQ is now %d", got, now)
	}
	_ = bobs
	want := []string{"policy.import", "policy.assign", "hold.place", "retention.destroy", "retention.sweep", "retention.sweep",
		"hold.release", "retention.destroy", "retention.sweep", "retention.sweep"}
	if got := f.rec.actions(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("audited %v, want %v", got, want)
	}
	if f.svc.LastSweep() == nil || f.svc.LastSweep().Messages != 3 {
		t.Errorf("LastSweep = %+v", f.svc.LastSweep())
	}
}

func TestLockedPreset(t *testing.T) {
	f := newFixture(t)
	f.assign(t, "US-SEC-17a-4", "domain:example.org", false)
	_, err := f.svc.Unassign(bg, "cli:test", "US-SEC-17a-4", "domain:example.org", ChangeOptions{})
	if !errors.Is(err, ErrLocked) {
		t.Errorf("Unassign of a locked preset: %v", err)
	}
	shorter := "id: US-SEC-17a-4\nname: x\nversion: 2\nnotice: n\nsources: [s]\nrules:\n  - {class: regulated-comms, min: 2y, locked: true}\n  - {class: default, min: 3y, locked: true}\n  - {class: business-letter, min: 3y, locked: true}\n"
	if _, err := f.svc.ImportPreset(bg, "cli:test", []byte(shorter), "sec.yaml", ChangeOptions{}); err == nil || !strings.Contains(err.Error(), "shortens") {
		t.Errorf("import shortening a locked rule: %v", err)
	}
	longer := strings.Replace(shorter, "min: 2y", "min: 6y", 1)
	res, err := f.svc.ImportPreset(bg, "cli:test", []byte(longer), "sec.yaml", ChangeOptions{})
	if err != nil || res.Preset != "US-SEC-17a-4@2" {
		t.Errorf("import lengthening = %+v, %v", res, err)
	}
	bad := "id: X\nname: x\nversion: 1\nnotice: n\nsources: [s]\nrules:\n  - {class: default, min: 3y, max: 1y, locked: true}\n"
	_, err = f.svc.ImportPreset(bg, "cli:test", []byte(bad), "bad.yaml", ChangeOptions{})
	var re *Error
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "bad.yaml:7:") {
		t.Errorf("bad import: %v", err)
	}
}

func TestMoveChangesClass(t *testing.T) {
	f := newFixture(t)
	f.assign(t, "EU-GDPR", "org", false)
	inv, err := f.st.CreateMailbox(bg, alice, store.MailboxSpec{Name: "Invoices"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Assign(bg, "cli:test", AssignRequest{Preset: "DE-HGB-AO", Scope: "mailbox:" + alice + "/Invoices", Class: policy.ClassAccountingRecord}, ChangeOptions{}); err != nil {
		t.Fatal(err)
	}
	inbox := f.mailbox(t, alice, store.Inbox)
	uids := f.deliver(t, alice, 0, policy.ClassNewsletter, 1)
	res, err := f.ws.MoveMessages(bg, alice, inbox.ID, inv.ID, uids)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Settle(bg); err != nil {
		t.Fatal(err)
	}
	rs, err := f.st.RetainedByUID(bg, alice, inv.ID, []uint32{res.Pairs[0].Dst})
	if err != nil || len(rs) != 1 {
		t.Fatal(err)
	}
	r := rs[0].Retention
	if r.Pending || r.Class != policy.ClassAccountingRecord || r.Origin != policy.ClassNewsletter || r.KeepUntil.IsZero() {
		t.Errorf("moved into Invoices: %+v", r)
	}
	// Into the trash: class trash, 30 days from arrival, and no minimum
	// (a newsletter has none).
	trash := f.mailbox(t, alice, "Trash")
	res, err = f.ws.MoveMessages(bg, alice, inv.ID, trash.ID, []uint32{res.Pairs[0].Dst})
	if err != nil {
		t.Fatal(err)
	}
	f.svc.Settle(bg)
	rs, _ = f.st.RetainedByUID(bg, alice, trash.ID, []uint32{res.Pairs[0].Dst})
	if r := rs[0].Retention; r.Class != policy.ClassTrash || r.DeleteAfter.IsZero() || !r.KeepUntil.IsZero() {
		t.Errorf("moved into the trash: %+v", r)
	}
	// Effective explains it.
	eff, err := f.svc.Effective(bg, alice, "Invoices", 0)
	if err != nil || eff.MailboxClass != policy.ClassAccountingRecord || len(eff.Classes) != 1 || len(eff.Assignments) != 2 {
		t.Errorf("Effective(Invoices) = %+v, %v", eff, err)
	}
	eff, err = f.svc.Effective(bg, alice, "Trash", res.Pairs[0].Dst)
	if err != nil || eff.Message == nil || !eff.Message.UpToDate || eff.Message.Decided.Class != policy.ClassTrash {
		t.Errorf("Effective(Trash, uid) = %+v, %v", eff, err)
	}
}

func TestErase(t *testing.T) {
	f := newFixture(t)
	f.assign(t, "DE-HGB-AO", "org", false)
	inbox := f.mailbox(t, alice, store.Inbox)
	f.deliver(t, alice, 0, "", 2)                     // business mail: kept 6 years
	f.deliver(t, alice, 0, policy.ClassNewsletter, 3) // no obligation
	archive := f.mailbox(t, alice, "Archive")
	if _, err := f.svc.PlaceHold(bg, "cli:test", HoldRequest{Scope: "mailbox:" + alice + "/Archive", Matter: "TAX-2026", Reason: "tax audit"}, nil); err != nil {
		t.Fatal(err)
	}
	f.deliver(t, alice, archive.ID, policy.ClassNewsletter, 1)
	rep, err := f.svc.Erase(bg, "cli:test", alice, "data subject request 42", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Destroyed != 3 || len(rep.Kept) != 3 || rep.Restricted != 3 || len(rep.Bases) != 2 {
		t.Fatalf("Erase = %+v", rep)
	}
	if !strings.Contains(rep.Bases[0].Basis, "Art. 17(3)(b)") || !strings.Contains(rep.Bases[0].Basis, "DE-HGB-AO@1") ||
		!strings.Contains(rep.Bases[1].Basis, "Art. 17(3)(e)") || !strings.Contains(rep.Bases[1].Basis, "TAX-2026") {
		t.Errorf("bases %+v", rep.Bases)
	}
	for _, mb := range []uint64{inbox.ID, archive.ID} {
		if ms, _ := f.st.Messages(bg, alice, mb, store.ListOptions{}); len(ms) != 0 {
			t.Errorf("mailbox #%d still shows %d messages", mb, len(ms))
		}
	}
	v, _ := f.svc.Vault(bg, alice)
	if len(v) != 3 || !strings.Contains(v[0].Reason, "GDPR Art. 18") {
		t.Errorf("vault after erase: %+v", v)
	}
	e, ok := f.rec.last("compliance.erase")
	if !ok || e.Reason != "data subject request 42" || e.Detail["destroyed"] != "3" || e.Detail["kept"] != "3" {
		t.Errorf("compliance.erase event %+v", e)
	}
}

func TestAccountClosedEvent(t *testing.T) {
	f := newFixture(t)
	f.importPreset(t, "id: OFF\nname: offboarding\nversion: 1\nnotice: Not legal advice.\nsources: [contract]\n"+
		"rules:\n  - {class: default, min: 1y, start: \"event:account-closed\"}\n")
	f.assign(t, "OFF", "org", false)
	f.deliver(t, alice, 0, "", 2)
	before := time.Now()
	if _, err := f.svc.Store().DeleteAccount(bg, alice); err != nil {
		t.Fatal(err)
	}
	v, err := f.svc.Vault(bg, alice)
	if err != nil || len(v) != 2 || v[0].Former == 0 {
		t.Fatalf("Vault after delete = %+v, %v", v, err)
	}
	// The period started when the account was closed.
	if k := v[0].Retention.KeepUntil; k.Before(before.AddDate(1, 0, 0).Add(-time.Second)) || k.After(time.Now().AddDate(1, 0, 0)) {
		t.Errorf("keep-until %s, want a year after the deletion", k)
	}
	if _, ok := f.rec.last("retention.event"); !ok {
		t.Errorf("no retention.event audited: %v", f.rec.actions())
	}
	if e, ok := f.rec.last("vault.move"); !ok || e.Detail["messages"] != "2" {
		t.Errorf("vault.move %+v", e)
	}
}

// TestStaleStampIsPending: a delivery stamped under the policy before a
// change is stored pending (protected), and Settle computes it.
func TestStaleStampIsPending(t *testing.T) {
	f := newFixture(t)
	old := f.svc.Policy()
	f.assign(t, "DE-HGB-AO", "org", false)
	st := old.Decide(policy.Subject{Address: alice, Arrival: time.Now()}).Stamp(policy.Subject{Address: alice, Arrival: time.Now()}, old.Gen)
	got, err := f.st.Deliver(bg, []store.Delivery{{Account: alice, Blob: []byte("x"), Retention: &st}})
	if err != nil {
		t.Fatal(err)
	}
	inbox := f.mailbox(t, alice, store.Inbox)
	if _, v, err := f.st.ExpungeReport(bg, alice, inbox.ID, []uint32{got[0].UID}); err != nil || len(v) != 1 {
		t.Errorf("stale stamp expunged: vaulted %v, %v", v, err)
	}
	if n, err := f.svc.Settle(bg); err != nil || n != 1 {
		t.Errorf("Settle = %d, %v", n, err)
	}
	v, _ := f.svc.Vault(bg, alice)
	if len(v) != 1 || v[0].Retention.Pending || v[0].Retention.KeepUntil.IsZero() {
		t.Errorf("vault entry after settle %+v", v)
	}
}

// TestRunSweepsAndSettles: Run computes what a move left pending and
// sweeps on its interval.
func TestRunSweepsAndSettles(t *testing.T) {
	f := newFixture(t)
	f.importPreset(t, zeroDay)
	svc, err := New(bg, Options{Store: f.st, SweepInterval: 50 * time.Millisecond, SettleInterval: 20 * time.Millisecond, SweepPause: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	inbox := f.mailbox(t, alice, store.Inbox)
	archive := f.mailbox(t, alice, "Archive")
	uids := f.deliver(t, alice, 0, "", 1)
	res, err := svc.Store().MoveMessages(bg, alice, inbox.ID, archive.ID, uids)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rs, err := f.st.RetainedByUID(bg, alice, archive.ID, []uint32{res.Pairs[0].Dst})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 1 && !rs[0].Retention.Pending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the moved message is still pending: %+v", rs)
		}
	}
	if _, err := svc.Assign(bg, "cli:test", AssignRequest{Preset: "ZERO", Scope: "org"}, ChangeOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ms, err := f.st.Messages(bg, alice, archive.ID, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 && svc.LastSweep() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run did not sweep: %d messages left, last sweep %+v", len(ms), svc.LastSweep())
		}
	}
}

func TestProducible(t *testing.T) {
	f := newFixture(t)
	if f.svc.Producible(alice, 0, "") {
		t.Errorf("producible without any policy")
	}
	f.assign(t, "US-SEC-17a-4", "user:"+alice, false)
	if !f.svc.Producible(alice, 0, "") || f.svc.Producible("bob@example.org", 0, "") {
		t.Errorf("producible under SEC 17a-4: alice %v, bob %v", f.svc.Producible(alice, 0, ""), f.svc.Producible("bob@example.org", 0, ""))
	}
}

// TestSweepAuditBounded: a sweep's audit is one event per batch plus one
// per account and one for the sweep, however the due order mixes
// accounts. The sweeper takes messages by due second, then by account:
// each round of deliveries arrives a second after the one before, so
// that every batch mixes all accounts (delivered in the same second,
// the batches would take the accounts one after another).
func TestSweepAuditBounded(t *testing.T) {
	var clock atomic.Int64 // Unix seconds
	clock.Store(time.Now().Add(-time.Hour).Unix())
	f := newFixtureAt(t, func() time.Time { return time.Unix(clock.Load(), 0) })
	f.importPreset(t, zeroDay)
	f.assign(t, "ZERO", "org", false)
	const accounts, per = 50, 30
	for a := range accounts {
		addr := fmt.Sprintf("u%02d@example.org", a)
		if err := f.st.CreateAccount(bg, store.Account{Address: addr, PublicKey: []byte("k"), Slots: []store.Slot{{Kind: store.SlotPassword, Data: []byte("s")}}}, store.DefaultMailboxes); err != nil {
			t.Fatal(err)
		}
	}
	for range per {
		for a := range accounts {
			f.deliver(t, fmt.Sprintf("u%02d@example.org", a), 0, "", 1)
		}
		clock.Add(1)
	}
	before := len(f.rec.actions())
	rep, err := f.svc.Sweep(bg, ActorSweeper, SweepOptions{})
	if err != nil || rep.Messages != accounts*per {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	got := f.rec.actions()[before:]
	batches := (accounts*per + store.MaxDestroyBatch - 1) / store.MaxDestroyBatch
	if len(got) != batches+accounts+1 {
		t.Errorf("%d audit events for %d messages of %d accounts: %v", len(got), accounts*per, accounts, got)
	}
	e, _ := f.rec.last("retention.destroy")
	if n, _ := strconv.Atoi(e.Detail["accounts"]); n <= 20 || !strings.HasSuffix(e.Detail["account_list"], fmt.Sprintf("+%d more", n-20)) {
		t.Errorf("batch event %+v", e.Detail)
	}
	if e := f.rec.find("retention.sweep", "org"); e == nil || e.Detail["messages"] != strconv.Itoa(accounts*per) || e.Detail["accounts"] != "50" {
		t.Errorf("sweep summary %+v", e)
	}
}

func TestComplianceReport(t *testing.T) {
	f := newFixture(t)
	const bob = "bob@example.org"
	f.assign(t, "DE-HGB-AO", "org", false)
	// A house rule on alice that wants her mail gone after 30 days (it
	// conflicts with the 6 years DE-HGB-AO keeps it) and newsletters at
	// the next sweep.
	f.importPreset(t, "id: SHORT\nname: short\nversion: 1\nnotice: Not legal advice.\nsources: [test]\nrules:\n"+
		"  - {class: default, max: 30d}\n  - {class: newsletter, max: 0d}\n")
	f.assign(t, "SHORT", "user:"+alice, true)
	inbox := f.mailbox(t, alice, store.Inbox)
	uids := f.deliver(t, alice, 0, "", 2)
	f.deliver(t, alice, 0, policy.ClassNewsletter, 1)
	f.deliver(t, bob, 0, "", 1)
	if _, err := f.ws.Expunge(bg, alice, inbox.ID, uids[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PlaceHold(bg, "cli:test", HoldRequest{Scope: "user:" + bob, Matter: "M-1", Reason: "audit"}, nil); err != nil {
		t.Fatal(err)
	}
	var phases int
	rep, err := f.svc.Report(bg, "cli:test", "", func(Progress) { phases++ })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scope != "org" || len(rep.Assignments) != 2 || len(rep.Holds) != 1 || len(rep.Accounts) != 2 || phases != 2 {
		t.Fatalf("report = %+v (progress %d)", rep, phases)
	}
	a := rep.Accounts[0]
	if a.Account != alice || len(a.Classes) != 2 {
		t.Fatalf("alice = %+v", a)
	}
	def, news := a.Classes[0], a.Classes[1]
	if def.Class != policy.ClassDefault || def.Messages != 2 || def.Vaulted != 1 || def.UnderMinimum != 2 || def.Conflict != 2 ||
		def.DueNow != 0 || def.NextDue.IsZero() || def.NoMaximum != 0 {
		t.Errorf("alice default = %+v", def)
	}
	if news.Class != policy.ClassNewsletter || news.Messages != 1 || news.DueNow != 1 || news.DueBytes == 0 || news.UnderMinimum != 0 {
		t.Errorf("alice newsletter = %+v", news)
	}
	b := rep.Accounts[1]
	if b.Account != bob || b.Total.Messages != 1 || b.Total.Held != 1 || b.Total.NoMaximum != 1 || b.Total.DueNow != 0 {
		t.Errorf("bob = %+v", b)
	}
	if rep.Total.Messages != 4 || rep.Total.DueNow != 1 || rep.Total.Held != 1 || rep.Total.Vaulted != 1 || !rep.Total.NextDue.Equal(def.NextDue) {
		t.Errorf("total = %+v", rep.Total)
	}
	e, ok := f.rec.last("compliance.report")
	if !ok || e.Scope != "org" || e.Detail["messages"] != "4" || e.Detail["due_now"] != "1" || e.Detail["conflict"] != "2" {
		t.Errorf("compliance.report event %+v", e)
	}
	// A narrower scope: only what covers it.
	rep, err = f.svc.Report(bg, "cli:test", "user:"+bob, nil)
	if err != nil || len(rep.Accounts) != 1 || len(rep.Assignments) != 1 || rep.Assignments[0].Preset != "DE-HGB-AO" || len(rep.Holds) != 1 {
		t.Errorf("report on bob = %+v, %v", rep, err)
	}
	if _, err := f.svc.Report(bg, "cli:test", "user:nobody@example.org", nil); err == nil {
		t.Errorf("report on an unknown account succeeded")
	}
}
