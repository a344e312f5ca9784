package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/server/audit"
)

// fakeOps is fakeAdmin with the audit and escrow operations: n records,
// and an export of messages of the given sizes.
type fakeOps struct {
	fakeAdmin
	records int
	sizes   []int
	failAt  int // a stream fails after this many items (0: never)
}

func (f *fakeOps) AuditHead(context.Context) (auditHead, error) {
	return auditHead{Seq: uint64(f.records), Hash: strings.Repeat("ab", 32), Time: "2026-12-01T10:00:00.000000000Z"}, f.err
}

func (f *fakeOps) AuditRecords(_ context.Context, from uint64, _ time.Time, fn func(audit.JSONRecord) error) error {
	for i := max(from, 1); i <= uint64(f.records); i++ {
		if f.failAt > 0 && int(i) > f.failAt {
			return errors.New("badger: corrupt value log /srv/x")
		}
		if err := fn(audit.JSONRecord{Seq: i, Action: "test.item", Detail: map[string]string{}}); err != nil {
			return err
		}
	}
	return f.err
}

func (f *fakeOps) EscrowKeys(context.Context) ([]escrowKeyInfo, error) {
	return []escrowKeyInfo{{ID: 1, Fingerprint: "aa", InUse: true}}, f.err
}

func (f *fakeOps) EscrowInit(_ context.Context, pub []byte, replace bool) (escrowKeyInfo, error) {
	f.note("escrow-init", fmt.Sprintf("%q %v", pub, replace))
	return escrowKeyInfo{ID: 2}, f.err
}

func (f *fakeOps) EscrowRefused(_ context.Context, scope, cause string) error {
	f.note("escrow-refused", scope+" "+cause)
	return f.err
}

func (f *fakeOps) EscrowFinished(_ context.Context, scope, fp string, d escrowDone) error {
	f.note("escrow-finished", fmt.Sprintf("%s %s %d", scope, fp, d.Written))
	return f.err
}

func (f *fakeOps) EscrowExport(_ context.Context, scope, fp string, fn func(escrowItem, []byte) error) (escrowSent, error) {
	var sent escrowSent
	for i, n := range f.sizes {
		blob := bytes.Repeat([]byte{byte(i)}, n)
		if err := fn(escrowItem{Account: "a@example.org", UID: uint32(i + 1), Size: int64(n)}, blob); err != nil {
			return sent, err
		}
		sent.Messages++
		sent.Bytes += int64(n)
	}
	return sent, f.err
}

// streamLines runs one request through the control server and checks the
// answer's form: JSON lines, items only before the last line, which is
// Done or an error. It returns the lines.
func streamLines(t *testing.T, adm admin, req string) []controlResponse {
	t.Helper()
	out := exchange(adm, &bytes.Buffer{}, req)
	var lines []controlResponse
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, maxEscrowLine)
	for sc.Scan() {
		var r controlResponse
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("answer line %q: %v", sc.Text(), err)
		}
		lines = append(lines, r)
	}
	if len(lines) == 0 {
		t.Fatalf("no answer to %q", req)
	}
	for _, r := range lines[:len(lines)-1] {
		if !r.OK || r.Item == nil || r.Done || r.Error != "" {
			t.Fatalf("a line before the last is not an item: %+v", r)
		}
	}
	last := lines[len(lines)-1]
	if last.Item != nil || (last.OK && !last.Done && last.Result == nil && !strings.Contains(req, `"op":"audit.head"`)) || (!last.OK && last.Error == "") {
		t.Fatalf("last line %+v", last)
	}
	return lines
}

