package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/audit"
	"github.com/sealmail/sealmail/server/retention"
	"github.com/sealmail/sealmail/store"
)

// Operations beyond the account ones of admin are registered here by
// name, once, and run the same way whether a server runs or not: over the
// control socket on the running server's backend, or in the CLI on a
// backend it builds over the store it opens. A command file registers
// its operations next to its commands:
//
//	func init() {
//		registerOp(&controlOp{name: "hold.add", local: true, run: opHoldAdd})
//		register(&command{name: "hold add", args: "ADDRESS", summary: "…", run: runHoldAdd})
//	}
//
//	func opHoldAdd(ctx context.Context, s *backend, req *opRequest) (any, error) {
//		var args holdArgs
//		if err := req.args(&args); err != nil {
//			return nil, err
//		}
//		… // s.st, s.accounts, s.cfg; errors for the operator as adminError
//	}
//
//	func runHoldAdd(ctx context.Context, e *env, args []string) error {
//		var res holdResult
//		return e.callOp(ctx, "hold.add", opCall{Address: args[0], Args: holdArgs{…}}, &res)
//	}
//
// Long jobs report through store.ReportProgress(ctx, done, total); the
// CLI shows it when its context carries a progress (progress.context).

// backend is what registered operations run with. In `serve` it is the
// running server's own; when no server runs, the CLI builds one over the
// store it opens (openBackend), and what only a running server has stays
// nil.
type backend struct {
	cfg      *Config          // immutable
	st       store.Store      // immutable
	accounts *account.Service // immutable
	audit    *audit.Service   // immutable; nil in some tests
	// ret is the retention service (retention_ops.go); nil in some
	// tests. Its Store is st with retention applied: what delivers mail
	// (import) goes through it, so that the mail is stamped.
	ret *retention.Service // immutable
	log *slog.Logger       // immutable
	// delivered tells the running protocols of messages committed
	// outside them (import), so that IMAP IDLE sessions see them. nil
	// without a server.
	delivered func([]store.Delivered)
	// status is the running server's state for `sealmail status`; nil
	// without a server.
	status *serverStatus
}

// mailStore is the store that mail is delivered through: with retention
// applied when there is a retention service.
func (b *backend) mailStore() store.Store {
	if b.ret != nil {
		return b.ret.Store()
	}
	return b.st
}

// controlOp is one registered operation.
type controlOp struct {
	name string
	// run performs the operation; its result goes to the caller as JSON,
	// unless it called req.Stream. An *adminError's text reaches the
	// operator; any other error is logged and reported generically.
	run func(ctx context.Context, s *backend, req *opRequest) (any, error)
	// local: the CLI runs it itself when no server runs. Operations on
	// the running server's state (status) set it false.
	local bool
	// body: the caller sends a body after the request (req.Body).
	body bool
	// long: the operation may run for long; instead of opTimeout, only
	// silence on the connection is bounded.
	long bool
}

// controlOps are the registered operations by name; read-only after init.
var controlOps = map[string]*controlOp{}

// registerOp adds an operation; names are unique and must not be those
// of admin's operations.
func registerOp(op *controlOp) {
	if op.name == "" || op.run == nil || controlOps[op.name] != nil || logSafeOp(op.name) != "(unknown)" {
		panic(fmt.Sprintf("sealmail: bad or duplicate control operation %q", op.name))
	}
	controlOps[op.name] = op
}

// opRequest is one call of a registered operation.
type opRequest struct {
	Address string
	Secret  []byte          // wiped after the operation
	Args    json.RawMessage // the operation's own arguments; may be empty
	// Body reads what the caller sent after the request (operations with
	// body set); it is empty for the others.
	Body io.Reader
	// stream sends a successful answer and returns the writer for raw
	// bytes that follow it.
	stream func(result any) (io.Writer, error)
}

// args decodes the request's arguments into v; bad arguments are the
// operator's (or a mismatched binary's) mistake.
func (r *opRequest) args(v any) error {
	if len(r.Args) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Args, v); err != nil {
		return adminErrorf(err, "bad arguments: %v", err)
	}
	return nil
}

// Stream sends result as the operation's successful answer and returns a
// writer for raw bytes that follow it (a backup, an export). After it the
// operation must return a nil result; an error it returns then can only
// cut the stream short, so streams carry their own end marker.
func (r *opRequest) Stream(result any) (io.Writer, error) { return r.stream(result) }

// emptyBody is the body of a request without one.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }

// opCall is what the CLI sends with a registered operation.
type opCall struct {
	Address string
	Secret  []byte // wiped after the call
	Args    any    // marshalled as the request's args
	// Body is sent after the request (operations with body set).
	Body io.Reader
	// Stream reads the raw bytes that follow a successful answer, which
	// has been decoded into the result first.
	Stream func(r io.Reader) error
}

// errNotRunning: an operation that needs the running server found none.
var errNotRunning = errors.New("no sealmail server is running on this data directory")

