package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealmail/sealmail/server/retention"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// TestControlRetention runs retention operations over a real control
// socket: progress lines arrive before the answer, and a change refused
// for what it would destroy comes back with its impact.
func TestControlRetention(t *testing.T) {
	dir, err := os.MkdirTemp("", "smc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := badgerstore.Open(filepath.Join(dir, "store"), badgerstore.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	svc, err := retention.New(ctx, retention.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	const addr = "a@example.org"
	if err := st.CreateAccount(ctx, store.Account{Address: addr, PublicKey: []byte("k"), Slots: []store.Slot{{Kind: store.SlotPassword, Data: []byte("s")}}}, store.DefaultMailboxes); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Store().Deliver(ctx, []store.Delivery{{Account: addr, Blob: []byte("sealed")}, {Account: addr, Blob: []byte("sealed too")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ImportPreset(ctx, "cli:test", []byte(zeroDayPreset), "zero.yaml", retention.ChangeOptions{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "control.sock")
	ln, err := listenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	cs := newControlServer(ln, &fakeAdmin{}, &backend{st: st, ret: svc, log: slog.New(slog.DiscardHandler)}, slog.New(slog.DiscardHandler))
	go cs.serve(ctx)
	defer cs.close(ctx)
	remote, err := dialControl(path)
	if err != nil || remote == nil {
		t.Fatalf("dialControl: %v, %v", remote, err)
	}
	call := func(ctx context.Context, op string, a retArgs, out any) error {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return remote.do(ctx, controlRequest{Op: op, Args: b}, callIO{long: controlOps[op].long}, out)
	}

	// Refused: it would destroy both messages at the next sweep.
	var res changeAnswer
	err = call(ctx, opPolicyAssign, retArgs{Preset: "ZERO", Scope: "user:" + addr}, &res)
	if err != nil || !strings.Contains(res.Refused, "would destroy") || res.Impact.Messages != 2 || res.Applied {
		t.Fatalf("refused assign: %+v, %v", res, err)
	}
	res = changeAnswer{}
	err = call(ctx, opPolicyAssign, retArgs{Preset: "ZERO", Scope: "user:" + addr, Force: true}, &res)
	if err != nil || !res.Applied || res.Refused != "" {
		t.Fatalf("forced assign: %+v, %v", res, err)
	}
	var progress [][2]int64
	pctx := store.WithProgress(ctx, func(d, t int64) { progress = append(progress, [2]int64{d, t}) })
	var rep retention.SweepReport
	if err := call(pctx, opRetentionSweep, retArgs{}, &rep); err != nil || rep.Messages != 2 {
		t.Fatalf("sweep: %+v, %v", rep, err)
	}
	if len(progress) == 0 {
		t.Errorf("no progress from the sweep")
	}
	var cr retention.ComplianceReport
	err = call(ctx, opComplianceReport, retArgs{Scope: "user:" + addr}, &cr)
	if err != nil || cr.Scope != "user:"+addr || len(cr.Accounts) != 1 || cr.Total.Messages != 0 || cr.LastSweep == nil || cr.LastSweep.Messages != 2 {
		t.Errorf("report: %+v, %v", cr, err)
	}
	// An operator error comes back as its text.
	err = call(ctx, opHoldRelease, retArgs{ID: 99, Reason: "x"}, nil)
	if err == nil || !strings.Contains(err.Error(), "no hold 99") {
		t.Errorf("release of an unknown hold: %v", err)
	}
}
