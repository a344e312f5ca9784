package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/audit"
	"github.com/sealmail/sealmail/server/retention"
	"github.com/sealmail/sealmail/store"
)

// Retention administration (`policy`, `hold`, `vault`, `retention`,
// `compliance`) runs as registered operations (ops.go) on the backend's
// retention service: the running server's, through the control socket,
// or one the CLI builds over the store it opens when no server runs. All
// take retArgs. Long operations report progress through
// store.ReportProgress, which the control socket forwards.

// Retention operations by name.
const (
	opPolicyPresets     = "policy.presets"
	opPolicyShow        = "policy.show"
	opPolicyImport      = "policy.import"
	opPolicyAssign      = "policy.assign"
	opPolicyUnassign    = "policy.unassign"
	opPolicyAssignments = "policy.assignments"
	opPolicyEffective   = "policy.effective"
	opHoldPlace         = "hold.place"
	opHoldList          = "hold.list"
	opHoldRelease       = "hold.release"
	opVaultList         = "vault.list"
	opVaultRestore      = "vault.restore"
	opRetentionSweep    = "retention.sweep"
	opRetentionEvent    = "retention.event"
	opComplianceErase   = "compliance.erase"
	opComplianceReport  = "compliance.report"
)

// retArgs are the arguments of every retention operation; each uses the
// fields it needs.
type retArgs struct {
	Preset  string    `json:"preset,omitempty"`
	Scope   string    `json:"scope,omitempty"`
	Address string    `json:"address,omitempty"`
	Mailbox string    `json:"mailbox,omitempty"`
	UID     uint32    `json:"uid,omitempty"`
	ID      uint64    `json:"id,omitempty"`
	Class   string    `json:"class,omitempty"`
	Zone    string    `json:"zone,omitempty"`
	FY      string    `json:"fiscal_year_start,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Matter  string    `json:"matter,omitempty"`
	From    time.Time `json:"from,omitzero"`
	To      time.Time `json:"to,omitzero"`
	At      time.Time `json:"at,omitzero"`
	Name    string    `json:"name,omitempty"`
	File    string    `json:"file,omitempty"`
	Source  []byte    `json:"source,omitempty"`
	DryRun  bool      `json:"dry_run,omitempty"`
	Force   bool      `json:"force,omitempty"`
}

// retCall is one retention operation's run: the service, who acts (the
// OS user who ran the command: set by main, or by the control server from
// the socket peer's credentials, never taken from the request), the
// arguments and a progress reporter.
type retCall struct {
	svc      *retention.Service
	actor    string
	args     *retArgs
	progress func(retention.Progress)
}

func init() {
	for _, o := range []struct {
		name string
		long bool // walks messages: bounded by silence, not opTimeout
		run  func(ctx context.Context, c retCall) (any, error)
	}{
		{opPolicyPresets, false, func(ctx context.Context, c retCall) (any, error) { return c.svc.Presets(ctx) }},
		{opPolicyShow, false, func(ctx context.Context, c retCall) (any, error) { return c.svc.Preset(ctx, c.args.Preset) }},
		{opPolicyImport, true, func(ctx context.Context, c retCall) (any, error) {
			return changeReply(c.svc.ImportPreset(ctx, c.actor, c.args.Source, c.args.File, c.change()))
		}},
		{opPolicyAssign, true, func(ctx context.Context, c retCall) (any, error) {
			a := c.args
			return changeReply(c.svc.Assign(ctx, c.actor, retention.AssignRequest{Preset: a.Preset, Scope: a.Scope, Class: a.Class, Zone: a.Zone, FiscalYearStart: a.FY}, c.change()))
		}},
		{opPolicyUnassign, true, func(ctx context.Context, c retCall) (any, error) {
			return changeReply(c.svc.Unassign(ctx, c.actor, c.args.Preset, c.args.Scope, c.change()))
		}},
		{opPolicyAssignments, false, func(ctx context.Context, c retCall) (any, error) { return c.svc.Assignments(ctx) }},
		{opPolicyEffective, false, func(ctx context.Context, c retCall) (any, error) {
			return c.svc.Effective(ctx, c.args.Address, c.args.Mailbox, c.args.UID)
		}},
		{opHoldPlace, true, func(ctx context.Context, c retCall) (any, error) {
			a := c.args
			return c.svc.PlaceHold(ctx, c.actor, retention.HoldRequest{Scope: a.Scope, Matter: a.Matter, Reason: a.Reason, From: a.From, To: a.To}, c.progress)
		}},
		{opHoldList, false, func(ctx context.Context, c retCall) (any, error) { return c.svc.Holds(ctx) }},
		{opHoldRelease, true, func(ctx context.Context, c retCall) (any, error) {
			return c.svc.ReleaseHold(ctx, c.actor, c.args.ID, c.args.Reason, c.progress)
		}},
		{opVaultList, false, func(ctx context.Context, c retCall) (any, error) { return c.svc.Vault(ctx, c.args.Address) }},
		{opVaultRestore, false, func(ctx context.Context, c retCall) (any, error) {
			return c.svc.Restore(ctx, c.actor, c.args.Address, c.args.ID, c.args.Mailbox)
		}},
		{opRetentionSweep, true, func(ctx context.Context, c retCall) (any, error) {
			// The sweep reports its progress through ctx itself.
			return c.svc.Sweep(ctx, c.actor, retention.SweepOptions{DryRun: c.args.DryRun})
		}},
		{opRetentionEvent, true, func(ctx context.Context, c retCall) (any, error) {
			a := c.args
			return changeReply(c.svc.RecordEvent(ctx, c.actor, a.Name, a.Scope, a.At, a.Reason, c.progress))
		}},
		{opComplianceErase, true, func(ctx context.Context, c retCall) (any, error) {
			return c.svc.Erase(ctx, c.actor, c.args.Address, c.args.Reason, c.progress)
		}},
		{opComplianceReport, true, func(ctx context.Context, c retCall) (any, error) {
			return c.svc.Report(ctx, c.actor, c.args.Scope, c.progress)
		}},
	} {
		run := o.run
		registerOp(&controlOp{name: o.name, local: true, long: o.long, run: func(ctx context.Context, b *backend, req *opRequest) (any, error) {
			if b.ret == nil {
				return nil, adminErrorf(nil, "no retention service here")
			}
			var a retArgs
			if err := req.args(&a); err != nil {
				return nil, err
			}
			actor := audit.ActorFrom(ctx)
			if actor == "" {
				actor = "cli"
			}
			progress := func(p retention.Progress) { store.ReportProgress(ctx, int64(p.Done), int64(p.Total)) }
			res, err := run(ctx, retCall{svc: b.ret, actor: actor, args: &a, progress: progress})
			return res, retErr(err)
		}})
	}
}

// change is the ChangeOptions of a policy change. Progress goes through
// the context (store.ReportProgress), like every long operation's.
func (c retCall) change() retention.ChangeOptions {
	return retention.ChangeOptions{DryRun: c.args.DryRun, Force: c.args.Force, Reason: c.args.Reason, Progress: c.progress}
}

// changeAnswer is the answer of a policy change: what it did, or, when it
// was refused because the next sweep would then destroy mail, the
// refusal with that impact (Refused), so that the operator sees what
// would go.
type changeAnswer struct {
	retention.ChangeResult
	Refused string `json:"refused,omitempty"`
}

// changeReply turns a refusal for what a change would destroy into an
// answer that carries the impact; other errors stay errors.
func changeReply(res retention.ChangeResult, err error) (any, error) {
	if errors.Is(err, retention.ErrWouldDestroy) {
		return changeAnswer{ChangeResult: res, Refused: strings.TrimPrefix(err.Error(), "retention: ")}, nil
	}
	if err != nil {
		return nil, err
	}
	return changeAnswer{ChangeResult: res}, nil
}

// retErr turns the retention service's operator errors into adminErrors;
// other errors pass unchanged (and stay in the server log).
func retErr(err error) error {
	if err == nil {
		return nil
	}
	var re *retention.Error
	switch {
	case errors.As(err, &re):
		return &adminError{msg: re.Msg, err: err}
	case errors.Is(err, retention.ErrWouldDestroy), errors.Is(err, retention.ErrLocked), errors.Is(err, retention.ErrHeld):
		return &adminError{msg: strings.TrimPrefix(err.Error(), "retention: "), err: err}
	case errors.Is(err, store.ErrNotFound):
		return &adminError{msg: "not found", err: err}
	}
	return err
}

// newRetention builds the retention service over st, its acts recorded
// in auditLog (nil: none). A server's sweeps are paced so that deliveries
// keep their rate; the CLI's on a stopped server run flat out. onDestroy
// (may be nil) hears of live messages the sweeper or an erasure
// destroyed.
func newRetention(ctx context.Context, st store.Store, c *Config, log *slog.Logger, auditLog *audit.Service, serving bool, onDestroy func(string, uint64, []uint32, uint64)) (*retention.Service, error) {
	opt := retention.Options{
		Store:         st,
		Logger:        log,
		SweepInterval: c.Retention.SweepInterval,
		OnDestroy:     onDestroy,
	}
	if auditLog != nil {
		opt.Auditor = retentionAuditor{auditLog}
	}
	if serving {
		opt.SweepPause = retention.DefaultSweepPause
	}
	return retention.New(ctx, opt)
}

// retentionGuard is the account service's DeleteGuard: the retention
// service, when there is one.
func retentionGuard(svc *retention.Service) account.DeleteGuard {
	if svc == nil {
		return nil
	}
	return svc
}

// retentionAuditor records the retention service's acts in the audit log:
// its Event is the audit log's, field for field. An event without an
// actor is the context's (the OS user who ran the command).
type retentionAuditor struct{ log *audit.Service }

func (x retentionAuditor) Record(ctx context.Context, e retention.Event) error {
	return x.log.Record(ctx, audit.Event{Time: e.Time, Actor: e.Actor, Action: e.Action, Scope: e.Scope, Reason: e.Reason, Detail: e.Detail})
}
