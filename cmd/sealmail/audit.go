package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/audit"
	"github.com/sealmail/sealmail/store"
)

// auditFlags are the flags of the audit commands.
type auditFlags struct {
	file     string
	fileOnly bool
	anchors  anchorList
	since    string
	from     uint64
}

// anchorList collects --anchor SEQ:HASH flags.
type anchorList []audit.Anchor

func (a *anchorList) String() string {
	s := make([]string, len(*a))
	for i, x := range *a {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func (a *anchorList) Set(v string) error {
	x, err := audit.ParseAnchor(v)
	if err != nil {
		return err
	}
	*a = append(*a, x)
	return nil
}

func init() {
	registerGroup("audit", "the audit log: verify its hash chain, export it, print its head")
	register(auditCommands()...)
}

func auditCommands() []*command {
	return []*command{
		{name: "audit verify", summary: "check the audit log's hash chain (the store's, and an exported file's with --file)",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.audit.file, "file", "", "check this export (`FILE` from audit export; - for standard input) and that the store holds the same records")
				fs.BoolVar(&f.audit.fileOnly, "file-only", false, "with --file: check the file alone, without a store (e.g. on another machine)")
				fs.Var(&f.audit.anchors, "anchor", "a record's hash kept elsewhere, `SEQ:HASH` as audit head or the server log print it; may repeat")
				jsonFlag(fs, f)
			}, run: runAuditVerify},
		{name: "audit export", summary: "write the audit log as JSON lines to standard output (docs/audit.md)",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.audit.since, "since", "", "start with the first record at or after `TIME` (RFC 3339, or a date YYYY-MM-DD in UTC)")
				fs.Uint64Var(&f.audit.from, "from", 0, "start with record number `SEQ`")
			}, run: runAuditExport},
		{name: "audit head", summary: "print the last record's number and hash (an anchor to keep elsewhere)",
			flags: jsonFlag, run: runAuditHead},
	}
}

// auditAdmin is what the audit commands need, from the store opened here
// (localAdmin) or from the running server (remoteAdmin).
type auditAdmin interface {
	AuditHead(ctx context.Context) (auditHead, error)
	// AuditRecords calls fn with every record from number from on (or,
	// with a non-zero since, from the first record at or after since), in
	// order.
	AuditRecords(ctx context.Context, from uint64, since time.Time, fn func(audit.JSONRecord) error) error
}

var (
	_ auditAdmin = (*localAdmin)(nil)
	_ auditAdmin = (*remoteAdmin)(nil)
)

// auditHead is `audit head --json` and the control protocol's answer.
type auditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"` // hex; "" for an empty log
	Time string `json:"time"` // crypto.AuditTimeLayout; "" for an empty log
}

func headOf(h store.AuditHead) auditHead {
	if h.Seq == 0 {
		return auditHead{}
	}
	return auditHead{Seq: h.Seq, Hash: hex.EncodeToString(h.Hash), Time: crypto.FormatAuditTime(h.Time)}
}

func (h auditHead) store() (store.AuditHead, error) {
	if h.Seq == 0 {
		return store.AuditHead{}, nil
	}
	hash, err := hex.DecodeString(h.Hash)
	if err != nil {
		return store.AuditHead{}, fmt.Errorf("head hash %q: %w", h.Hash, err)
	}
	t, err := time.Parse(crypto.AuditTimeLayout, h.Time)
	if err != nil {
		return store.AuditHead{}, fmt.Errorf("head time %q: %w", h.Time, err)
	}
	return store.AuditHead{Seq: h.Seq, Hash: hash, Time: t}, nil
}

func (a *localAdmin) AuditHead(ctx context.Context) (auditHead, error) {
	h, err := a.audit.Head(ctx)
	if err != nil {
		return auditHead{}, err
	}
	return headOf(h), nil
}

func (a *localAdmin) AuditRecords(ctx context.Context, from uint64, since time.Time, fn func(audit.JSONRecord) error) error {
	if !since.IsZero() {
		seq, err := a.audit.SeqAt(ctx, since)
		if err != nil {
			return err
		}
		from = max(from, seq)
	}
	return a.audit.Records(ctx, from, func(r store.AuditRecord) error { return fn(audit.ToJSON(r)) })
}

