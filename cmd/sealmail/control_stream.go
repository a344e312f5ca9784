package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/sealmail/sealmail/server/audit"
)

// Streams: operations whose answer can be too long for one response
// (the audit log, an escrow export) answer with one line per item,
// {"ok":true,"item":…}, then one last line: {"ok":true,"done":true,
// "result":…} or {"ok":false,"error":…}. Each line is written under its
// own deadline, so a stream lasts as long as its reader keeps reading,
// and it ends when the reader goes away or the server stops.

// The audit and escrow operations.
const (
	opAuditHead     = "audit.head"
	opAuditRecords  = "audit.records" // a stream
	opEscrowKeys    = "escrow.keys"
	opEscrowInit    = "escrow.init"
	opEscrowRefused = "escrow.refused"
	opEscrowExport  = "escrow.export" // a stream
	opEscrowDone    = "escrow.finished"
)

// streamFunc runs a stream operation, calling emit once per item, and
// returns the final result.
type streamFunc func(ctx context.Context, r *controlRequest, emit func(item any) error) (any, error)

// maxAuditLine bounds one line of an audit.records stream; maxEscrowLine
// one line of an escrow.export stream (a piece of a sealed message).
const (
	maxAuditLine  = audit.MaxLineBytes + 4<<10
	maxEscrowLine = 2*maxEscrowPieceSz + 64<<10
)

// maxExportBlob bounds one sealed message of an escrow export on the
// client side.
const maxExportBlob = 1 << 30

// Arguments of the audit and escrow operations (controlRequest.Args).
type (
	auditRecordsArgs struct {
		From  uint64 `json:"from,omitempty"`
		Since string `json:"since,omitempty"` // RFC 3339
	}
	escrowInitArgs struct {
		PublicKey []byte `json:"public_key"`
		Replace   bool   `json:"replace,omitempty"`
	}
	escrowArgs struct {
		Scope       string      `json:"scope"`
		Cause       string      `json:"cause,omitempty"`
		Fingerprint string      `json:"fingerprint,omitempty"`
		Done        *escrowDone `json:"done,omitempty"`
	}
)

// escrowPiece is one line of an escrow.export stream: a message's
// metadata, then its sealed bytes in pieces, then its end.
type escrowPiece struct {
	Message *escrowItem `json:"message,omitempty"`
	Data    []byte      `json:"data,omitempty"`
	End     bool        `json:"end,omitempty"`
}

// args decodes a request's arguments.
func args(r *controlRequest, v any) error {
	if len(r.Args) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Args, v); err != nil {
		return adminErrorf(err, "bad arguments: %v", err)
	}
	return nil
}

// mustJSON marshals arguments the CLI built itself.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own argument structs
	}
	return b
}

// dispatchMore runs the audit and escrow operations that answer once.
func (s *controlServer) dispatchMore(ctx context.Context, r *controlRequest) (any, bool, error) {
	aa, _ := s.adm.(auditAdmin)
	ea, _ := s.adm.(escrowAdmin)
	switch {
	case r.Op == opAuditHead && aa != nil:
		res, err := aa.AuditHead(ctx)
		return res, true, err
	case r.Op == opEscrowKeys && ea != nil:
		res, err := ea.EscrowKeys(ctx)
		return res, true, err
	case r.Op == opEscrowInit && ea != nil:
		var a escrowInitArgs
		if err := args(r, &a); err != nil {
			return nil, true, err
		}
		res, err := ea.EscrowInit(ctx, a.PublicKey, a.Replace)
		return res, true, err
	case r.Op == opEscrowRefused && ea != nil:
		var a escrowArgs
		if err := args(r, &a); err != nil {
			return nil, true, err
		}
		return nil, true, ea.EscrowRefused(ctx, a.Scope, a.Cause)
	case r.Op == opEscrowDone && ea != nil:
		var a escrowArgs
		if err := args(r, &a); err != nil {
			return nil, true, err
		}
		if a.Done == nil {
			return nil, true, adminErrorf(nil, "bad arguments: no result")
		}
		return nil, true, ea.EscrowFinished(ctx, a.Scope, a.Fingerprint, *a.Done)
	}
	return nil, false, nil
}

