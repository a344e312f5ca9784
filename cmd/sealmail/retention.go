package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/retention"
	"github.com/sealmail/sealmail/store"
)

// retFlags are the flags of the retention commands (cmdFlags.ret).
type retFlags struct {
	class, zone, fy string
	reason, matter  string
	from, to, at    string
	mailbox         string
	dryRun          bool
}

func retChange(fs *flag.FlagSet, f *cmdFlags) {
	jsonFlag(fs, f)
	fs.BoolVar(&f.ret.dryRun, "dry-run", false, "show what the change would make the next sweep destroy, per account and class; change nothing")
	fs.BoolVar(&f.yes, "yes", false, "make the change even if the next sweep would then destroy mail")
	fs.StringVar(&f.ret.reason, "reason", "", "why, for the audit log")
}

func init() {
	registerGroup("policy", "retention policy: presets, assignments, what applies to whom")
	registerGroup("hold", "legal holds that keep mail from every deletion")
	registerGroup("vault", "the retention vault: mail users deleted that retention keeps")
	registerGroup("retention", "the retention sweeper and events that start retention periods")
	registerGroup("compliance", "GDPR erasure and the compliance report")
	register(
		&command{name: "policy presets", summary: "list the retention presets in force (shipped and imported)", flags: jsonFlag, run: runPolicyPresets},
		&command{name: "policy show", args: "PRESET", summary: "show a preset: its rules, sources and YAML", flags: jsonFlag, run: runPolicyShow},
		&command{name: "policy import", args: "FILE", summary: "validate and import a preset (YAML, docs/retention.md)", flags: retChange, run: runPolicyImport},
		&command{name: "policy assign", args: "PRESET SCOPE", summary: "apply a preset to org, domain:D, user:A or mailbox:A/NAME",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				retChange(fs, f)
				fs.StringVar(&f.ret.class, "class", "", "for a mailbox: the class its messages get")
				fs.StringVar(&f.ret.zone, "zone", "", "IANA time zone for end-of-year starts, instead of the preset's")
				fs.StringVar(&f.ret.fy, "fiscal-year-start", "", "first day of the fiscal year, MM-DD, instead of the preset's")
			}, run: runPolicyAssign},
		&command{name: "policy unassign", args: "PRESET SCOPE", summary: "remove a preset's assignment (not for presets with locked rules)", flags: retChange, run: runPolicyUnassign},
		&command{name: "policy assignments", summary: "list the assignments", flags: jsonFlag, run: runPolicyAssignments},
		&command{name: "policy effective", args: "ADDRESS [MAILBOX [UID]]", summary: "what retention applies and why (presets, assignments, holds)", flags: jsonFlag, run: runPolicyEffective},
		&command{name: "hold place", args: "SCOPE --matter M --reason R", summary: "place a legal hold; prints its ID as the last word",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				jsonFlag(fs, f)
				fs.StringVar(&f.ret.matter, "matter", "", "the matter (case, audit) the hold is for")
				fs.StringVar(&f.ret.reason, "reason", "", "why")
				fs.StringVar(&f.ret.from, "from", "", "hold only mail that arrived from this date (YYYY-MM-DD, UTC, or RFC 3339)")
				fs.StringVar(&f.ret.to, "to", "", "hold only mail that arrived before this date")
			}, run: runHoldPlace},
		&command{name: "hold list", summary: "list legal holds, released ones included", flags: jsonFlag, run: runHoldList},
		&command{name: "hold release", args: "ID --reason R", summary: "release a legal hold",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				jsonFlag(fs, f)
				fs.StringVar(&f.ret.reason, "reason", "", "why")
			}, run: runHoldRelease},
		&command{name: "vault list", args: "ADDRESS", summary: "list the retention vault of an account (and of deleted ones at that address)", flags: jsonFlag, run: runVaultList},
		&command{name: "vault restore", args: "ADDRESS ID", summary: "move a vault entry back into a mailbox",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				jsonFlag(fs, f)
				fs.StringVar(&f.ret.mailbox, "mailbox", "", "mailbox to restore into (default: where it was, else INBOX)")
			}, run: runVaultRestore},
		&command{name: "retention sweep", summary: "destroy mail past its time that no hold covers, then purge the store",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				jsonFlag(fs, f)
				fs.BoolVar(&f.ret.dryRun, "dry-run", false, "list what would be destroyed, per account and class; destroy nothing")
			}, run: runRetentionSweep},
		&command{name: "retention event", args: "NAME SCOPE", summary: "record that an event happened (for rules starting at event:NAME)",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				jsonFlag(fs, f)
				fs.StringVar(&f.ret.at, "at", "", "when it happened (YYYY-MM-DD, UTC, or RFC 3339; default now)")
				fs.StringVar(&f.ret.reason, "reason", "", "why, for the audit log")
			}, run: runRetentionEvent},
		&command{name: "compliance erase", args: "ADDRESS", summary: "GDPR erasure: destroy what no obligation keeps, restrict the rest",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				jsonFlag(fs, f)
				fs.BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
				fs.StringVar(&f.ret.reason, "reason", "", "the request, for the audit log")
			}, run: runComplianceErase},
		&command{name: "compliance report", args: "[SCOPE]", summary: "what the policy keeps, holds and will destroy, per account and class (default scope org)",
			flags: jsonFlag, run: runComplianceReport},
	)
}

