package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// fakeAdmin records calls and fails with what it is told.
type fakeAdmin struct {
	calls []string
	err   error
}

func (f *fakeAdmin) note(op, addr string) { f.calls = append(f.calls, op+" "+addr) }

func (f *fakeAdmin) AddUser(_ context.Context, a string, pw []byte) (userInfo, error) {
	f.note("add", a+" "+string(pw))
	return userInfo{Address: a}, f.err
}
func (f *fakeAdmin) Users(context.Context) ([]userInfo, error) {
	f.note("list", "")
	return []userInfo{{Address: "a@example.org"}}, f.err
}
func (f *fakeAdmin) ChangePassword(_ context.Context, a string, cur, next []byte) (passwdResult, error) {
	f.note("passwd", a+" "+string(cur)+" "+string(next))
	return passwdResult{NewSlot: 7}, f.err
}
func (f *fakeAdmin) DeleteUser(_ context.Context, a string) (deleteResult, error) {
	f.note("delete", a)
	return deleteResult{DeleteReport: store.DeleteReport{Slots: 2}}, f.err
}
func (f *fakeAdmin) AddRecoveryCode(_ context.Context, a string, cur []byte) (newSecret, error) {
	f.note("recovery", a)
	return newSecret{Slot: 3, Secret: "CODE"}, f.err
}
func (f *fakeAdmin) AddAppPassword(_ context.Context, a string, cur []byte, label string) (newSecret, error) {
	f.note("app-password", a+" "+string(cur)+" "+label)
	return newSecret{Slot: 4, Secret: "app"}, f.err
}
func (f *fakeAdmin) Slots(_ context.Context, a string) ([]slotInfo, error) {
	f.note("slots", a)
	return []slotInfo{{ID: 1, Kind: "password"}}, f.err
}
func (f *fakeAdmin) RevokeSlot(_ context.Context, a string, id uint32) (revokeResult, error) {
	f.note("revoke", a+" "+strconv.Itoa(int(id)))
	return revokeResult{Slot: slotInfo{ID: id}}, f.err
}
func (f *fakeAdmin) SetWKD(_ context.Context, a string, p bool) error {
	f.note("wkd", a)
	return f.err
}
func (f *fakeAdmin) SetQuota(_ context.Context, a string, q int64) error {
	f.note("quota", fmt.Sprintf("%s %d", a, q))
	return f.err
}
func (f *fakeAdmin) ExportKey(_ context.Context, a string) (string, error) {
	f.note("export", a)
	return "PUB", f.err
}
func (f *fakeAdmin) ExportSecretKey(_ context.Context, a string, pw []byte) (string, error) {
	f.note("export-secret", a)
	return "SEC", f.err
}

func (f *fakeAdmin) AddRule(_ context.Context, r ruleInfo) (ruleInfo, error) {
	f.note("rule-add", r.Action+" "+r.Value)
	r.ID = 9
	return r, f.err
}
func (f *fakeAdmin) Rules(context.Context) ([]ruleInfo, error) {
	f.note("rules", "")
	return []ruleInfo{{ID: 9, Action: "deny", Kind: "domain", Value: "bad.example"}}, f.err
}
func (f *fakeAdmin) RemoveRule(_ context.Context, id uint64, action string) (ruleInfo, error) {
	f.note("rule-remove", fmt.Sprintf("%d %s", id, action))
	return ruleInfo{ID: id, Action: action}, f.err
}
func (f *fakeAdmin) Train(_ context.Context, req trainRequest, secret []byte) (trainResult, error) {
	f.note("train", fmt.Sprintf("%s %v %v %s %s", req.Address, req.Org, req.Spam, req.Path, secret))
	return trainResult{Messages: 3}, f.err
}
func (f *fakeAdmin) SearchTrace(_ context.Context, q traceQuery) ([]trace.Record, error) {
	f.note("trace", q.From+" "+q.IP)
	return []trace.Record{{Kind: store.TraceInbound, Ref: "abc", In: &trace.Inbound{Result: "refused", From: q.From}}}, f.err
}

// exchange runs one request through the control server and returns what
// it wrote back.
func exchange(adm admin, log *bytes.Buffer, req string) []byte {
	s := &controlServer{adm: adm, log: slog.New(slog.NewTextHandler(log, nil))}
	var out bytes.Buffer
	rw := struct {
		io.Reader
		io.Writer
	}{strings.NewReader(req), &out}
	s.serveRequest(context.Background(), rw)
	return out.Bytes()
}