// callOp runs the registered operation name: on the running server, or
// here when none runs and the operation allows it (errNotRunning
// otherwise). The answer is decoded into result (may be nil). ctx may
// carry a store.Progress, which hears the operation's progress.
func (e *env) callOp(ctx context.Context, name string, call opCall, result any) error {
	defer wipe(call.Secret)
	op := controlOps[name]
	if op == nil {
		return fmt.Errorf("internal: no control operation %q", name)
	}
	if !op.local {
		// Find out without opening the store.
		c, err := e.config()
		if err != nil {
			return err
		}
		remote, err := dialControl(c.socketPath())
		if err != nil {
			return err
		}
		if remote == nil {
			return errNotRunning
		}
	}
	return e.withOpSession(func(s *opSession) error { return s.call(ctx, name, call, result) })
}

// opSession runs registered operations one after another: each over its
// own control connection when a server runs, or all on one backend
// opened here for the session (a job of many calls, such as an import,
// opens the store once).
type opSession struct {
	remote *remoteAdmin // nil: local
	local  *backend
}

// withOpSession runs f with an opSession and closes it.
func (e *env) withOpSession(f func(s *opSession) error) error {
	c, err := e.config()
	if err != nil {
		return err
	}
	remote, err := dialControl(c.socketPath())
	if err != nil {
		return err
	}
	if remote != nil {
		return f(&opSession{remote: remote})
	}
	return e.withBackend(func(b *backend) error { return f(&opSession{local: b}) })
}

// call runs the registered operation name; see env.callOp.
func (s *opSession) call(ctx context.Context, name string, call opCall, result any) error {
	defer wipe(call.Secret)
	op := controlOps[name]
	if op == nil {
		return fmt.Errorf("internal: no control operation %q", name)
	}
	args, err := json.Marshal(call.Args)
	if err != nil {
		return err
	}
	if call.Args == nil {
		args = nil
	}
	if op.body && call.Body == nil {
		call.Body = emptyBody{} // the server reads the body to its end
	}
	if s.remote != nil {
		req := controlRequest{Op: name, Address: call.Address, Secret: bytes.Clone(call.Secret), Args: args}
		return s.remote.do(ctx, req, callIO{body: call.Body, stream: call.Stream, long: op.long}, result)
	}
	if !op.local {
		return errNotRunning
	}
	return runLocalOp(ctx, op, s.local, &opRequest{Address: call.Address, Secret: call.Secret, Args: args}, call, result)
}

// runLocalOp runs op in this process. The answer goes through JSON as it
// would over the socket, so both paths decode the same; a stream goes
// through a pipe to call.Stream.
func runLocalOp(ctx context.Context, op *controlOp, s *backend, req *opRequest, call opCall, result any) error {
	req.Body = emptyBody{}
	if op.body && call.Body != nil {
		req.Body = call.Body
	}
	decode := func(v any) error {
		if result == nil {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, result)
	}
	var (
		pw         *io.PipeWriter
		streamDone chan error
	)
	req.stream = func(v any) (io.Writer, error) {
		if call.Stream == nil || pw != nil {
			return nil, errors.New("internal: unexpected stream")
		}
		if err := decode(v); err != nil {
			return nil, err
		}
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		streamDone = make(chan error, 1)
		go func() {
			err := call.Stream(pr)
			pr.CloseWithError(errors.New("stream reader stopped"))
			streamDone <- err
		}()
		return pw, nil
	}
	v, err := op.run(ctx, s, req)
	if pw != nil {
		pw.CloseWithError(err) // nil: EOF
		if serr := <-streamDone; err == nil {
			err = serr
		}
		return err
	}
	if err != nil {
		return err
	}
	return decode(v)
}

// openBackend builds a backend over the store in the data directory,
// for operations run by the CLI when no server runs. close must be
// called.
func (e *env) openBackend() (*backend, func() error, error) {
	c, err := e.config()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("data directory: %w", err)
	}
	log := slog.New(slog.DiscardHandler)
	st, err := openStore(c, log)
	if err != nil {
		return nil, nil, err
	}
	aud, err := audit.New(audit.Options{Store: st, Logger: log})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	// Accounts go through the retention service's store (an account's
	// deletion records account-closed) and its hold check.
	ret, err := newRetention(e.ctx, st, c, log, aud, false, nil)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	svc, err := newAccounts(ret.Store(), c, log, nil, aud, retentionGuard(ret))
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	s := &backend{cfg: c, st: st, accounts: svc, audit: aud, ret: ret, log: log}
	return s, func() error {
		svc.Close()
		return st.Close()
	}, nil
}

// withBackend runs f with a local backend and closes it, keeping f's
// error first.
func (e *env) withBackend(f func(s *backend) error) (err error) {
	s, closeFn, err := e.openBackend()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closeFn(); cerr != nil && err == nil {
			err = fmt.Errorf("close store: %w", cerr)
		}
	}()
	return f(s)
}