// retention runs the retention operation op with a, showing its progress
// as label (a job counting unit), and decodes the answer into out.
func (e *env) retention(ctx context.Context, op, label string, unit progressUnit, a retArgs, out any) error {
	p := e.progress(label, unit)
	err := e.callOp(p.context(ctx), op, opCall{Args: a}, out)
	p.Done()
	return err
}

func args0(args []string, n int, what string) error {
	if len(args) != n {
		return usagef("want %s", what)
	}
	return nil
}

func runPolicyPresets(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 0, "no arguments"); err != nil {
		return err
	}
	var ps []retention.PresetInfo
	if err := e.retention(ctx, opPolicyPresets, "presets", unitItems, retArgs{}, &ps); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, ps)
	}
	tw := tabwriter.NewWriter(e.io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVERSION\tORIGIN\tASSIGNED TO\tNAME")
	for _, p := range ps {
		origin := "shipped"
		if !p.Builtin {
			origin = "imported"
		}
		assigned := strings.Join(p.Assigned, ",")
		if assigned == "" {
			assigned = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", p.ID, p.Version, origin, assigned, p.Name)
	}
	tw.Flush()
	fmt.Fprintln(e.io.out, "Presets are not legal advice; `sealmail policy show PRESET` has their sources.")
	return nil
}

func runPolicyShow(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 1, "PRESET"); err != nil {
		return err
	}
	var p retention.PresetInfo
	if err := e.retention(ctx, opPolicyShow, "preset", unitItems, retArgs{Preset: args[0]}, &p); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, p)
	}
	w := e.io.out
	fmt.Fprintf(w, "%s version %d: %s\n", p.ID, p.Version, p.Name)
	if p.Description != "" {
		fmt.Fprintf(w, "\n%s\n", p.Description)
	}
	fmt.Fprintf(w, "\nNotice: %s\n\nSources:\n", p.Notice)
	for _, s := range p.Sources {
		fmt.Fprintf(w, "  - %s\n", s)
	}
	fmt.Fprintf(w, "\nZone %s, fiscal year from %s.\n\nRules:\n", orDash(p.Zone, "UTC"), p.FiscalYear)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CLASS\tMIN\tMAX\tSTART\tLOCKED\tNOTE")
	for _, r := range p.Rules {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.Class, r.Min, r.Max, r.Start, yesNo(r.Locked), r.Note)
	}
	tw.Flush()
	if len(p.Assigned) > 0 {
		fmt.Fprintf(w, "\nAssigned to: %s\n", strings.Join(p.Assigned, ", "))
	}
	fmt.Fprintf(w, "\n--- YAML ---\n%s", p.Source)
	return nil
}