func roundTrip(t *testing.T, adm admin, log *bytes.Buffer, req string) controlResponse {
	t.Helper()
	out := exchange(adm, log, req)
	var resp controlResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %q: %v", out, err)
	}
	return resp
}

func TestControlRequests(t *testing.T) {
	secret := []byte("a secret password")
	enc := func(r controlRequest) string {
		b, _ := json.Marshal(r)
		return string(b)
	}
	tests := []struct {
		name     string
		req      string
		err      error
		wantOK   bool
		wantErr  string
		wantCall string
	}{
		{"add", enc(controlRequest{Op: opAddUser, Address: "a@example.org", Secret: secret}), nil, true, "", "add a@example.org a secret password"},
		{"passwd", enc(controlRequest{Op: opPasswd, Address: "a@example.org", Secret: secret, NewSecret: []byte("new one")}), nil, true, "", "passwd a@example.org a secret password new one"},
		{"list", enc(controlRequest{Op: opUsers}), nil, true, "", "list "},
		{"app password", enc(controlRequest{Op: opAppPassword, Address: "a@example.org", Secret: secret, Label: "phone"}), nil, true, "", "app-password a@example.org a secret password phone"},
		{"slots", enc(controlRequest{Op: opSlots, Address: "a@example.org"}), nil, true, "", "slots a@example.org"},
		{"revoke", enc(controlRequest{Op: opRevoke, Address: "a@example.org", Slot: 7}), nil, true, "", "revoke a@example.org 7"},
		{"quota", enc(controlRequest{Op: opSetQuota, Address: "a@example.org", Quota: 1 << 30}), nil, true, "", "quota a@example.org 1073741824"},
		{"quota none", enc(controlRequest{Op: opSetQuota, Address: "a@example.org", Quota: -1}), nil, true, "", "quota a@example.org -1"},
		{"rule add", enc(controlRequest{Op: opRuleAdd, Rule: &ruleInfo{Action: "deny", Value: "bad.example"}}), nil, true, "", "rule-add deny bad.example"},
		{"rule add without a rule", enc(controlRequest{Op: opRuleAdd}), nil, false, "unknown operation", ""},
		{"rules", enc(controlRequest{Op: opRules}), nil, true, "", "rules "},
		{"rule remove", enc(controlRequest{Op: opRuleRemove, ID: 9, Action: "allow"}), nil, true, "", "rule-remove 9 allow"},
		{"train", enc(controlRequest{Op: opTrain, Secret: secret, Train: &trainRequest{Address: "a@example.org", Spam: true, Path: "/x.mbox"}}), nil, true, "", "train a@example.org false true /x.mbox a secret password"},
		{"trace", enc(controlRequest{Op: opTraceSearch, Query: &traceQuery{From: "x@y.example", IP: "192.0.2.0/24"}}), nil, true, "", "trace x@y.example 192.0.2.0/24"},
		{"unknown op", `{"op":"user.frob"}`, nil, false, `unknown operation "user.frob"`, ""},
		{"not json", `hello`, nil, false, "bad request", ""},
		{"truncated", `{"op":"user.add","address":"a@exa`, nil, false, "bad request", ""},
		{"oversize", `{"op":"user.add","address":"` + strings.Repeat("a", maxRequestBytes) + `"}`, nil, false, "bad request", ""},
		{"admin error shown", enc(controlRequest{Op: opDelete, Address: "x@example.org"}), adminErrorf(store.ErrNotFound, "no account x@example.org"), false, "no account x@example.org", "delete x@example.org"},
		{"internal error hidden", enc(controlRequest{Op: opExportKey, Address: "x@example.org"}), errors.New("badger: value log /srv/x/000001.vlog corrupt"), false, "internal error", "export x@example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAdmin{err: tt.err}
			var log bytes.Buffer
			resp := roundTrip(t, f, &log, tt.req)
			if resp.OK != tt.wantOK || !strings.Contains(resp.Error, tt.wantErr) {
				t.Errorf("response %+v, want ok=%v error~%q", resp, tt.wantOK, tt.wantErr)
			}
			if strings.Contains(resp.Error, "vlog") {
				t.Errorf("internal detail sent to the client: %q", resp.Error)
			}
			if got := strings.Join(f.calls, ";"); got != tt.wantCall {
				t.Errorf("calls %q, want %q", got, tt.wantCall)
			}
			if strings.Contains(log.String(), "secret password") {
				t.Errorf("secret in log: %s", log.String())
			}
		})
	}
}