// cliActor names an OS user as an audit actor: "cli:NAME", or
// "cli:uid=N" when the name is unknown.
func cliActor(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli:uid=" + strconv.Itoa(uid)
}

// accountAuditor records server/account's changes in the audit log.
type accountAuditor struct{ log *audit.Service }

func (x accountAuditor) Record(ctx context.Context, e account.Event) error {
	return x.log.Record(ctx, accountEvent(e))
}

// accountEvent maps an account change to its audit event: the actions
// read as commands ("account.create"), like every other action.
func accountEvent(e account.Event) audit.Event {
	ev := audit.Event{Time: e.Time, Scope: "user:" + e.Account, Detail: map[string]string{}}
	if e.Slot != 0 {
		ev.Detail["slot"] = strconv.FormatUint(uint64(e.Slot), 10)
	}
	if e.Kind != 0 {
		ev.Detail["kind"] = e.Kind.String()
	}
	if e.Label != "" {
		ev.Detail["label"] = e.Label
	}
	switch e.Op {
	case account.OpCreated:
		ev.Action = "account.create"
	case account.OpDeleted:
		ev.Action = "account.delete"
	case account.OpPasswordChanged:
		ev.Action = "account.password-change"
	case account.OpSlotAdded:
		ev.Action = "slot.add"
	case account.OpSlotRevoked:
		ev.Action = "slot.revoke"
	case account.OpWKDChanged:
		ev.Action = "account.wkd"
		ev.Detail["publish"] = strconv.FormatBool(e.Publish)
	case account.OpAutocryptChanged:
		ev.Action = "account.autocrypt"
		ev.Detail["autocrypt"] = strconv.FormatBool(e.Publish)
	case account.OpSecretExported:
		ev.Action = "account.secret-key-export"
	case account.OpQuotaChanged:
		ev.Action = "account.quota"
		ev.Detail["quota"] = quotaSetting(e.Quota)
	default:
		// A new Op: record it under its own name rather than lose it.
		ev.Action = strings.ToLower(string(e.Op))
		if !strings.Contains(ev.Action, ".") {
			ev.Action = "account." + ev.Action
		}
	}
	return ev
}

// auditRule records a change to the allow and deny lists (action
// "filter.rule-add" or "filter.rule-remove"). The change is made; an
// error says it is not recorded.
func (a *localAdmin) auditRule(ctx context.Context, action string, r ruleInfo) error {
	scope := "org"
	if r.Owner != "" {
		scope = "user:" + r.Owner
	}
	err := a.audit.Record(ctx, audit.Event{Action: action, Scope: scope, Reason: r.Note, Detail: map[string]string{
		"id": strconv.FormatUint(r.ID, 10), "list": r.Action, "kind": r.Kind, "value": r.Value,
	}})
	if err != nil {
		return fmt.Errorf("entry %d changed but not audited: %w", r.ID, err)
	}
	return nil
}

// auditTrain records a training of the spam filter from an mbox file
// (what it changed, not what the messages said), also when it failed
// after learning some of them. It returns cause, or the audit error.
func (a *localAdmin) auditTrain(ctx context.Context, req trainRequest, res trainResult, cause error) error {
	if cause != nil && res.Messages == 0 {
		return cause
	}
	scope := "org"
	if !req.Org {
		scope = "user:" + req.Address
	}
	verdict := "ham"
	if req.Spam {
		verdict = "spam"
	}
	d := map[string]string{
		"verdict": verdict, "file": req.Path,
		"messages": strconv.Itoa(res.Messages), "unchanged": strconv.Itoa(res.Unchanged),
	}
	if cause != nil {
		d["outcome"] = "failed"
	}
	if err := a.audit.Record(ctx, audit.Event{Action: "filter.train", Scope: scope, Detail: d}); err != nil {
		return errors.Join(cause, fmt.Errorf("the training is done but not audited: %w", err))
	}
	return cause
}