func orDash(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func runPolicyImport(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 1, "FILE"); err != nil {
		return err
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	src, err := io.ReadAll(io.LimitReader(f, policy.MaxPresetBytes+1))
	f.Close()
	if err != nil {
		return err
	}
	if len(src) > policy.MaxPresetBytes {
		return fmt.Errorf("%s: larger than %d KiB", args[0], policy.MaxPresetBytes>>10)
	}
	return e.change(ctx, opPolicyImport, retArgs{Source: src, File: args[0]}, func(res retention.ChangeResult) string {
		return "imported " + res.Preset
	})
}

// change runs the policy change op with a (and the change flags) and
// reports it, or its refusal with the impact.
func (e *env) change(ctx context.Context, op string, a retArgs, done func(retention.ChangeResult) string) error {
	a.DryRun, a.Force = e.flags.ret.dryRun, e.flags.yes
	if a.Reason == "" {
		a.Reason = e.flags.ret.reason
	}
	var reply changeAnswer
	err := e.retention(ctx, op, "policy", unitItems, a, &reply)
	if err == nil && reply.Refused != "" {
		err = &adminError{msg: reply.Refused}
	}
	return e.writeChange(reply.ChangeResult, err, done)
}

// writeChange reports a policy change, or its refusal with the impact.
func (e *env) writeChange(res retention.ChangeResult, err error, done func(retention.ChangeResult) string) error {
	if e.flags.json && (err == nil || res.Impact.Messages > 0) {
		if werr := writeJSON(e.io.out, res); werr != nil {
			return werr
		}
		return err
	}
	if res.Impact.Messages > 0 {
		fmt.Fprintf(e.io.out, "the next sweep would destroy %d messages (%d sealed bytes) it would not destroy now:\n", res.Impact.Messages, res.Impact.Bytes)
		writeImpact(e.io.out, res.Impact)
	}
	if err != nil {
		return err
	}
	switch {
	case !res.Applied:
		fmt.Fprintln(e.io.out, "dry run: nothing changed")
	default:
		fmt.Fprintf(e.io.out, "%s; %d messages recomputed\n", done(res), res.Recomputed)
	}
	return nil
}

func writeImpact(w io.Writer, im retention.Impact) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ACCOUNT\tCLASS\tMESSAGES\tBYTES")
	for _, l := range im.Lines {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\n", l.Account, l.Class, l.Messages, l.Bytes)
	}
	tw.Flush()
}

func runPolicyAssign(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 2, "PRESET SCOPE"); err != nil {
		return err
	}
	a := retArgs{Preset: args[0], Scope: args[1], Class: e.flags.ret.class, Zone: e.flags.ret.zone, FY: e.flags.ret.fy}
	return e.change(ctx, opPolicyAssign, a, func(res retention.ChangeResult) string {
		return fmt.Sprintf("assigned %s to %s", res.Preset, res.Scope)
	})
}

func runPolicyUnassign(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 2, "PRESET SCOPE"); err != nil {
		return err
	}
	return e.change(ctx, opPolicyUnassign, retArgs{Preset: args[0], Scope: args[1]}, func(res retention.ChangeResult) string {
		return fmt.Sprintf("removed %s from %s", res.Preset, res.Scope)
	})
}

func runPolicyAssignments(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 0, "no arguments"); err != nil {
		return err
	}
	var as []retention.AssignmentInfo
	if err := e.retention(ctx, opPolicyAssignments, "policy", unitItems, retArgs{}, &as); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, as)
	}
	writeAssignments(e.io.out, as)
	return nil
}

func writeAssignments(w io.Writer, as []retention.AssignmentInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tPRESET\tCLASS\tZONE\tFISCAL YEAR\tSINCE\tBY")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Scope, a.Preset, orDash(a.Class, "-"), orDash(a.Zone, "-"),
			orDash(a.FiscalYearStart, "-"), a.Created.UTC().Format(time.DateOnly), orDash(a.By, "-"))
	}
	tw.Flush()
}

