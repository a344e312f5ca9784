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

// streamFunc runs a stream operation, calling emit once per item, and
// returns the final result.
type streamFunc func(ctx context.Context, r *controlRequest, emit func(item any) error) (any, error)

// maxAuditLine bounds one line of an audit.records stream.
const maxAuditLine = audit.MaxLineBytes + 4<<10

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
			var since time.Time
			if r.Since != "" {
				t, err := time.Parse(time.RFC3339Nano, r.Since)
				if err != nil {
					return nil, adminErrorf(err, "bad since %q", r.Since)
				}
				since = t
			}
			return nil, aa.AuditRecords(ctx, r.From, since, func(j audit.JSONRecord) error { return emit(j) })
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
	req := controlRequest{Op: opAuditRecords, From: from}
	if !since.IsZero() {
		req.Since = since.UTC().Format(time.RFC3339Nano)
	}
	return r.stream(ctx, req, maxAuditLine, func(item json.RawMessage) error {
		var j audit.JSONRecord
		if err := json.Unmarshal(item, &j); err != nil {
			return fmt.Errorf("decode audit record from the running server: %w", err)
		}
		return fn(j)
	}, nil)
}
