package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sealmail/sealmail/server/audit"
	"github.com/sealmail/sealmail/server/connset"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// The control socket lets the CLI administer accounts while `serve` holds
// the store (badger allows one process per directory). Protocol: one JSON
// request per connection, one JSON response, then the server closes.
const (
	maxRequestBytes  = 64 << 10 // a request holds at most two 1 KiB secrets
	maxResponseBytes = 16 << 20 // user list of many accounts
	requestTimeout   = 30 * time.Second
	// opTimeout bounds one operation: key generation (RSA-4096) and a few
	// argon2id runs.
	opTimeout = 5 * time.Minute
)

// Control operations.
const (
	opAddUser      = "user.add"
	opUsers        = "user.list"
	opPasswd       = "user.passwd"
	opDelete       = "user.delete"
	opRecoveryCode = "user.recovery-code"
	opSetWKD       = "user.set-wkd"
	opExportKey    = "key.export"
	opExportSecret = "key.export-secret"
	opAppPassword  = "user.app-password"
	opSlots        = "user.slots"
	opRevoke       = "user.revoke"
	opSetQuota     = "user.set-quota"
	opRuleAdd      = "filter.rule-add"
	opRules        = "filter.rules"
	opRuleRemove   = "filter.rule-remove"
	opTrain        = "filter.train"
	opTraceSearch  = "trace.search"
)

type controlRequest struct {
	Op        string `json:"op"`
	Address   string `json:"address,omitempty"`
	Secret    []byte `json:"secret,omitempty"`
	NewSecret []byte `json:"new_secret,omitempty"`
	Publish   bool   `json:"publish,omitempty"`
	Label     string `json:"label,omitempty"`
	Slot      uint32 `json:"slot,omitempty"`
	Quota     int64  `json:"quota,omitempty"` // opSetQuota: 0 is the default
	// Filter and trace operations.
	Rule   *ruleInfo     `json:"rule,omitempty"`
	ID     uint64        `json:"id,omitempty"`
	Action string        `json:"action,omitempty"`
	Train  *trainRequest `json:"train,omitempty"`
	Query  *traceQuery   `json:"query,omitempty"`
	// Args are the arguments of the audit and escrow operations
	// (control_stream.go) and of registered operations (ops.go).
	Args json.RawMessage `json:"args,omitempty"`
	// Queue operations: an entry or message ID.
	QueueID string `json:"queue_id,omitempty"`
}