func runPolicyEffective(ctx context.Context, e *env, args []string) error {
	if len(args) < 1 || len(args) > 3 {
		return usagef("want ADDRESS [MAILBOX [UID]]")
	}
	r := retArgs{Address: args[0]}
	if len(args) > 1 {
		r.Mailbox = args[1]
	}
	if len(args) > 2 {
		uid, err := strconv.ParseUint(args[2], 10, 32)
		if err != nil || uid == 0 {
			return usagef("UID %q: want a number", args[2])
		}
		r.UID = uint32(uid)
	}
	var rep retention.EffectiveReport
	if err := e.retention(ctx, opPolicyEffective, "policy", unitItems, r, &rep); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, rep)
	}
	w := e.io.out
	where := rep.Account
	if rep.Mailbox != "" {
		where += " " + rep.Mailbox
	}
	fmt.Fprintf(w, "retention of %s (policy generation %d)\n\nassignments that apply:\n", where, rep.Gen)
	if len(rep.Assignments) == 0 {
		fmt.Fprintln(w, "  none: mail is kept until its user deletes it, and then destroyed")
	} else {
		writeAssignments(indent{w}, rep.Assignments)
	}
	if rep.MailboxClass != "" {
		fmt.Fprintf(w, "\nevery message in this mailbox has class %s\n", rep.MailboxClass)
	}
	fmt.Fprintln(w, "\nlegal holds:")
	if len(rep.Holds) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, h := range rep.Holds {
		fmt.Fprintf(w, "  hold %d, matter %s, on %s%s: %s\n", h.ID, h.Matter, h.ScopeText, holdRange(h.Hold), h.Reason)
	}
	if rep.Message != nil {
		m := rep.Message
		fmt.Fprintf(w, "\nmessage UID %d (retention ID %d, %d sealed bytes), arrived %s, class at delivery %s:\n", m.UID, m.ID, m.SealedSize,
			m.Stored.Arrival.UTC().Format(time.RFC3339), m.Stored.Origin)
		fmt.Fprintf(w, "  stored:  class %s, keep until %s, delete after %s, held %s\n", m.Stored.Class, retWhen(m.Stored.KeepUntil, "no minimum"),
			retWhen(m.Stored.DeleteAfter, "no maximum"), yesNo(m.Stored.Held))
		if m.Stored.Rule != "" {
			fmt.Fprintf(w, "           by %s\n", m.Stored.Rule)
		}
		if !m.UpToDate {
			fmt.Fprintln(w, "  (the stored state is being recomputed; the policy now decides:)")
		}
		writeClassEffect(w, m.Decided)
		return nil
	}
	fmt.Fprintln(w, "\nper class, for a message arriving now:")
	for _, c := range rep.Classes {
		writeClassEffect(w, c)
	}
	return nil
}

// indent writes each line two spaces in.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	s := "  " + strings.ReplaceAll(strings.TrimSuffix(string(p), "\n"), "\n", "\n  ") + "\n"
	if _, err := io.WriteString(i.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}

func writeClassEffect(w io.Writer, c retention.ClassEffect) {
	fmt.Fprintf(w, "  %s: keep until %s, delete after %s", c.Class, retWhen(c.KeepUntil, "no minimum"), retWhen(c.DeleteAfter, "never (no maximum)"))
	if c.Locked {
		fmt.Fprint(w, ", locked")
	}
	if c.Conflict {
		fmt.Fprint(w, "; CONFLICT: a maximum ends before a minimum, the minimum wins")
	}
	fmt.Fprintln(w)
	for _, r := range c.Rules {
		role := ""
		switch {
		case r.DecidesMin && r.DecidesMax:
			role = " (decides minimum and maximum)"
		case r.DecidesMin:
			role = " (decides the minimum)"
		case r.DecidesMax:
			role = " (decides the maximum)"
		}
		origin := ""
		if r.ForOrigin {
			origin = ", for the class it had at delivery"
		}
		fmt.Fprintf(w, "    %s via %s: %s min %s max %s from %s%s%s\n", r.Preset, r.Scope, r.Rule.Class, r.Rule.Min, r.Rule.Max, r.Rule.Start, origin, role)
	}
}