// auditTraceSearch records a search of the delivery trace, which says
// who mailed whom: reading it is an act on personal data. The trace is
// sealed, so the log names which terms the search used but not their
// values (an address searched for would rest in the clear otherwise).
func (a *localAdmin) auditTraceSearch(ctx context.Context, q traceQuery, found int) error {
	d := map[string]string{"results": strconv.Itoa(found)}
	var terms []string
	for _, t := range []struct{ name, v string }{{"from", q.From}, {"to", q.To}, {"ip", q.IP}} {
		if t.v != "" {
			terms = append(terms, t.name)
		}
	}
	if len(terms) > 0 {
		d["terms"] = strings.Join(terms, ",")
	}
	switch q.Kind {
	case store.TraceInbound:
		d["kind"] = "inbound"
	case store.TraceOutbound:
		d["kind"] = "outbound"
	}
	if !q.Since.IsZero() {
		d["since"] = q.Since.UTC().Format(time.RFC3339)
	}
	if !q.Until.IsZero() {
		d["until"] = q.Until.UTC().Format(time.RFC3339)
	}
	if err := a.audit.Record(ctx, audit.Event{Action: "trace.search", Scope: "org", Detail: d}); err != nil {
		return fmt.Errorf("the search could not be audited, so its results are withheld: %w", err)
	}
	return nil
}

// quotaSetting spells a quota setting for the audit log: "default",
// "none" or a number of sealed bytes.
func quotaSetting(setting int64) string {
	switch setting {
	case store.QuotaDefault:
		return "default"
	case store.QuotaNone:
		return "none"
	}
	return strconv.FormatInt(setting, 10)
}

// withAudit runs f with an auditAdmin.
func (e *env) withAudit(f func(a auditAdmin) error) error {
	return e.withAdmin(func(a admin, _ *Config) error {
		aa, ok := a.(auditAdmin)
		if !ok {
			return errors.New("the audit log is not available here")
		}
		return f(aa)
	})
}

// parseSince reads --since: RFC 3339 or a date (midnight UTC).
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since: want a time like 2026-12-01T10:00:00Z or a date like 2026-12-01, got %q", s)
}

func runAuditExport(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	since, err := parseSince(e.flags.audit.since)
	if err != nil {
		return err
	}
	return e.withAudit(func(a auditAdmin) error {
		w := audit.NewWriter(e.io.out)
		return a.AuditRecords(ctx, e.flags.audit.from, since, func(j audit.JSONRecord) error {
			r, err := audit.FromJSON(j)
			if err != nil {
				return fmt.Errorf("record %d: %w", j.Seq, err)
			}
			if err := w.Write(r); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			return nil
		})
	})
}

func runAuditHead(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	return e.withAudit(func(a auditAdmin) error {
		h, err := a.AuditHead(ctx)
		if err != nil {
			return err
		}
		if e.flags.json {
			return writeJSON(e.io.out, h)
		}
		if h.Seq == 0 {
			fmt.Fprintln(e.io.out, "the audit log is empty")
			return nil
		}
		// The anchor alone on the last line, for scripts.
		fmt.Fprintf(e.io.out, "audit log head: record #%d of %s; keep this anchor elsewhere and check it later with audit verify --anchor:\n%d:%s\n",
			h.Seq, h.Time, h.Seq, h.Hash)
		return nil
	})
}

// verifyOutcome is `audit verify --json`.
type verifyOutcome struct {
	OK    bool           `json:"ok"`
	File  *verifiedChain `json:"file,omitempty"`
	Store *verifiedChain `json:"store,omitempty"`
	// Broken says where the first problem is.
	Broken *brokenChain `json:"broken,omitempty"`
}

type verifiedChain struct {
	Records  int      `json:"records"`
	First    uint64   `json:"first,omitempty"`
	Start    string   `json:"start,omitempty"` // prev of the first record, when it is not #1
	Head     *anchorJ `json:"head,omitempty"`
	Anchored []uint64 `json:"anchored,omitempty"`
}

type anchorJ struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	Time string `json:"time"`
}