// TestControlProbe: a connection closed before its first byte is how the
// CLI tells a running server from a stale socket. It gets no answer and
// leaves no warning.
func TestControlProbe(t *testing.T) {
	var log bytes.Buffer
	f := &fakeAdmin{}
	if out := exchange(f, &log, ""); len(out) != 0 {
		t.Errorf("probe answered %q", out)
	}
	if log.Len() != 0 || len(f.calls) != 0 {
		t.Errorf("probe logged %q, called %q", log.String(), f.calls)
	}
	// Whitespace is not a probe: it is a bad request and gets an answer.
	if resp := roundTrip(t, f, &log, " \n"); resp.OK || !strings.Contains(resp.Error, "bad request") {
		t.Errorf("blank request: %+v", resp)
	}
}

// FuzzControlRequest feeds arbitrary bytes to the control socket's request
// handling: it must answer with one JSON response and never panic.
func FuzzControlRequest(f *testing.F) {
	f.Add([]byte(`{"op":"user.add","address":"a@example.org","secret":"c2VjcmV0"}`))
	f.Add([]byte(`{"op":"user.set-wkd","address":"a@example.org","publish":true}`))
	f.Add([]byte(`{"op":"user.list"}{"op":"user.delete"}`))
	f.Add([]byte(`{"op":"user.app-password","address":"a@example.org","secret":"c2VjcmV0","label":"phone"}`))
	f.Add([]byte(`{"op":"user.revoke","address":"a@example.org","slot":4294967295}`))
	f.Add([]byte(`{"op":"user.set-quota","address":"a@example.org","quota":-1}`))
	f.Add([]byte(`{"op":"audit.head"}`))
	f.Add([]byte(`{"op":"audit.records","from":3,"since":"2026-12-01T10:00:00Z"}`))
	f.Add([]byte(`{"op":"retention.sweep","args":{"dry_run":true}}`))
	f.Add([]byte(`{"op":"policy.assign","args":{"preset":"DE-HGB-AO","scope":"org","force":true}}`))
	f.Add([]byte(`{"op":"hold.release","args":{"id":"x"}}`))
	f.Add([]byte(`{"op":123}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, req []byte) {
		var log bytes.Buffer
		if len(req) == 0 {
			return // a probe: TestControlProbe
		}
		resp := roundTrip(t, &fakeAdmin{}, &log, string(req))
		if !resp.OK && resp.Error == "" {
			t.Fatalf("failure without message for %q", req)
		}
	})
}

// FuzzConfigFile feeds arbitrary YAML to the configuration reader: it must
// return a valid Config or an error, never panic.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("data_dir: /srv\nhostname: mx.example.org\ndomains: [example.org]\n"))
	f.Add([]byte("aliases:\n  info@example.org: [a@example.org]\ndomains: [example.org]\n"))
	f.Add([]byte("limits:\n  message_bytes: 10MiB\n  data_timeout: 1m\n"))
	f.Add([]byte("listen: {smtp: ':25'}\n"))
	f.Add([]byte("kdf: {time: 1, memory_kib: 1024}\n"))
	f.Add([]byte("domains: [Bücher.example]\nhostname: mx.xn--bcher-kva.example\npostmaster: a@bücher.example\n"))
	f.Add([]byte("limits: {imap_connections: 5, imap_connections_per_ip: 5, idle_timeout: 2s, line_length: 1000}\n"))
	f.Add([]byte("mta_sts: {mode: enforce, mx: ['*.example.org'], max_age: 1h}\n"))
	clearEnv(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfigBytes(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails validation again: %v", err)
		}
	})
}

func TestControlSocketPathTooLong(t *testing.T) {
	path := "/tmp/" + strings.Repeat("d", maxSocketPath) + "/control.sock"
	if _, err := listenControl(path); err == nil || !strings.Contains(err.Error(), "shorter data_dir") {
		t.Errorf("listen: %v", err)
	}
	// The CLI works on the store itself: no server can run there.
	if r, err := dialControl(path); r != nil || err != nil {
		t.Errorf("dial: %v, %v", r, err)
	}
}