func retWhen(t time.Time, none string) string {
	switch {
	case t.IsZero():
		return none
	case t.Equal(store.Forever):
		return "an event that has not happened"
	}
	return t.UTC().Format(time.RFC3339)
}

func holdRange(h store.Hold) string {
	switch {
	case !h.From.IsZero() && !h.To.IsZero():
		return fmt.Sprintf(" (mail from %s to %s)", h.From.Format(time.DateOnly), h.To.Format(time.DateOnly))
	case !h.From.IsZero():
		return fmt.Sprintf(" (mail from %s)", h.From.Format(time.DateOnly))
	case !h.To.IsZero():
		return fmt.Sprintf(" (mail before %s)", h.To.Format(time.DateOnly))
	}
	return ""
}

// parseDate parses YYYY-MM-DD (UTC midnight) or RFC 3339.
func parseDate(flagName, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("--%s %q: want YYYY-MM-DD or RFC 3339 (2026-01-31T12:00:00Z)", flagName, s)
	}
	return t, nil
}

func runHoldPlace(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 1, "SCOPE"); err != nil {
		return err
	}
	f := e.flags.ret
	if f.matter == "" || f.reason == "" {
		return usagef("--matter and --reason are required")
	}
	from, err := parseDate("from", f.from)
	if err != nil {
		return err
	}
	to, err := parseDate("to", f.to)
	if err != nil {
		return err
	}
	var res retention.HoldResult
	if err := e.retention(ctx, opHoldPlace, "hold", unitItems, retArgs{Scope: args[0], Matter: f.matter, Reason: f.reason, From: from, To: to}, &res); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, res)
	}
	fmt.Fprintf(e.io.out, "placed a legal hold on %s%s for matter %s; %d messages now held; hold ID %d\n",
		res.Hold.ScopeText, holdRange(res.Hold.Hold), res.Hold.Matter, res.Recomputed, res.Hold.ID)
	return nil
}

func runHoldList(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 0, "no arguments"); err != nil {
		return err
	}
	var hs []retention.HoldInfo
	if err := e.retention(ctx, opHoldList, "hold", unitItems, retArgs{}, &hs); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, hs)
	}
	tw := tabwriter.NewWriter(e.io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSCOPE\tMATTER\tPLACED\tBY\tREASON")
	for _, h := range hs {
		state := "active"
		if !h.Active() {
			state = "released " + h.Released.UTC().Format(time.DateOnly)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s%s\t%s\t%s\t%s\t%s\n", h.ID, state, h.ScopeText, holdRange(h.Hold), h.Matter,
			h.Placed.UTC().Format(time.DateOnly), h.PlacedBy, h.Reason)
	}
	return tw.Flush()
}

func runHoldRelease(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 1, "ID"); err != nil {
		return err
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || id == 0 {
		return usagef("ID %q: want a hold number (`sealmail hold list`)", args[0])
	}
	if e.flags.ret.reason == "" {
		return usagef("--reason is required")
	}
	var res retention.HoldResult
	if err := e.retention(ctx, opHoldRelease, "release", unitItems, retArgs{ID: id, Reason: e.flags.ret.reason}, &res); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, res)
	}
	fmt.Fprintf(e.io.out, "released hold %d (matter %s) on %s; %d messages recomputed\n", res.Hold.ID, res.Hold.Matter, res.Hold.ScopeText, res.Recomputed)
	if res.Due.Messages > 0 {
		fmt.Fprintf(e.io.out, "the next sweep destroys %d messages (%d sealed bytes) of that scope, past their time:\n", res.Due.Messages, res.Due.Bytes)
		writeImpact(e.io.out, res.Due)
	}
	return nil
}

