package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

func init() {
	// Operations for TestRegisteredOps: one reports progress and echoes
	// its body, one streams.
	registerOp(&controlOp{name: "test.echo", local: true, body: true, long: true,
		run: func(ctx context.Context, _ *backend, req *opRequest) (any, error) {
			var args struct{ N int64 }
			if err := req.args(&args); err != nil {
				return nil, err
			}
			for i := int64(1); i <= args.N; i++ {
				store.ReportProgress(ctx, i, args.N)
			}
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return nil, err
			}
			if string(b) == "fail" {
				return nil, adminErrorf(nil, "asked to fail")
			}
			return map[string]string{"body": string(b), "address": req.Address}, nil
		}})
	registerOp(&controlOp{name: "test.stream", local: true, long: true,
		run: func(ctx context.Context, _ *backend, req *opRequest) (any, error) {
			w, err := req.Stream(map[string]int{"size": 100000})
			if err != nil {
				return nil, err
			}
			_, err = w.Write(bytes.Repeat([]byte("s"), 100000))
			return nil, err
		}})
}

// TestRegisteredOps runs registered operations over a real control
// socket: arguments, a body after the request, progress lines before
// the answer, a stream after it, and operator errors.
func TestRegisteredOps(t *testing.T) {
	dir, err := os.MkdirTemp("", "ops")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "c.sock")
	ln, err := listenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := newControlServer(ln, &fakeAdmin{}, &backend{}, slog.New(slog.DiscardHandler))
	go srv.serve(context.Background())
	defer srv.close(context.Background())
	r := &remoteAdmin{path: path}

	var progress [][2]int64
	ctx := store.WithProgress(context.Background(), func(d, t int64) { progress = append(progress, [2]int64{d, t}) })
	args, _ := json.Marshal(struct{ N int64 }{3})
	body := strings.Repeat("body ", 100000) // more than a socket buffer
	var res map[string]string
	err = r.do(ctx, controlRequest{Op: "test.echo", Address: "a@example.org", Args: args},
		callIO{body: strings.NewReader(body), long: true}, &res)
	if err != nil {
		t.Fatal(err)
	}
	if res["body"] != body || res["address"] != "a@example.org" {
		t.Errorf("echo: %d bytes, address %q", len(res["body"]), res["address"])
	}
	// Lines are rate-limited; the first and the last always go out.
	if len(progress) < 2 || progress[0] != [2]int64{1, 3} || progress[len(progress)-1] != [2]int64{3, 3} {
		t.Errorf("progress %v", progress)
	}

	err = r.do(ctx, controlRequest{Op: "test.echo"}, callIO{body: strings.NewReader("fail")}, nil)
	var ae *adminError
	if !errors.As(err, &ae) || ae.msg != "asked to fail" {
		t.Errorf("failing op: %v", err)
	}
	err = r.do(ctx, controlRequest{Op: "test.echo", Args: json.RawMessage(`{"N":"x"}`)}, callIO{}, nil)
	if !errors.As(err, &ae) || !strings.Contains(ae.msg, "bad arguments") {
		t.Errorf("bad arguments: %v", err)
	}

	var size map[string]int
	var got []byte
	err = r.do(ctx, controlRequest{Op: "test.stream"}, callIO{long: true, stream: func(rd io.Reader) error {
		got, err = io.ReadAll(rd)
		return err
	}}, &size)
	if err != nil || size["size"] != 100000 || !bytes.Equal(got, bytes.Repeat([]byte("s"), 100000)) {
		t.Errorf("stream: %v, %v, %d bytes", err, size, len(got))
	}
}

// TestRunLocalOp runs the same operations in process, as the CLI does
// when no server runs.
func TestRunLocalOp(t *testing.T) {
	var res map[string]string
	args, _ := json.Marshal(struct{ N int64 }{2})
	err := runLocalOp(context.Background(), controlOps["test.echo"], &backend{},
		&opRequest{Address: "b@example.org", Args: args}, opCall{Body: strings.NewReader("local")}, &res)
	if err != nil || res["body"] != "local" || res["address"] != "b@example.org" {
		t.Errorf("local echo: %v %v", res, err)
	}
	var size map[string]int
	var got []byte
	err = runLocalOp(context.Background(), controlOps["test.stream"], &backend{}, &opRequest{},
		opCall{Stream: func(r io.Reader) error {
			var err error
			got, err = io.ReadAll(r)
			return err
		}}, &size)
	if err != nil || size["size"] != 100000 || len(got) != 100000 {
		t.Errorf("local stream: %v %v %d", err, size, len(got))
	}
}

// TestProgressLine: on a terminal the bar shows the fraction, amounts and
// rate; Done ends the line.
func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p := &progress{w: &buf, label: "backup", unit: unitBytes, width: 100, now: func() time.Time { return now }}
	p.start = now
	p.Set(0, 4<<20)
	now = now.Add(2 * time.Second)
	p.Set(1<<20, 4<<20)
	p.Add(1 << 20)      // within 1/10 s: not drawn
	p.SetTotal(4 << 20) // unchanged
	p.Done()
	out := buf.String()
	lines := strings.Split(out, "\r")
	if len(lines) != 4 { // "", first draw, second draw, final draw + "\n"
		t.Fatalf("%d draws: %q", len(lines)-1, out)
	}
	if !strings.Contains(lines[2], "backup   [##########>") || !strings.Contains(lines[2], " 25%  1.0 MiB of 4.0 MiB  512.0 KiB/s  6s left") {
		t.Errorf("second draw %q", lines[2])
	}
	if !strings.Contains(lines[3], " 50%  2.0 MiB of 4.0 MiB") || !strings.HasSuffix(out, "\x1b[K\n") {
		t.Errorf("final draw %q", lines[3])
	}
	// Not a terminal: nothing at all.
	q := &progress{label: "x"}
	q.Set(1, 2)
	q.Add(1)
	q.Done()
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