func TestControlStreams(t *testing.T) {
	f := &fakeOps{records: 5}
	lines := streamLines(t, f, `{"op":"audit.records","args":{"from":2}}`)
	if len(lines) != 5 || !lines[4].Done {
		t.Fatalf("%d lines", len(lines))
	}
	var j audit.JSONRecord
	json.Unmarshal(lines[0].Item, &j)
	if j.Seq != 2 {
		t.Errorf("first record %d", j.Seq)
	}
	// A failure mid-stream ends it with a generic error; the cause stays
	// in the log.
	f.failAt = 3
	lines = streamLines(t, f, `{"op":"audit.records"}`)
	if last := lines[len(lines)-1]; last.OK || !strings.Contains(last.Error, "internal error") || strings.Contains(last.Error, "badger") || len(lines) != 4 {
		t.Errorf("failed stream: %d lines, last %+v", len(lines), last)
	}
	if resp := roundTrip(t, f, &bytes.Buffer{}, `{"op":"audit.records","args":{"since":"yesterday"}}`); resp.OK || !strings.Contains(resp.Error, "bad since") {
		t.Errorf("bad since: %+v", resp)
	}
	if resp := roundTrip(t, f, &bytes.Buffer{}, `{"op":"audit.records","args":"nope"}`); resp.OK || !strings.Contains(resp.Error, "bad arguments") {
		t.Errorf("bad arguments: %+v", resp)
	}

	// An export sends each message's metadata, its sealed bytes in
	// pieces of at most maxEscrowPieceSz, and its end.
	f = &fakeOps{sizes: []int{0, 10, maxEscrowPieceSz, 2*maxEscrowPieceSz + 1}}
	lines = streamLines(t, f, `{"op":"escrow.export","args":{"scope":"org","fingerprint":"aa"}}`)
	var pieces []string
	for _, l := range lines[:len(lines)-1] {
		var p escrowPiece
		json.Unmarshal(l.Item, &p)
		switch {
		case p.Message != nil:
			pieces = append(pieces, fmt.Sprintf("m%d", p.Message.Size))
		case p.End:
			pieces = append(pieces, "e")
		default:
			pieces = append(pieces, fmt.Sprint(len(p.Data)))
		}
	}
	want := fmt.Sprintf("m0 e m10 10 e m%d %d e m%d %d %d 1 e", maxEscrowPieceSz, maxEscrowPieceSz, 2*maxEscrowPieceSz+1, maxEscrowPieceSz, maxEscrowPieceSz)
	if got := strings.Join(pieces, " "); got != want {
		t.Errorf("pieces %s, want %s", got, want)
	}
	var sent escrowSent
	json.Unmarshal(lines[len(lines)-1].Result, &sent)
	if sent.Messages != 4 {
		t.Errorf("result %+v", sent)
	}

	for _, req := range []string{
		`{"op":"escrow.init","args":{"public_key":"cHVi","replace":true}}`,
		`{"op":"escrow.refused","args":{"scope":"org","cause":"wrong passphrase"}}`,
		`{"op":"escrow.finished","args":{"scope":"org","fingerprint":"aa","done":{"written":3}}}`,
	} {
		if resp := roundTrip(t, f, &bytes.Buffer{}, req); !resp.OK {
			t.Errorf("%s: %+v", req, resp)
		}
	}
	if got := strings.Join(f.calls, ";"); got != `escrow-init "pub" true;escrow-refused org wrong passphrase;escrow-finished org aa 3` {
		t.Errorf("calls %s", got)
	}
	if resp := roundTrip(t, f, &bytes.Buffer{}, `{"op":"escrow.finished","args":{"scope":"org"}}`); resp.OK {
		t.Errorf("finished without a result: %+v", resp)
	}
}

// TestRemoteStreamRoundTrip: the client side of a stream against the
// server side, over a control socket.
func TestRemoteStreamRoundTrip(t *testing.T) {
	f := &fakeOps{records: 3, sizes: []int{5, maxEscrowPieceSz + 3}}
	dir, err := os.MkdirTemp("", "cs") // a short path: sun_path
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := listenControl(dir + "/c.sock")
	if err != nil {
		t.Fatal(err)
	}
	srv := newControlServer(ln, f, nil, slog.New(slog.DiscardHandler))
	go srv.serve(context.Background())
	defer srv.close(context.Background())
	r := &remoteAdmin{path: dir + "/c.sock"}
	var seqs []uint64
	if err := r.AuditRecords(context.Background(), 0, time.Time{}, func(j audit.JSONRecord) error { seqs = append(seqs, j.Seq); return nil }); err != nil || len(seqs) != 3 {
		t.Fatalf("records %v %v", seqs, err)
	}
	var sizes []int
	sent, err := r.EscrowExport(context.Background(), "org", "aa", func(it escrowItem, blob []byte) error {
		if int64(len(blob)) != it.Size || (len(blob) > 0 && blob[0] != byte(it.UID-1)) {
			t.Errorf("message %d: %d bytes of %d", it.UID, len(blob), it.Size)
		}
		sizes = append(sizes, len(blob))
		return nil
	})
	if err != nil || sent.Messages != 2 || fmt.Sprint(sizes) != fmt.Sprint([]int{5, maxEscrowPieceSz + 3}) {
		t.Fatalf("export: %v %+v %v", sizes, sent, err)
	}
	// The reader stops early: the server's stream ends, nothing hangs.
	stop := errors.New("enough")
	if err := r.AuditRecords(context.Background(), 0, time.Time{}, func(audit.JSONRecord) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("early stop: %v", err)
	}
}

// FuzzControlStreams feeds arbitrary requests to the audit and escrow
// operations: every answer is well-formed and nothing panics.
func FuzzControlStreams(f *testing.F) {
	f.Add([]byte(`{"op":"audit.records","args":{"from":2,"since":"2026-12-01T10:00:00Z"}}`))
	f.Add([]byte(`{"op":"audit.head"}`))
	f.Add([]byte(`{"op":"escrow.export","args":{"scope":"user:a@example.org","fingerprint":"aa"}}`))
	f.Add([]byte(`{"op":"escrow.init","args":{"public_key":"AAAA"}}`))
	f.Add([]byte(`{"op":"escrow.finished","args":{"scope":"org","done":{"written":-1,"sha256":"x"}}}`))
	f.Add([]byte(`{"op":"escrow.refused","args":{"scope":"` + strings.Repeat("x", 2000) + `"}}`))
	f.Fuzz(func(t *testing.T, req []byte) {
		if len(req) == 0 {
			return
		}
		streamLines(t, &fakeOps{records: 2, sizes: []int{3}}, string(req))
	})
}