func runVaultList(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 1, "ADDRESS"); err != nil {
		return err
	}
	var vs []retention.VaultItem
	if err := e.retention(ctx, opVaultList, "vault", unitItems, retArgs{Address: args[0]}, &vs); err != nil {
		return err
	}
	if e.flags.json {
		if vs == nil {
			vs = []retention.VaultItem{}
		}
		return writeJSON(e.io.out, vs)
	}
	if len(vs) == 0 {
		fmt.Fprintf(e.io.out, "the retention vault of %s is empty\n", args[0])
		return nil
	}
	tw := tabwriter.NewWriter(e.io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFROM\tUID\tARRIVED\tVAULTED\tCLASS\tSIZE\tDESTROYED\tREASON")
	for _, v := range vs {
		from := v.Mailbox
		if v.Former != 0 {
			from = fmt.Sprintf("%s (account deleted %s)", v.Mailbox, v.Deleted.UTC().Format(time.DateOnly))
		}
		due := "held or until an event"
		if !v.DueAt.IsZero() {
			due = "from " + v.DueAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", v.ID, from, v.UID, v.Retention.Arrival.UTC().Format(time.DateOnly),
			v.Vaulted.UTC().Format(time.DateOnly), orDash(v.Retention.Class, "default"), v.SealedSize, due, v.Reason)
	}
	return tw.Flush()
}

func runVaultRestore(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 2, "ADDRESS ID"); err != nil {
		return err
	}
	id, err := strconv.ParseUint(args[1], 10, 64)
	if err != nil || id == 0 {
		return usagef("ID %q: want a vault entry number (`sealmail vault list`)", args[1])
	}
	var d store.Delivered
	if err := e.retention(ctx, opVaultRestore, "restore", unitItems, retArgs{Address: args[0], ID: id, Mailbox: e.flags.ret.mailbox}, &d); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, d)
	}
	fmt.Fprintf(e.io.out, "restored vault entry %d of %s to %s as UID %d\n", id, d.Account, d.Mailbox, d.UID)
	return nil
}

func runRetentionSweep(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 0, "no arguments"); err != nil {
		return err
	}
	var rep retention.SweepReport
	if err := e.retention(ctx, opRetentionSweep, "sweep", unitMessages, retArgs{DryRun: e.flags.ret.dryRun}, &rep); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, rep)
	}
	verb := "destroyed"
	if rep.DryRun {
		verb = "would destroy"
	}
	fmt.Fprintf(e.io.out, "sweep %s %d messages (%d sealed bytes) in %s\n", verb, rep.Messages, rep.Bytes, rep.Duration.Round(time.Millisecond))
	if len(rep.Lines) > 0 {
		writeImpact(e.io.out, retention.Impact{Lines: rep.Lines})
	}
	if rep.Purge != nil {
		fmt.Fprintf(e.io.out, "purged the store: %d files rewritten in %s; the destroyed bytes are gone from its files\n",
			rep.Purge.Rewritten, rep.Purge.Duration.Round(time.Millisecond))
	}
	return nil
}

func runRetentionEvent(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 2, "NAME SCOPE"); err != nil {
		return err
	}
	at, err := parseDate("at", e.flags.ret.at)
	if err != nil {
		return err
	}
	return e.change(ctx, opRetentionEvent, retArgs{Name: args[0], Scope: args[1], At: at}, func(res retention.ChangeResult) string {
		return fmt.Sprintf("recorded %s for %s", args[0], res.Scope)
	})
}