// controlResponse is one line the server writes: a progress report
// (Progress set; more lines follow) or the final answer.
type controlResponse struct {
	OK       bool            `json:"ok"`
	Error    string          `json:"error,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Progress *progressReport `json:"progress,omitempty"`
	// A stream's answer (control_stream.go) is one line per item, then
	// a last line with Done or an Error.
	Item json.RawMessage `json:"item,omitempty"`
	Done bool            `json:"done,omitempty"`
}

// progressReport is how far a long operation has come (store.Progress).
type progressReport struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// progressLineInterval bounds how often the server sends progress lines.
const progressLineInterval = 100 * time.Millisecond

// errServerRunning is returned when a live server already owns the socket.
var errServerRunning = errors.New("a sealmail server is already running on this data directory")

// controlServer serves admin requests from the owner of the process.
type controlServer struct {
	ln    *net.UnixListener
	path  string
	adm   admin
	svc   *backend    // for registered operations; nil: none (tests)
	queue queueHolder // the outbound queue, once serve has built it
	log   *slog.Logger
	uid   int

	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool // guarded by mu
}

// listenControl creates the socket at path, 0600 from the start. A stale
// socket left by a crash is replaced; a live one is errServerRunning.
func listenControl(path string) (*net.UnixListener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// The umask makes the socket 0600 at bind time; no window where
	// another user could connect. main runs this before starting any
	// goroutine that creates files.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return ln, nil
}

// maxSocketPath is the longest Unix socket path Linux accepts
// (sizeof(sun_path) - 1, unix(7)).
const maxSocketPath = 107

// removeStaleSocket removes path if it is a socket no server listens on.
func removeStaleSocket(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("control socket %s: path longer than %d bytes; use a shorter data_dir", path, maxSocketPath)
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket: %s exists and is not a socket", path)
	}
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		conn.Close()
		return errServerRunning
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket: remove stale %s: %w", path, err)
	}
	return nil
}

func newControlServer(ln *net.UnixListener, adm admin, svc *backend, log *slog.Logger) *controlServer {
	ln.SetUnlinkOnClose(false) // Close removes the path itself, once.
	return &controlServer{ln: ln, path: ln.Addr().String(), adm: adm, svc: svc, log: log, uid: os.Getuid()}
}

// serve accepts until close; each connection is one request. Temporary
// accept errors (out of descriptors) are retried with backoff, so admin
// commands work again as soon as descriptors are free.
func (s *controlServer) serve(ctx context.Context) {
	var backoff connset.Backoff
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if !closed && backoff.Retry(err) {
				s.log.Warn("control socket accept; retrying", "proto", "control", "err", err)
				continue
			}
			if !closed {
				s.log.Error("control socket accept", "proto", "control", "err", err)
			}
			return
		}
		backoff.Reset()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			s.handle(ctx, conn)
		}()
	}
}

// close stops accepting, waits for requests in flight (bounded by ctx) and
// removes the socket.
func (s *controlServer) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.ln.Close()
	if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("control socket: requests still running: %w", ctx.Err())
	}
	return err
}

func (s *controlServer) handle(ctx context.Context, conn *net.UnixConn) {
	uid, err := peerUID(conn)
	if err != nil || uid != s.uid {
		s.log.Warn("control socket: connection from another user refused", "proto", "control", "err", err)
		return
	}
	// The request must arrive within requestTimeout; after it, the
	// connection's deadlines move with each read and write.
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	// What this request changes is audited as done by the OS user the
	// peer runs as.
	s.serveRequest(audit.WithActor(ctx, cliActor(uid)), &idleConn{Conn: conn, idle: requestTimeout})
}

// idleConn moves its deadline before every write, and once rolling is
// set before every read: an operation may take long in all (a backup, an
// import) but neither side may stay silent for longer than idle.
type idleConn struct {
	net.Conn
	idle    time.Duration
	rolling bool // set by the request's goroutine after the request
}

func (c *idleConn) Read(p []byte) (int, error) {
	if c.rolling {
		c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	return c.Conn.Write(p)
}

// serveRequest reads one request from rw (at most maxRequestBytes, then
// the body of operations that take one), runs it and writes the response:
// progress lines while it runs, then the answer, then the raw stream of
// operations that send one.
func (s *controlServer) serveRequest(ctx context.Context, rw io.ReadWriter) {
	start := time.Now()
	lr := &io.LimitedReader{R: rw, N: maxRequestBytes}
	br := bufio.NewReader(lr)
	// A connection closed before its first byte is a liveness probe:
	// the CLI and a second `serve` connect to tell a running server from
	// a stale socket (removeStaleSocket). Nothing to answer, nothing to
	// warn about.
	if _, err := br.Peek(1); errors.Is(err, io.EOF) {
		s.log.Debug("control socket: probe", "proto", "control")
		return
	}
	var req controlRequest
	dec := json.NewDecoder(br)
	if err := dec.Decode(&req); err != nil {
		s.log.Warn("control socket: bad request", "proto", "control", "err", err)
		s.reply(rw, nil, adminErrorf(err, "bad request"))
		return
	}
	defer wipe(req.Secret)
	defer wipe(req.NewSecret)
	if ic, ok := rw.(*idleConn); ok {
		ic.rolling = true
	}
	var err error
	if run := s.streamOp(req.Op); run != nil {
		// A stream runs as long as its reader keeps reading.
		err = s.serveStream(ctx, rw, &req, run)
	} else {
		err = s.serveOp(ctx, rw, &req, dec, br)
	}
	attrs := []any{"proto", "control", "account", logSafeAddress(req.Address), "duration", time.Since(start)}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	s.log.Info("control request "+logSafeOp(req.Op), attrs...)
}

// serveOp runs a request that answers once: progress lines while it
// runs, then the answer, then the raw stream of operations that send one.
func (s *controlServer) serveOp(ctx context.Context, rw io.ReadWriter, req *controlRequest, dec *json.Decoder, br *bufio.Reader) error {
	// What follows the request, beyond the limit: the decoder's and the
	// bufio.Reader's read-ahead, then the connection itself.
	body := afterJSON(io.MultiReader(dec.Buffered(), io.LimitReader(br, int64(br.Buffered())), rw))
	op := controlOps[req.Op]
	if op == nil || !op.long {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opTimeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &responseWriter{w: rw, cancel: cancel, log: s.log}
	ctx = store.WithProgress(ctx, out.progress)
	result, err := s.dispatch(ctx, req, body, out)
	if !out.streamed {
		s.reply(out, result, err)
	}
	return err
}

// responseWriter writes a request's response lines, and its stream, in
// order. It is used by the goroutine running the request only.
type responseWriter struct {
	w        io.Writer
	cancel   context.CancelFunc // ends the operation when the client is gone
	log      *slog.Logger
	last     time.Time
	failed   bool // a write failed: the client is gone
	streamed bool // the answer went out, raw bytes follow
}

func (r *responseWriter) Write(p []byte) (int, error) {
	if r.failed {
		return 0, errClientGone
	}
	n, err := r.w.Write(p)
	if err != nil {
		r.failed = true
		r.cancel()
	}
	return n, err
}

// errClientGone: an earlier write to the client failed.
var errClientGone = errors.New("control socket: the client went away")

// progress sends a progress line, at most one per progressLineInterval,
// before the answer.
func (r *responseWriter) progress(done, total int64) {
	if r.streamed || r.failed {
		return
	}
	now := time.Now()
	if now.Sub(r.last) < progressLineInterval && done < total {
		return
	}
	r.last = now
	json.NewEncoder(r).Encode(controlResponse{Progress: &progressReport{Done: done, Total: total}})
}

// stream sends result as the successful answer and returns the writer
// for the raw bytes that follow it.
func (r *responseWriter) stream(result any) (io.Writer, error) {
	if r.streamed {
		return nil, errors.New("control socket: stream started twice")
	}
	b, err := json.Marshal(result)
	if err != nil {
		return nil, err
	}
	r.streamed = true
	if err := json.NewEncoder(r).Encode(controlResponse{OK: true, Result: b}); err != nil {
		return nil, err
	}
	return r, nil
}

// logSafeOp keeps an unknown operation name from putting arbitrary text in
// the log.
func logSafeOp(op string) string {
	switch op {
	case opAddUser, opUsers, opPasswd, opDelete, opRecoveryCode, opSetWKD, opExportKey, opExportSecret,
		opAppPassword, opSlots, opRevoke, opSetQuota, opRuleAdd, opRules, opRuleRemove, opTrain, opTraceSearch,
		opAuditHead, opAuditRecords, opEscrowKeys, opEscrowInit, opEscrowRefused, opEscrowExport, opEscrowDone,
		opQueueList, opQueueShow, opQueueRetry, opQueueDrop:
		return op
	}
	if controlOps[op] != nil {
		return op
	}
	return "(unknown)"
}

// logSafeAddress bounds what a request's address puts in the log.
func logSafeAddress(a string) string {
	if len(a) > 320 { // RFC 5321 §4.5.3.1: 64 + 1 + 255
		return a[:320] + "…"
	}
	return a
}

// dispatch runs one request: an account operation of admin, or a
// registered operation (ops.go) on the server's services.
func (s *controlServer) dispatch(ctx context.Context, r *controlRequest, body io.Reader, out *responseWriter) (any, error) {
	switch r.Op {
	case opAddUser:
		return s.adm.AddUser(ctx, r.Address, r.Secret)
	case opUsers:
		return s.adm.Users(ctx)
	case opPasswd:
		return s.adm.ChangePassword(ctx, r.Address, r.Secret, r.NewSecret)
	case opDelete:
		return s.adm.DeleteUser(ctx, r.Address)
	case opRecoveryCode:
		return s.adm.AddRecoveryCode(ctx, r.Address, r.Secret)
	case opSetWKD:
		return nil, s.adm.SetWKD(ctx, r.Address, r.Publish)
	case opSetQuota:
		return nil, s.adm.SetQuota(ctx, r.Address, r.Quota)
	case opExportKey:
		return s.adm.ExportKey(ctx, r.Address)
	case opExportSecret:
		return s.adm.ExportSecretKey(ctx, r.Address, r.Secret)
	case opAppPassword:
		return s.adm.AddAppPassword(ctx, r.Address, r.Secret, r.Label)
	case opSlots:
		return s.adm.Slots(ctx, r.Address)
	case opRevoke:
		return s.adm.RevokeSlot(ctx, r.Address, r.Slot)
	case opRuleAdd:
		if r.Rule == nil {
			break
		}
		return s.adm.AddRule(ctx, *r.Rule)
	case opRules:
		return s.adm.Rules(ctx)
	case opRuleRemove:
		return s.adm.RemoveRule(ctx, r.ID, r.Action)
	case opTrain:
		if r.Train == nil {
			break
		}
		return s.adm.Train(ctx, *r.Train, r.Secret)
	case opTraceSearch:
		if r.Query == nil {
			break
		}
		return s.adm.SearchTrace(ctx, *r.Query)
	case opQueueList, opQueueShow, opQueueRetry, opQueueDrop:
		return s.dispatchQueue(ctx, r)
	}
	if res, ok, err := s.dispatchMore(ctx, r); ok {
		return res, err
	}
	if op := controlOps[r.Op]; op != nil && s.svc != nil {
		req := &opRequest{Address: r.Address, Secret: r.Secret, Args: r.Args, Body: emptyBody{}, stream: out.stream}
		if op.body {
			req.Body = body
		}
		return op.run(ctx, s.svc, req)
	}
	return nil, adminErrorf(nil, "unknown operation %q", r.Op)
}

// reply writes the response. Only adminError text goes to the client; any
// other cause stays in the server log.
func (s *controlServer) reply(w io.Writer, result any, err error) {
	s.write(w, s.response(result, err))
}

// response builds the response to result and err.
func (s *controlServer) response(result any, err error) controlResponse {
	var resp controlResponse
	if err != nil {
		var ae *adminError
		if errors.As(err, &ae) {
			resp.Error = ae.msg
		} else {
			resp.Error = "internal error; the server log has the cause"
			s.log.Error("control request failed", "proto", "control", "err", err)
		}
	} else {
		resp.OK = true
		b, merr := json.Marshal(result)
		if merr != nil {
			resp = controlResponse{Error: "internal error; the server log has the cause"}
			s.log.Error("control response", "proto", "control", "err", merr)
		} else {
			resp.Result = b
		}
	}
	return resp
}

// write sends one response line.
func (s *controlServer) write(w io.Writer, resp controlResponse) {
	if c, ok := w.(net.Conn); ok {
		c.SetWriteDeadline(time.Now().Add(requestTimeout))
	}
	if err := json.NewEncoder(w).Encode(&resp); err != nil {
		s.log.Warn("control reply", "proto", "control", "err", err)
	}
}

// remoteAdmin implements admin by asking a running server.
type remoteAdmin struct {
	path string
}

var _ admin = (*remoteAdmin)(nil)

// dialControl returns a remoteAdmin if a server listens on path. It removes
// a stale socket (connection refused) and returns nil, nil when no server
// runs.
func dialControl(path string) (*remoteAdmin, error) {
	if len(path) > maxSocketPath {
		return nil, nil // no server can listen there (listenControl refuses)
	}
	err := removeStaleSocket(path)
	if errors.Is(err, errServerRunning) {
		return &remoteAdmin{path: path}, nil
	}
	return nil, err
}

// call sends one request and decodes the result into out (may be nil).
func (r *remoteAdmin) call(ctx context.Context, req controlRequest, out any) error {
	return r.do(ctx, req, callIO{}, out)
}

// callIO is what a request sends and receives besides JSON.
type callIO struct {
	// body is sent after the request, for operations that take one; the
	// connection's write side is closed after it.
	body io.Reader
	// stream reads the raw bytes that follow a successful answer, for
	// operations that send them. The answer is decoded into out first.
	stream func(r io.Reader) error
	// long: the operation may take long; only silence is bounded.
	long bool
}

// do sends one request (and its body), reports the server's progress
// lines to ctx's store.Progress, decodes the answer into out (may be
// nil) and hands a stream that follows to cio.stream.
func (r *remoteAdmin) do(ctx context.Context, req controlRequest, cio callIO, out any) error {
	defer wipe(req.Secret)
	defer wipe(req.NewSecret)
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", r.path)
	if err != nil {
		return fmt.Errorf("connect to the running server: %w", err)
	}
	defer nc.Close()
	var c net.Conn = nc
	if cio.long {
		c = &idleConn{Conn: nc, idle: opTimeout + requestTimeout, rolling: true}
	} else {
		deadline := time.Now().Add(opTimeout + requestTimeout)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		nc.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(c).Encode(&req); err != nil {
		return fmt.Errorf("send request to the running server: %w", err)
	}
	bodyErr := make(chan error, 1)
	if cio.body != nil {
		// The body goes out while progress lines come back.
		go func() {
			_, err := io.Copy(c, cio.body)
			if uc, ok := nc.(*net.UnixConn); ok && err == nil {
				err = uc.CloseWrite()
			}
			bodyErr <- err
		}()
	} else {
		bodyErr <- nil
	}
	dec := json.NewDecoder(io.LimitReader(c, maxResponseBytes))
	var resp controlResponse
	for {
		resp = controlResponse{}
		if err := dec.Decode(&resp); err != nil {
			if berr := <-bodyErr; berr != nil && !errors.Is(berr, syscall.EPIPE) {
				return fmt.Errorf("send to the running server: %w", berr)
			}
			if errors.Is(err, io.EOF) {
				// The server answers every request it accepts; it hangs up
				// only on another user, or when it is stopping.
				return fmt.Errorf("the running server closed the connection without answering (it serves only the user it runs as; its log may say more): %w", err)
			}
			return fmt.Errorf("read reply from the running server: %w", err)
		}
		if resp.Progress == nil {
			break
		}
		store.ReportProgress(ctx, resp.Progress.Done, resp.Progress.Total)
	}
	if !resp.OK {
		if resp.Error == "" {
			resp.Error = "the running server refused the request"
		}
		return &adminError{msg: resp.Error}
	}
	if berr := <-bodyErr; berr != nil {
		return fmt.Errorf("send to the running server: %w", berr)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return fmt.Errorf("decode reply from the running server: %w", err)
		}
	}
	if cio.stream != nil {
		return cio.stream(afterJSON(io.MultiReader(dec.Buffered(), c)))
	}
	return nil
}

func (r *remoteAdmin) AddRule(ctx context.Context, ri ruleInfo) (ruleInfo, error) {
	var out ruleInfo
	err := r.call(ctx, controlRequest{Op: opRuleAdd, Rule: &ri}, &out)
	return out, err
}

func (r *remoteAdmin) Rules(ctx context.Context) ([]ruleInfo, error) {
	var out []ruleInfo
	err := r.call(ctx, controlRequest{Op: opRules}, &out)
	return out, err
}

func (r *remoteAdmin) RemoveRule(ctx context.Context, id uint64, action string) (ruleInfo, error) {
	var out ruleInfo
	err := r.call(ctx, controlRequest{Op: opRuleRemove, ID: id, Action: action}, &out)
	return out, err
}

func (r *remoteAdmin) Train(ctx context.Context, req trainRequest, secret []byte) (trainResult, error) {
	var out trainResult
	err := r.call(ctx, controlRequest{Op: opTrain, Train: &req, Secret: bytes.Clone(secret)}, &out)
	return out, err
}

func (r *remoteAdmin) SearchTrace(ctx context.Context, q traceQuery) ([]trace.Record, error) {
	var out []trace.Record
	err := r.call(ctx, controlRequest{Op: opTraceSearch, Query: &q}, &out)
	return out, err
}

// afterJSON returns what follows a JSON value written by json.Encoder,
// without the newline the encoder ends it with. It reads nothing until
// it is read.
func afterJSON(r io.Reader) io.Reader {
	return &skipNewline{br: bufio.NewReader(r)}
}

type skipNewline struct {
	br      *bufio.Reader
	started bool
}

func (s *skipNewline) Read(p []byte) (int, error) {
	if !s.started {
		s.started = true
		if b, err := s.br.Peek(1); err == nil && b[0] == '\n' {
			s.br.Discard(1)
		}
	}
	return s.br.Read(p)
}

func (r *remoteAdmin) AddUser(ctx context.Context, address string, password []byte) (userInfo, error) {
	var u userInfo
	err := r.call(ctx, controlRequest{Op: opAddUser, Address: address, Secret: password}, &u)
	return u, err
}

func (r *remoteAdmin) Users(ctx context.Context) ([]userInfo, error) {
	var us []userInfo
	err := r.call(ctx, controlRequest{Op: opUsers}, &us)
	return us, err
}

func (r *remoteAdmin) ChangePassword(ctx context.Context, address string, current, next []byte) (passwdResult, error) {
	var res passwdResult
	err := r.call(ctx, controlRequest{Op: opPasswd, Address: address, Secret: current, NewSecret: next}, &res)
	return res, err
}

func (r *remoteAdmin) DeleteUser(ctx context.Context, address string) (deleteResult, error) {
	var rep deleteResult
	err := r.call(ctx, controlRequest{Op: opDelete, Address: address}, &rep)
	return rep, err
}

func (r *remoteAdmin) AddRecoveryCode(ctx context.Context, address string, current []byte) (newSecret, error) {
	var code newSecret
	err := r.call(ctx, controlRequest{Op: opRecoveryCode, Address: address, Secret: current}, &code)
	return code, err
}

func (r *remoteAdmin) AddAppPassword(ctx context.Context, address string, current []byte, label string) (newSecret, error) {
	var ap newSecret
	err := r.call(ctx, controlRequest{Op: opAppPassword, Address: address, Secret: current, Label: label}, &ap)
	return ap, err
}

func (r *remoteAdmin) Slots(ctx context.Context, address string) ([]slotInfo, error) {
	var slots []slotInfo
	err := r.call(ctx, controlRequest{Op: opSlots, Address: address}, &slots)
	return slots, err
}

func (r *remoteAdmin) RevokeSlot(ctx context.Context, address string, id uint32) (revokeResult, error) {
	var rev revokeResult
	err := r.call(ctx, controlRequest{Op: opRevoke, Address: address, Slot: id}, &rev)
	return rev, err
}

func (r *remoteAdmin) SetWKD(ctx context.Context, address string, publish bool) error {
	return r.call(ctx, controlRequest{Op: opSetWKD, Address: address, Publish: publish}, nil)
}

func (r *remoteAdmin) SetQuota(ctx context.Context, address string, setting int64) error {
	return r.call(ctx, controlRequest{Op: opSetQuota, Address: address, Quota: setting}, nil)
}

func (r *remoteAdmin) ExportKey(ctx context.Context, address string) (string, error) {
	var k string
	err := r.call(ctx, controlRequest{Op: opExportKey, Address: address}, &k)
	return k, err
}

func (r *remoteAdmin) ExportSecretKey(ctx context.Context, address string, password []byte) (string, error) {
	var k string
	err := r.call(ctx, controlRequest{Op: opExportSecret, Address: address, Secret: password}, &k)
	return k, err
}