// streamOp returns the stream operation op names, or nil if op is not a
// stream (or the admin cannot serve it).
func (s *controlServer) streamOp(op string) streamFunc {
	switch op {
	case opAuditRecords:
		aa, ok := s.adm.(auditAdmin)
		if !ok {
			return nil
		}
		return func(ctx context.Context, r *controlRequest, emit func(any) error) (any, error) {
			var a auditRecordsArgs
			if err := args(r, &a); err != nil {
				return nil, err
			}
			var since time.Time
			if a.Since != "" {
				t, err := time.Parse(time.RFC3339Nano, a.Since)
				if err != nil {
					return nil, adminErrorf(err, "bad since %q", a.Since)
				}
				since = t
			}
			return nil, aa.AuditRecords(ctx, a.From, since, func(j audit.JSONRecord) error { return emit(j) })
		}
	case opEscrowExport:
		ea, ok := s.adm.(escrowAdmin)
		if !ok {
			return nil
		}
		return func(ctx context.Context, r *controlRequest, emit func(any) error) (any, error) {
			var a escrowArgs
			if err := args(r, &a); err != nil {
				return nil, err
			}
			return ea.EscrowExport(ctx, a.Scope, a.Fingerprint, func(it escrowItem, blob []byte) error {
				if err := emit(escrowPiece{Message: &it}); err != nil {
					return err
				}
				for len(blob) > 0 {
					n := min(len(blob), maxEscrowPieceSz)
					if err := emit(escrowPiece{Data: blob[:n]}); err != nil {
						return err
					}
					blob = blob[n:]
				}
				return emit(escrowPiece{End: true})
			})
		}
	}
	return nil
}

// errStreamWrite: the reader of a stream went away; the stream stops.
var errStreamWrite = errors.New("control stream: the reader went away")

// serveStream runs a stream operation on rw.
func (s *controlServer) serveStream(ctx context.Context, rw io.ReadWriter, req *controlRequest, run streamFunc) error {
	conn, _ := rw.(net.Conn)
	bw := bufio.NewWriterSize(rw, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lastFlush := time.Now()
	emit := func(item any) error {
		b, err := json.Marshal(item)
		if err != nil {
			return err
		}
		if conn != nil {
			conn.SetWriteDeadline(time.Now().Add(requestTimeout))
		}
		if err := enc.Encode(controlResponse{OK: true, Item: b}); err != nil {
			return fmt.Errorf("%w: %v", errStreamWrite, err)
		}
		// Small items are written in batches, but none waits long.
		if time.Since(lastFlush) > time.Second {
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("%w: %v", errStreamWrite, err)
			}
			lastFlush = time.Now()
		}
		return nil
	}
	result, err := run(ctx, req, emit)
	if errors.Is(err, errStreamWrite) {
		return err
	}
	resp := s.response(result, err)
	resp.Done = resp.OK
	if conn != nil {
		conn.SetWriteDeadline(time.Now().Add(requestTimeout))
	}
	if werr := enc.Encode(resp); werr == nil {
		if werr = bw.Flush(); werr != nil {
			s.log.Warn("control stream", "proto", "control", "err", werr)
		}
	}
	return err
}

// stream sends one request for a stream operation, calls item with each
// item as it arrives (lines of at most maxLine bytes) and decodes the
// final result into out (may be nil).
func (r *remoteAdmin) stream(ctx context.Context, req controlRequest, maxLine int, item func(json.RawMessage) error, out any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", r.path)
	if err != nil {
		return fmt.Errorf("connect to the running server: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	c.SetWriteDeadline(time.Now().Add(requestTimeout))
	if err := json.NewEncoder(c).Encode(&req); err != nil {
		return fmt.Errorf("send request to the running server: %w", err)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		// Each item must come within opTimeout of the one before.
		c.SetReadDeadline(time.Now().Add(opTimeout))
		line, err := readStreamLine(br, maxLine)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the running server ended the answer early (it may be stopping; its log may say more)")
			}
			return fmt.Errorf("read from the running server: %w", err)
		}
		var resp controlResponse
		if err := json.Unmarshal(line, &resp); err != nil {
			return fmt.Errorf("decode reply from the running server: %w", err)
		}
		switch {
		case !resp.OK:
			if resp.Error == "" {
				resp.Error = "the running server refused the request"
			}
			return &adminError{msg: resp.Error}
		case resp.Done:
			if out != nil && len(resp.Result) > 0 {
				if err := json.Unmarshal(resp.Result, out); err != nil {
					return fmt.Errorf("decode reply from the running server: %w", err)
				}
			}
			return nil
		}
		if err := item(resp.Item); err != nil {
			return err
		}
	}
}