func runComplianceErase(ctx context.Context, e *env, args []string) error {
	if err := args0(args, 1, "ADDRESS"); err != nil {
		return err
	}
	addr := args[0]
	if !e.flags.yes {
		if _, ok := e.terminal(); !ok {
			return usagef("erasing destroys the mail of %s that no obligation keeps, for good; pass --yes to confirm", addr)
		}
		fmt.Fprintf(e.io.err, "This destroys the mail of %s that no legal obligation or hold keeps, for good, and moves the rest out of the user's sight. Type the address to confirm: ", addr)
		line, err := e.interruptible(e.lines.next, nil)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(line)) != addr {
			return errors.New("not confirmed; nothing erased")
		}
	}
	var rep retention.EraseReport
	if err := e.retention(ctx, opComplianceErase, "erase", unitMessages, retArgs{Address: addr, Reason: e.flags.ret.reason}, &rep); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, rep)
	}
	w := e.io.out
	fmt.Fprintf(w, "erased the mail of %s: destroyed %d messages (%d sealed bytes); kept %d, restricted out of the user's mailboxes:\n",
		rep.Account, rep.Destroyed, rep.DestroyedBytes, len(rep.Kept))
	for _, b := range rep.Bases {
		fmt.Fprintf(w, "  %d: %s\n", b.Messages, b.Basis)
	}
	if len(rep.Kept) > 0 {
		fmt.Fprintln(w, "each kept message and its legal basis: `sealmail vault list "+rep.Account+"`")
	}
	if rep.Purge != nil {
		fmt.Fprintln(w, "purged the store: the destroyed bytes are gone from its files")
	}
	fmt.Fprintln(w, "the account itself remains; `sealmail user delete` removes it")
	return nil
}

func runComplianceReport(ctx context.Context, e *env, args []string) error {
	if len(args) > 1 {
		return usagef("want [SCOPE]")
	}
	r := retArgs{}
	if len(args) == 1 {
		r.Scope = args[0]
	}
	var rep retention.ComplianceReport
	if err := e.retention(ctx, opComplianceReport, "report", unitItems, r, &rep); err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, rep)
	}
	w := e.io.out
	fmt.Fprintf(w, "compliance report of %s at %s (policy generation %d)\n\nassignments:\n", rep.Scope, rep.Generated.Format(time.RFC3339), rep.Gen)
	if len(rep.Assignments) == 0 {
		fmt.Fprintln(w, "  none: mail is kept until its user deletes it, and then destroyed")
	} else {
		writeAssignments(indent{w}, rep.Assignments)
	}
	fmt.Fprintln(w, "\nlegal holds in force:")
	if len(rep.Holds) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, h := range rep.Holds {
		fmt.Fprintf(w, "  hold %d, matter %s, on %s%s: %s\n", h.ID, h.Matter, h.ScopeText, holdRange(h.Hold), h.Reason)
	}
	if s := rep.LastSweep; s != nil {
		fmt.Fprintf(w, "\nlast sweep %s: destroyed %d messages (%d sealed bytes)\n", s.Started.Format(time.RFC3339), s.Messages, s.Bytes)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tCLASS\tMESSAGES\tBYTES\tVAULTED\tUNDER MIN\tLOCKED\tHELD\tCONFLICT\tNO MAX\tPENDING\tDUE NOW\tNEXT DUE")
	line := func(account, class string, c retention.ReportCounts) {
		next := "-"
		if !c.NextDue.IsZero() {
			next = c.NextDue.UTC().Format(time.DateOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", account, class, c.Messages, c.Bytes, c.Vaulted,
			c.UnderMinimum, c.Locked, c.Held, c.Conflict, c.NoMaximum, c.Pending, c.DueNow, next)
	}
	for _, a := range rep.Accounts {
		name := a.Account
		if a.Former != 0 {
			name = fmt.Sprintf("%s (deleted account #%d)", a.Account, a.Former)
		}
		if len(a.Classes) == 0 {
			line(name, "-", a.Total)
		}
		for _, c := range a.Classes {
			line(name, c.Class, c.ReportCounts)
		}
	}
	line("total", "", rep.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.Total.Conflict > 0 {
		fmt.Fprintln(w, "\nCONFLICT: a maximum ends before a minimum for some mail; the minimum wins (`sealmail policy effective ADDRESS` says which rules).")
	}
	return nil
}
