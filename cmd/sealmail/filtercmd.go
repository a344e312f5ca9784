package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/smtp/inbound"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// The filter and trace commands: allow and deny lists, bulk training of
// the spam filter, and the delivery trace.

func init() {
	registerGroup("filter", "the inbound filter: allow and deny lists, spam training")
	registerGroup("trace", "the delivery trace: every SMTP step of every message, inbound and outbound")
	for _, action := range []string{"allow", "deny"} {
		register(
			&command{name: "filter " + action + " add", args: "VALUE [--user ADDRESS] [--note TEXT] [--json]",
				summary: action + " a client network (CIDR or address), a sender domain or a sender address",
				flags: func(fs *flag.FlagSet, f *cmdFlags) {
					fs.StringVar(&f.user, "user", "", "the list of this account instead of the organisation's")
					fs.StringVar(&f.note, "note", "", "a note for operators")
					jsonFlag(fs, f)
				}, run: func(ctx context.Context, e *env, args []string) error { return runRuleAdd(ctx, e, action, args) }},
			&command{name: "filter " + action + " list", args: "[--user ADDRESS] [--json]",
				summary: "list the " + action + " entries (all owners, or one account's)",
				flags: func(fs *flag.FlagSet, f *cmdFlags) {
					fs.StringVar(&f.user, "user", "", "only this account's entries")
					jsonFlag(fs, f)
				}, run: func(ctx context.Context, e *env, args []string) error { return runRuleList(ctx, e, action, args) }},
			&command{name: "filter " + action + " remove", args: "ID [--json]",
				summary: "remove a " + action + " entry",
				flags:   jsonFlag,
				run:     func(ctx context.Context, e *env, args []string) error { return runRuleRemove(ctx, e, action, args) }},
		)
	}
	register(
		&command{name: "filter train", args: "ADDRESS|--org --spam|--ham FILE.mbox",
			summary: "train an account's spam filter (asks for its password) or the organisation's with an mbox file",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.org, "org", false, "train the organisation's model")
				fs.BoolVar(&f.spam, "spam", false, "the messages are spam")
				fs.BoolVar(&f.ham, "ham", false, "the messages are not spam")
				passwordFlag(fs, f)
			}, run: runTrain},
		&command{name: "trace search", args: "[--from A] [--to A] [--ip IP] [--since T] [--until T] [--limit N] [--json]",
			summary: "search the delivery trace (inbound verdicts and outbound attempts), newest first",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.from, "from", "", "envelope sender: an address or a domain")
				fs.StringVar(&f.to, "to", "", "a recipient: an address or a domain")
				fs.StringVar(&f.ip, "ip", "", "the client (inbound) or server (outbound): an address or CIDR prefix")
				fs.StringVar(&f.since, "since", "", "from this time (RFC 3339) or this long ago (90m, 24h)")
				fs.StringVar(&f.until, "until", "", "up to this time (RFC 3339) or this long ago")
				fs.StringVar(&f.direction, "direction", "", "inbound or outbound (default both)")
				fs.IntVar(&f.limit, "limit", 100, "at most this many records")
				jsonFlag(fs, f)
			}, run: runTraceSearch},
	)
}

// ruleInfo is one allow or deny entry, as the CLI and the control
// protocol show it.
type ruleInfo struct {
	ID      uint64    `json:"id"`
	Owner   string    `json:"owner,omitempty"` // "": the organisation's
	Action  string    `json:"action"`
	Kind    string    `json:"kind"`
	Value   string    `json:"value"`
	Note    string    `json:"note,omitempty"`
	Created time.Time `json:"created"`
}

func ruleInfoOf(r store.FilterRule) ruleInfo {
	return ruleInfo{ID: r.ID, Owner: r.Owner, Action: r.Action.String(), Kind: r.Kind.String(), Value: r.Value, Note: r.Note, Created: r.Created}
}

// parseRule makes a stored rule of what the operator typed: the kind
// follows from the value (an '@': an address; an address or prefix: a
// network; else a domain), each in its canonical form.
func parseRule(action, value, owner, note string) (store.FilterRule, error) {
	r := store.FilterRule{Note: note}
	switch action {
	case "allow":
		r.Action = store.FilterAllow
	case "deny":
		r.Action = store.FilterDeny
	default:
		return r, adminErrorf(nil, "unknown list %q", action)
	}
	if owner != "" {
		a, err := policy.CanonicalAddress(owner)
		if err != nil {
			return r, adminErrorf(err, "--user %s: %v", owner, err)
		}
		r.Owner = a
	}
	value = strings.TrimSpace(value)
	if len(note) > 1000 {
		return r, adminErrorf(nil, "the note is longer than 1000 bytes")
	}
	switch {
	case strings.Contains(value, "@") && !strings.HasPrefix(value, "@"):
		a, err := policy.CanonicalAddress(value)
		if err != nil {
			return r, adminErrorf(err, "%s: not an address: %v", value, err)
		}
		r.Kind, r.Value = store.FilterAddress, a
	default:
		if p, err := inbound.ParsePrefix(value); err == nil {
			r.Kind, r.Value = store.FilterCIDR, p.String()
			break
		}
		d, err := policy.NormalizeDomain(strings.TrimPrefix(value, "@"))
		if err != nil {
			return r, adminErrorf(err, "%s: not a network, domain or address", value)
		}
		r.Kind, r.Value = store.FilterDomain, d
	}
	return r, nil
}