// readStreamLine returns the next line without its "\n", or an error for
// a line longer than max.
func readStreamLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return nil, fmt.Errorf("a line of the answer is longer than %d bytes", max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

func (r *remoteAdmin) AuditHead(ctx context.Context) (auditHead, error) {
	var h auditHead
	err := r.call(ctx, controlRequest{Op: opAuditHead}, &h)
	return h, err
}

func (r *remoteAdmin) AuditRecords(ctx context.Context, from uint64, since time.Time, fn func(audit.JSONRecord) error) error {
	a := auditRecordsArgs{From: from}
	if !since.IsZero() {
		a.Since = since.UTC().Format(time.RFC3339Nano)
	}
	req := controlRequest{Op: opAuditRecords, Args: mustJSON(a)}
	return r.stream(ctx, req, maxAuditLine, func(item json.RawMessage) error {
		var j audit.JSONRecord
		if err := json.Unmarshal(item, &j); err != nil {
			return fmt.Errorf("decode audit record from the running server: %w", err)
		}
		return fn(j)
	}, nil)
}

func (r *remoteAdmin) EscrowKeys(ctx context.Context) ([]escrowKeyInfo, error) {
	var keys []escrowKeyInfo
	err := r.call(ctx, controlRequest{Op: opEscrowKeys}, &keys)
	return keys, err
}

func (r *remoteAdmin) EscrowInit(ctx context.Context, publicKey []byte, replace bool) (escrowKeyInfo, error) {
	var k escrowKeyInfo
	err := r.call(ctx, controlRequest{Op: opEscrowInit, Args: mustJSON(escrowInitArgs{PublicKey: publicKey, Replace: replace})}, &k)
	return k, err
}

func (r *remoteAdmin) EscrowRefused(ctx context.Context, scope, cause string) error {
	return r.call(ctx, controlRequest{Op: opEscrowRefused, Args: mustJSON(escrowArgs{Scope: scope, Cause: cause})}, nil)
}

func (r *remoteAdmin) EscrowFinished(ctx context.Context, scope, fingerprint string, done escrowDone) error {
	return r.call(ctx, controlRequest{Op: opEscrowDone, Args: mustJSON(escrowArgs{Scope: scope, Fingerprint: fingerprint, Done: &done})}, nil)
}

func (r *remoteAdmin) EscrowExport(ctx context.Context, scope, fingerprint string, fn func(escrowItem, []byte) error) (escrowSent, error) {
	var (
		sent escrowSent
		cur  *escrowItem
		blob []byte
	)
	req := controlRequest{Op: opEscrowExport, Args: mustJSON(escrowArgs{Scope: scope, Fingerprint: fingerprint})}
	err := r.stream(ctx, req, maxEscrowLine, func(item json.RawMessage) error {
		var p escrowPiece
		if err := json.Unmarshal(item, &p); err != nil {
			return fmt.Errorf("decode escrow export from the running server: %w", err)
		}
		switch {
		case p.Message != nil:
			if cur != nil || p.Message.Size < 0 || p.Message.Size > maxExportBlob {
				return errors.New("the running server sent a malformed export")
			}
			cur, blob = p.Message, make([]byte, 0, p.Message.Size)
		case p.End:
			if cur == nil || int64(len(blob)) != cur.Size {
				return errors.New("the running server sent a malformed export")
			}
			it := *cur
			cur = nil
			return fn(it, blob)
		default:
			if cur == nil || int64(len(blob)+len(p.Data)) > cur.Size {
				return errors.New("the running server sent a malformed export")
			}
			blob = append(blob, p.Data...)
		}
		return nil
	}, &sent)
	return sent, err
}