type brokenChain struct {
	Source   string             `json:"source"` // "store" or "file"
	Seq      uint64             `json:"seq,omitempty"`
	Position int                `json:"position,omitempty"`
	Problem  string             `json:"problem"`
	Record   *audit.JSONRecord  `json:"record,omitempty"`
	record   *store.AuditRecord // for the text output
}

// errChainBroken makes `audit verify` exit 1 after printing its report.
var errChainBroken = errors.New("the audit log does not verify")

func runAuditVerify(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	f := e.flags.audit
	if f.fileOnly && f.file == "" {
		return usagef("--file-only needs --file")
	}
	var out verifyOutcome
	anchors := []audit.Anchor(f.anchors)
	if f.file != "" {
		fileAnchors, err := verifyFile(e, f.file, anchors, &out)
		if err != nil {
			return err
		}
		if out.Broken == nil && !f.fileOnly {
			// The store must hold every record of the file, unchanged.
			anchors = append(anchors, fileAnchors...)
		}
	}
	if out.Broken == nil && !f.fileOnly {
		p := e.progress("verify", unitItems)
		err := e.withAudit(func(a auditAdmin) error { return verifyStore(ctx, a, anchors, &out, p) })
		p.Done()
		if err != nil {
			return err
		}
	}
	out.OK = out.Broken == nil
	if e.flags.json {
		if err := writeJSON(e.io.out, out); err != nil {
			return err
		}
	} else {
		writeVerify(e.io.out, f.file, out)
	}
	if !out.OK {
		if !e.flags.json {
			b := out.Broken
			where := fmt.Sprintf("record #%d", b.Seq)
			if b.Source == "file" {
				where += fmt.Sprintf(" (line %d of %s)", b.Position, f.file)
			}
			if b.Seq == 0 {
				where = "the end of the chain"
			}
			return fmt.Errorf("%s: the %s's chain breaks at %s: %s", errChainBroken, b.Source, where, b.Problem)
		}
		return errChainBroken
	}
	return nil
}