func runRuleAdd(ctx context.Context, e *env, action string, args []string) error {
	if len(args) != 1 {
		return usagef("want exactly one VALUE")
	}
	r, err := parseRule(action, args[0], e.flags.user, e.flags.note)
	if err != nil {
		return err
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		got, err := a.AddRule(ctx, ruleInfoOf(r))
		if err != nil {
			return err
		}
		if e.flags.json {
			return writeJSON(e.io.out, got)
		}
		fmt.Fprintf(e.io.out, "added %s entry %d: %s %s%s\n", got.Action, got.ID, got.Kind, got.Value, ownerText(got.Owner))
		return nil
	})
}

func ownerText(owner string) string {
	if owner == "" {
		return " (organisation)"
	}
	return " (for " + owner + ")"
}

func runRuleList(ctx context.Context, e *env, action string, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	owner := ""
	if e.flags.user != "" {
		a, err := policy.CanonicalAddress(e.flags.user)
		if err != nil {
			return adminErrorf(err, "--user %s: %v", e.flags.user, err)
		}
		owner = a
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		all, err := a.Rules(ctx)
		if err != nil {
			return err
		}
		out := []ruleInfo{}
		for _, r := range all {
			if r.Action == action && (owner == "" || r.Owner == owner) {
				out = append(out, r)
			}
		}
		if e.flags.json {
			return writeJSON(e.io.out, out)
		}
		tw := tabwriter.NewWriter(e.io.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tOWNER\tKIND\tVALUE\tCREATED\tNOTE")
		for _, r := range out {
			o := r.Owner
			if o == "" {
				o = "(organisation)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.ID, o, r.Kind, r.Value, r.Created.UTC().Format(time.DateOnly), r.Note)
		}
		return tw.Flush()
	})
}

func runRuleRemove(ctx context.Context, e *env, action string, args []string) error {
	if len(args) != 1 {
		return usagef("want exactly one ID")
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || id == 0 {
		return usagef("%q is not an entry ID", args[0])
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		r, err := a.RemoveRule(ctx, id, action)
		if err != nil {
			return err
		}
		if e.flags.json {
			return writeJSON(e.io.out, r)
		}
		fmt.Fprintf(e.io.out, "removed %s entry %d: %s %s%s\n", r.Action, r.ID, r.Kind, r.Value, ownerText(r.Owner))
		return nil
	})
}

// trainRequest asks to train a model with an mbox file. The file is
// read by whoever runs the training: the CLI, or the running server
// (which serves only its own user over the control socket, so it reads
// what that user may read).
type trainRequest struct {
	Address string `json:"address,omitempty"` // "" with Org
	Org     bool   `json:"org,omitempty"`
	Spam    bool   `json:"spam"`
	Path    string `json:"path"` // absolute
}

// trainResult says what a training did.
type trainResult struct {
	Messages  int `json:"messages"`
	Unchanged int `json:"unchanged"`
}

func runTrain(ctx context.Context, e *env, args []string) error {
	f := e.flags
	if f.spam == f.ham {
		return usagef("say --spam or --ham")
	}
	var req trainRequest
	switch {
	case f.org && len(args) == 1:
		req.Org = true
	case !f.org && len(args) == 2:
		req.Address = args[0]
	default:
		return usagef("want ADDRESS FILE.mbox, or --org FILE.mbox")
	}
	path, err := filepath.Abs(args[len(args)-1])
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return adminErrorf(err, "%v", err)
	}
	req.Path, req.Spam = path, f.spam
	var pw []byte
	if !req.Org {
		pw, err = e.promptFirst(func() ([]byte, error) {
			return e.readSecret(fmt.Sprintf("Password for %s: ", req.Address))
		})
		if err != nil {
			return err
		}
		defer wipe(pw)
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		res, err := a.Train(ctx, req, pw)
		if err != nil {
			return err
		}
		what := "ham"
		if req.Spam {
			what = "spam"
		}
		model := "the organisation's model"
		if !req.Org {
			model = req.Address + "'s model"
		}
		fmt.Fprintf(e.io.out, "trained %s with %d messages as %s (%d trained so before)\n", model, res.Messages, what, res.Unchanged)
		return nil
	})
}

// traceQuery is a trace search, as the control protocol carries it.
type traceQuery struct {
	Kind  store.TraceKind `json:"kind,omitempty"`
	From  string          `json:"from,omitempty"`
	To    string          `json:"to,omitempty"`
	IP    string          `json:"ip,omitempty"`
	Since time.Time       `json:"since,omitzero"`
	Until time.Time       `json:"until,omitzero"`
	Limit int             `json:"limit,omitempty"`
}

// maxTraceResults bounds a search's answer.
const maxTraceResults = 10000

func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("%q is neither a time (2026-11-20T08:00:00Z, 2026-11-20) nor a duration (90m, 24h)", s)
}

func runTraceSearch(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	f := e.flags
	now := time.Now()
	q := traceQuery{From: f.from, To: f.to, IP: f.ip, Limit: f.limit}
	var err error
	if q.Since, err = parseWhen(f.since, now); err != nil {
		return err
	}
	if q.Until, err = parseWhen(f.until, now); err != nil {
		return err
	}
	switch f.direction {
	case "":
	case "inbound":
		q.Kind = store.TraceInbound
	case "outbound":
		q.Kind = store.TraceOutbound
	default:
		return usagef("--direction: want inbound or outbound")
	}
	if q.Limit <= 0 || q.Limit > maxTraceResults {
		return usagef("--limit: between 1 and %d", maxTraceResults)
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		recs, err := a.SearchTrace(ctx, q)
		if err != nil {
			return err
		}
		if f.json {
			if recs == nil {
				recs = []trace.Record{}
			}
			return writeJSON(e.io.out, recs)
		}
		return writeTrace(e.io.out, recs)
	})
}

// writeTrace prints records for people: one block per record, its
// reasons indented.
func writeTrace(w io.Writer, recs []trace.Record) error {
	bw := bufio.NewWriter(w)
	for _, r := range recs {
		ts := r.Time.UTC().Format(time.RFC3339)
		switch {
		case r.In != nil:
			in := r.In
			fmt.Fprintf(bw, "%s inbound %s %s from <%s> [%s %s] to %s\n  %s\n", ts, r.Ref, in.Result, in.From, in.IP, in.Helo,
				strings.Join(in.Rcpts, ", "), in.Reply)
			for _, rs := range in.Reasons {
				score := ""
				if rs.Score != 0 {
					score = fmt.Sprintf(" (%+.2f)", rs.Score)
				}
				fmt.Fprintf(bw, "    %-9s %s %s%s\n", rs.Check, rs.Result, rs.Detail, score)
			}
		case r.Out != nil:
			what, detail := outboundStep(r.Out)
			fmt.Fprintf(bw, "%s outbound %s %s %s\n", ts, r.Ref, r.Out.Event, what)
			if detail != "" {
				fmt.Fprintf(bw, "  %s\n", detail)
			}
		}
	}
	return bw.Flush()
}

// Local implementations of the filter and trace operations.

func (a *localAdmin) needStore() error {
	if a.st == nil || a.inb == nil {
		return errors.New("filter and trace operations are not available here")
	}
	return nil
}

func (a *localAdmin) AddRule(ctx context.Context, ri ruleInfo) (ruleInfo, error) {
	if err := a.needStore(); err != nil {
		return ruleInfo{}, err
	}
	// The request may come over the control socket: parse it again.
	r, err := parseRule(ri.Action, ri.Value, ri.Owner, ri.Note)
	if err != nil {
		return ruleInfo{}, err
	}
	got, err := a.st.AddFilterRule(ctx, r)
	switch {
	case errors.Is(err, store.ErrExists):
		return ruleInfo{}, adminErrorf(err, "%s %s is already on the %s list%s", r.Kind, r.Value, ri.Action, ownerText(r.Owner))
	case errors.Is(err, store.ErrNotFound):
		return ruleInfo{}, adminErrorf(err, "no account %s", r.Owner)
	case errors.Is(err, store.ErrTooLarge):
		return ruleInfo{}, adminErrorf(err, "too many entries (at most %d per owner)", store.MaxFilterRules)
	case err != nil:
		return ruleInfo{}, err
	}
	if a.inb.checker != nil {
		a.inb.checker.RulesChanged()
	}
	info := ruleInfoOf(got)
	return info, a.auditRule(ctx, "filter.rule-add", info)
}

func (a *localAdmin) Rules(ctx context.Context) ([]ruleInfo, error) {
	if err := a.needStore(); err != nil {
		return nil, err
	}
	rs, err := a.st.FilterRules(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ruleInfo, len(rs))
	for i, r := range rs {
		out[i] = ruleInfoOf(r)
	}
	return out, nil
}