// verifyFile checks an exported file and returns its records as anchors
// for the store's check.
func verifyFile(e *env, name string, anchors []audit.Anchor, out *verifyOutcome) ([]audit.Anchor, error) {
	var r io.Reader = e.io.in
	source := "the exported file"
	if name != "-" {
		fh, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		r = fh
		source = "the file " + name
	}
	v := audit.NewVerifier(anchors...)
	var fileAnchors []audit.Anchor
	err := audit.ReadJSON(r, func(_ int, rec store.AuditRecord) error {
		if err := v.Check(rec); err != nil {
			return err
		}
		fileAnchors = append(fileAnchors, audit.Anchor{Seq: rec.Seq, Hash: rec.Hash, Source: source})
		return nil
	})
	var le *audit.LineError
	if errors.As(err, &le) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err == nil {
		err = v.Finish()
	}
	res := &verifiedChain{Records: v.Count(), Anchored: v.Anchored()}
	if first, prev := v.Start(); first > 0 {
		res.First = first
		if first != 1 {
			res.Start = hex.EncodeToString(prev)
		}
	}
	if h := v.Head(); h.Seq > 0 {
		res.Head = &anchorJ{Seq: h.Seq, Hash: hex.EncodeToString(h.Hash), Time: crypto.FormatAuditTime(h.Time)}
	}
	out.File = res
	if b := broken("file", err); b != nil {
		out.Broken = b
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return fileAnchors, nil
}

// verifyStore checks the store's log through a, showing how far it got
// on progress.
func verifyStore(ctx context.Context, a auditAdmin, anchors []audit.Anchor, out *verifyOutcome, p *progress) error {
	hj, err := a.AuditHead(ctx)
	if err != nil {
		return err
	}
	head, err := hj.store()
	if err != nil {
		return err
	}
	var readErr error
	n := 0
	rep, err := audit.Verify(head, func(fn func(store.AuditRecord) error) error {
		return a.AuditRecords(ctx, 1, time.Time{}, func(j audit.JSONRecord) error {
			r, err := audit.FromJSON(j)
			if err != nil {
				readErr = fmt.Errorf("record %d: %w", j.Seq, err)
				return readErr
			}
			n++
			p.Set(int64(n), int64(head.Seq))
			return fn(r)
		})
	}, anchors...)
	res := &verifiedChain{Records: rep.Records, First: rep.First.Seq, Anchored: rep.Anchored}
	if rep.Head.Seq > 0 {
		res.Head = &anchorJ{Seq: rep.Head.Seq, Hash: hex.EncodeToString(rep.Head.Hash), Time: crypto.FormatAuditTime(rep.Head.Time)}
	}
	out.Store = res
	if b := broken("store", err); b != nil {
		out.Broken = b
		return nil
	}
	return err
}

// broken turns a *audit.ChainError into the report's form; nil for any
// other error.
func broken(source string, err error) *brokenChain {
	var ce *audit.ChainError
	if !errors.As(err, &ce) {
		return nil
	}
	b := &brokenChain{Source: source, Seq: ce.Seq, Position: ce.Index, Problem: ce.Problem, record: ce.Record}
	if ce.Record != nil {
		j := audit.ToJSON(*ce.Record)
		b.Record = &j
	}
	return b
}

func writeVerify(w io.Writer, file string, out verifyOutcome) {
	show := func(what string, c *verifiedChain, intact bool) {
		if c == nil {
			return
		}
		switch {
		case c.Records == 0 && intact:
			fmt.Fprintf(w, "%s: no records\n", what)
		case intact:
			fmt.Fprintf(w, "%s: %d records, #%d to #%d, chain intact\n", what, c.Records, c.First, c.Head.Seq)
		default:
			fmt.Fprintf(w, "%s: %d records check out before the break\n", what, c.Records)
		}
		if c.Start != "" {
			fmt.Fprintf(w, "  starts at #%d; it takes record #%d's hash %s on trust: compare it with an earlier export or anchor\n", c.First, c.First-1, c.Start)
		}
		if len(c.Anchored) > 0 && len(c.Anchored) <= 10 {
			fmt.Fprintf(w, "  anchors checked: %s\n", joinSeqs(c.Anchored))
		} else if len(c.Anchored) > 10 {
			fmt.Fprintf(w, "  %d anchors checked (#%d to #%d)\n", len(c.Anchored), c.Anchored[0], c.Anchored[len(c.Anchored)-1])
		}
		if intact && c.Head != nil {
			fmt.Fprintf(w, "  head: record #%d of %s\n  anchor: %d:%s\n", c.Head.Seq, c.Head.Time, c.Head.Seq, c.Head.Hash)
		}
	}
	broke := func(src string) bool { return out.Broken == nil || out.Broken.Source != src }
	if file != "" {
		show("file "+file, out.File, broke("file"))
	}
	show("store", out.Store, broke("store"))
	if b := out.Broken; b != nil && b.record != nil {
		r := b.record
		fmt.Fprintf(w, "first bad record: #%d %s %s %s %s", r.Seq, crypto.FormatAuditTime(r.Time), r.Actor, r.Action, r.Scope)
		if r.Reason != "" {
			fmt.Fprintf(w, " %q", r.Reason)
		}
		fmt.Fprintln(w)
	}
}

func joinSeqs(s []uint64) string {
	out := make([]string, len(s))
	for i, n := range s {
		out[i] = "#" + strconv.FormatUint(n, 10)
	}
	return strings.Join(out, ", ")
}

// logAuditHead logs the audit log's head, an anchor for whoever keeps
// the server's logs.
func logAuditHead(ctx context.Context, a *audit.Service, log *slog.Logger, when string) {
	h, err := a.Head(ctx)
	if err != nil {
		log.Error("audit log head "+when, "err", err)
		return
	}
	if h.Seq == 0 {
		log.Info("audit log empty " + when)
		return
	}
	log.Info(fmt.Sprintf("audit log head %s: record #%d of %s; anchor %d:%x", when, h.Seq, crypto.FormatAuditTime(h.Time), h.Seq, h.Hash))
}