func (a *localAdmin) RemoveRule(ctx context.Context, id uint64, action string) (ruleInfo, error) {
	rs, err := a.Rules(ctx)
	if err != nil {
		return ruleInfo{}, err
	}
	for _, r := range rs {
		if r.ID != id {
			continue
		}
		if r.Action != action {
			return ruleInfo{}, adminErrorf(nil, "entry %d is on the %s list, not the %s list", id, r.Action, action)
		}
		if err := a.st.RemoveFilterRule(ctx, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return ruleInfo{}, adminErrorf(err, "no entry %d", id)
			}
			return ruleInfo{}, err
		}
		if a.inb.checker != nil {
			a.inb.checker.RulesChanged()
		}
		return r, a.auditRule(ctx, "filter.rule-remove", r)
	}
	return ruleInfo{}, adminErrorf(nil, "no entry %d", id)
}

func (a *localAdmin) Train(ctx context.Context, req trainRequest, secret []byte) (trainResult, error) {
	if err := a.needStore(); err != nil {
		return trainResult{}, err
	}
	if !filepath.IsAbs(req.Path) {
		return trainResult{}, adminErrorf(nil, "the mbox path must be absolute")
	}
	f, err := os.Open(req.Path)
	if err != nil {
		return trainResult{}, adminErrorf(err, "%v", err)
	}
	defer f.Close()
	if req.Org {
		res, err := a.inb.filter.LearnOrg(ctx, req.Spam, mboxMessages(f))
		out := trainResult{Messages: res.Messages, Unchanged: res.Unchanged}
		return out, a.auditTrain(ctx, req, out, err)
	}
	sess, err := a.svc.Login(ctx, account.LoginRequest{Username: req.Address, Secret: secret})
	if err != nil {
		if errors.Is(err, account.ErrBadCredentials) {
			return trainResult{}, adminErrorf(err, "wrong address or password")
		}
		return trainResult{}, adminErr(err)
	}
	defer sess.Close()
	res, err := a.inb.filter.Learn(ctx, sess.Account(), sess.Keyring(), req.Spam, mboxMessages(f))
	out := trainResult{Messages: res.Messages, Unchanged: res.Unchanged}
	return out, a.auditTrain(ctx, req, out, err)
}

func (a *localAdmin) SearchTrace(ctx context.Context, q traceQuery) ([]trace.Record, error) {
	if err := a.needStore(); err != nil {
		return nil, err
	}
	if a.inb.codec == nil && a.cfg != nil {
		p, err := newInboundParts(a.cfg, a.st, a.inb.filter, nil, false)
		if err != nil {
			return nil, adminErrorf(err, "%v", err)
		}
		a.inb.codec = p.codec
	}
	if a.inb.codec == nil {
		return nil, errors.New("the delivery trace needs the server key")
	}
	recs, err := trace.Search(ctx, a.st, a.inb.codec, trace.Query{Kind: q.Kind, From: q.From, To: q.To, IP: q.IP,
		Since: q.Since, Until: q.Until, Limit: min(max(q.Limit, 1), maxTraceResults)})
	if err != nil && strings.HasPrefix(err.Error(), "trace: ") {
		return nil, adminErrorf(err, "%v", err)
	}
	if err != nil {
		return nil, err
	}
	return recs, a.auditTraceSearch(ctx, q, len(recs))
}

// maxMboxMessage bounds what is kept of one message of an mbox file:
// the classifier reads a message's first MiB.
const maxMboxMessage = 1 << 20

// mboxMessages reads an mbox file (mboxo or mboxrd: messages after
// "From " lines, ">From " unquoted once) message by message, keeping at
// most maxMboxMessage bytes of each.
func mboxMessages(r io.Reader) iter.Seq2[io.Reader, error] {
	return func(yield func(io.Reader, error) bool) {
		br := bufio.NewReaderSize(r, 64<<10)
		var cur bytes.Buffer
		started := false
		flush := func() bool {
			if !started {
				return true
			}
			b := bytes.Clone(cur.Bytes())
			cur.Reset()
			return yield(bytes.NewReader(b), nil)
		}
		for {
			line, err := br.ReadSlice('\n')
			full := err == nil || errors.Is(err, io.EOF)
			if errors.Is(err, bufio.ErrBufferFull) {
				err = nil
			}
			if len(line) > 0 {
				switch {
				case full && bytes.HasPrefix(line, []byte("From ")):
					if !flush() {
						return
					}
					started = true
				case started && cur.Len() < maxMboxMessage:
					if bytes.HasPrefix(line, []byte(">From ")) || bytes.HasPrefix(line, []byte(">>From ")) {
						line = line[1:]
					}
					cur.Write(line[:min(len(line), maxMboxMessage-cur.Len())])
				}
			}
			if errors.Is(err, io.EOF) {
				flush()
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
		}
	}
}
