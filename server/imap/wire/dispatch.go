package wire

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// result is how a handler ends its command: the tagged status response,
// with an optional response code (and its arguments) and text.
type result struct {
	typ  imap.StatusResponseType
	code string
	text string
	// afterPoll: code holds only if the Poll after the command
	// succeeds (it is dropped otherwise).
	afterPoll bool
}

func ok(text string) result { return result{typ: imap.StatusResponseTypeOK, text: text} }

func okCode(code, text string) result {
	return result{typ: imap.StatusResponseTypeOK, code: code, text: text}
}

// readAndRun reads one command (its tag and name, then, if the state
// allows it, its arguments) and runs it. Both happen off the connection's
// goroutine (offStack), except IDLE's run, whose wait for the client is
// then the connection's one goroutine.
func (c *Conn) readAndRun(st connState) error {
	var idle *Command
	var idleParser *parser
	err := offStack(func() error {
		cmd, p, err := c.readOne(st)
		if err != nil || cmd == nil {
			return err
		}
		if cmd.Name == "IDLE" {
			idle, idleParser = cmd, p
			return nil
		}
		return c.run(cmd, p)
	})
	if err != nil || idle == nil {
		return err
	}
	return c.run(idle, idleParser)
}

// readOne reads one command. It returns a nil Command when there was none
// to run: an empty line, or a command refused (and answered) already.
func (c *Conn) readOne(st connState) (*Command, *parser, error) {
	r := &c.r
	// An empty line is not a command; clients send them after literals.
	if b, _ := r.peek(); b == '\n' {
		_, err := r.br.Discard(1)
		return nil, nil, err
	} else if b == '\r' {
		if two := r.peek2(); len(two) == 2 && two[1] == '\n' {
			_, err := r.br.Discard(2)
			return nil, nil, err
		}
	}
	p := &parser{reader: r, caps: c.caps, utf8: c.enc.utf8, qresync: c.Enabled(imap.CapQResync)}
	cmd, err := p.readCommand(st)
	if err != nil {
		tag := "*"
		if cmd != nil {
			tag = cmd.Tag
		}
		return nil, nil, c.refuse(tag, err)
	}
	return cmd, p, nil
}

// readCommand reads a command's tag and name and, if the state st allows
// the command, its arguments (APPEND: up to its mailbox). On error the
// returned Command, if not nil, has the tag to answer with.
func (p *parser) readCommand(st connState) (*Command, error) {
	r := p.reader
	tag, err := r.readTag()
	if err != nil {
		return nil, err
	}
	cmd := &Command{Tag: tag}
	if err := r.sp(); err != nil {
		return cmd, bad("Missing command")
	}
	if cmd.Name, err = r.keyword(); err != nil {
		return cmd, bad("Missing command")
	}
	if cmd.Name == "UID" {
		if err := r.sp(); err != nil {
			return cmd, err
		}
		if cmd.Name, err = r.keyword(); err != nil {
			return cmd, err
		}
		cmd.UID = true
	}
	spec := specFor(cmd.Name, cmd.UID, p.caps)
	if spec == nil {
		return cmd, bad("Unknown command")
	}
	// Refuse by state before reading any argument: nothing a client
	// sends for a command it may not use is buffered or parsed.
	if spec.states&st == 0 {
		return cmd, stateError(st, spec.states)
	}
	if spec.parse != nil {
		err = spec.parse(p, cmd)
	} else {
		err = r.crlf()
	}
	return cmd, err
}

// stateError explains why a command is not valid in state st.
func stateError(st, valid connState) *cmdError {
	switch {
	case st == stateNotAuth:
		return bad("Log in first")
	case valid == stateNotAuth:
		return bad("Already authenticated")
	case st == stateAuth && valid == stateSelected:
		return bad("No mailbox selected")
	}
	return bad("Command not allowed in this state")
}

// refuse ends a command that failed before it ran: it reads the rest of
// the command (skipCommand) and answers with err's tagged response. Errors
// that are not a *cmdError (I/O, byeError) end the connection.
func (c *Conn) refuse(tag string, err error) error {
	var ce *cmdError
	if !errors.As(err, &ce) {
		return err
	}
	if err := c.r.skipCommand(); err != nil {
		return err
	}
	c.writeTagged(tag, ce.resp)
	return c.flush()
}

// writeTagged writes a tagged status response from an error response.
func (c *Conn) writeTagged(tag string, e *imap.Error) {
	c.writeStatus(tag, result{typ: e.Type, code: string(e.Code), text: e.Text})
}

// writeStatus writes "tag TYPE [code] text".
func (c *Conn) writeStatus(tag string, res result) {
	e := &c.enc
	e.raw(tag)
	e.sp()
	e.raw(string(res.typ))
	e.sp()
	if res.code != "" {
		e.byte('[')
		e.raw(res.code)
		e.raw("] ")
	}
	e.raw(safeText(res.text))
	e.crlf()
}

// watchable reports whether a command is watched for the client going
// away while it runs: those whose work is unbounded by what they write
// (LOGIN's unlock, SEARCH, SORT and THREAD over a whole mailbox) and
// FETCH, which may decrypt and parse a whole mailbox before its first
// write (summaries of new mail). Others end soon, and watching costs
// every command ~20 µs of latency on an idle machine (a pending runtime
// timer changes how the scheduler parks), measured with
// BenchmarkRoundTrip. None of these reads the client while it runs, which
// the watcher needs.
func watchable(cmd *Command) bool {
	switch cmd.Name {
	case "LOGIN", "SEARCH", "SORT", "THREAD", "FETCH":
		return true
	}
	return false
}

// run executes a parsed command and writes its tagged response.
func (c *Conn) run(cmd *Command, p *parser) error {
	start := time.Now()
	ctx := c.ctx
	stopWatch := func() {}
	c.mu.Lock()
	compress := c.compress
	c.mu.Unlock()
	// (The decompressor's errors are sticky: no watching under COMPRESS,
	// where waking a read would break the stream.)
	if watchable(cmd) && !compress {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(c.ctx)
		defer cancel()
		stopWatch = c.watchDisconnect(cancel)
	}
	c.cmdCtx = ctx
	defer func() { c.cmdCtx = c.ctx }()
	h := handlers[cmd.Name]
	res, err := h(c, cmd, p)
	stopWatch()
	if errors.Is(err, errNoResponse) {
		return c.flush()
	}
	if err != nil {
		var ce *cmdError
		var be *byeError
		var cerr *connError
		switch {
		case errors.As(err, &cerr):
			return cerr.err
		case errors.As(err, &ce):
			// A command that failed while its arguments were still being
			// read (APPEND): read the rest of it first.
			if err := c.r.skipCommand(); err != nil {
				return err
			}
			res = result{typ: ce.resp.Type, code: string(ce.resp.Code), text: ce.resp.Text}
		case errors.As(err, &be), errors.Is(err, errSessionEnded), c.enc.err != nil:
			return err
		default:
			// An error of the Session.
			resp, internal := responseFor(err)
			if internal {
				c.log.Error(strings.ToLower(cmd.Name), "err", err)
			}
			if resp.Type == imap.StatusResponseTypeBye {
				c.writeBye(imap.ResponseCode(resp.Code), resp.Text)
				return errSessionEnded
			}
			res = result{typ: resp.Type, code: string(resp.Code), text: resp.Text}
			if !c.r.ended {
				if err := c.r.skipCommand(); err != nil {
					return err
				}
			}
		}
	}
	if err := c.uw.end(); err != nil {
		return err
	}
	c.log.Debug("command", "command", commandName(cmd), "status", string(res.typ), "duration", time.Since(start))
	if m := c.srv.opt.Metrics; m != nil {
		m.Command(commandName(cmd), string(res.typ), time.Since(start))
	}
	if st := c.getState(); (st == stateAuth || st == stateSelected) && pollsAfter(cmd) {
		at := PollAfterCommand
		if !cmd.UID && (cmd.Name == "FETCH" || cmd.Name == "STORE" || cmd.Name == "SEARCH" || cmd.Name == "SORT" || cmd.Name == "THREAD") {
			at = PollNoExpunge
		}
		perr := c.sess.Poll(ctx, &c.uw, at)
		if err := c.uw.end(); err != nil {
			return err
		}
		if err := c.pollFailed(perr); err != nil {
			return err
		}
		if perr != nil && res.afterPoll {
			res.code = ""
		}
	} else if res.afterPoll {
		res.code = ""
	}
	c.writeStatus(cmd.Tag, res)
	if c.pipelined() {
		return nil // flushed with the next command's responses
	}
	return c.flush()
}

// pipelined reports whether the read buffer holds the whole first line of
// another command already: the client sent it without waiting, so the
// responses so far may wait for that command's and go out with them, in
// one write (one TLS record) instead of one per command. A line that
// announces a synchronising literal flushes them with its continuation
// request; the write buffer flushes itself when it fills. Not under
// COMPRESS, whose decompressor reads ahead.
func (c *Conn) pipelined() bool {
	br := c.r.br
	if br == nil || c.deflate != nil {
		return false
	}
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

func commandName(cmd *Command) string {
	if cmd.UID {
		return "UID " + cmd.Name
	}
	return cmd.Name
}

// pollsAfter reports whether unilateral updates follow a command (once
// authenticated; never after the commands that change the state).
func pollsAfter(cmd *Command) bool {
	switch cmd.Name {
	case "CAPABILITY", "LOGIN", "AUTHENTICATE", "STARTTLS", "LOGOUT", "UNAUTHENTICATE",
		"CLOSE", "UNSELECT", "SELECT", "EXAMINE", "COMPRESS", "ID", "ENABLE", "IDLE":
		return false
	}
	return true
}

// handler runs one command; its result is the tagged response. An error
// that is a *cmdError or an error of the Session becomes the tagged
// response; a *byeError or I/O error ends the connection.
type handler func(c *Conn, cmd *Command, p *parser) (result, error)

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"CAPABILITY":     (*Conn).cmdCapability,
		"NOOP":           (*Conn).cmdNoop,
		"CHECK":          (*Conn).cmdNoop,
		"LOGOUT":         (*Conn).cmdLogout,
		"ID":             (*Conn).cmdID,
		"STARTTLS":       (*Conn).cmdStartTLS,
		"LOGIN":          (*Conn).cmdLogin,
		"AUTHENTICATE":   (*Conn).cmdAuthenticate,
		"ENABLE":         (*Conn).cmdEnable,
		"SELECT":         (*Conn).cmdSelect,
		"EXAMINE":        (*Conn).cmdSelect,
		"CREATE":         (*Conn).cmdCreate,
		"DELETE":         (*Conn).cmdDelete,
		"RENAME":         (*Conn).cmdRename,
		"SUBSCRIBE":      (*Conn).cmdSubscribe,
		"UNSUBSCRIBE":    (*Conn).cmdSubscribe,
		"LIST":           (*Conn).cmdList,
		"LSUB":           (*Conn).cmdList,
		"NAMESPACE":      (*Conn).cmdNamespace,
		"STATUS":         (*Conn).cmdStatus,
		"APPEND":         (*Conn).cmdAppend,
		"IDLE":           (*Conn).cmdIdle,
		"UNAUTHENTICATE": (*Conn).cmdUnauthenticate,
		"GETQUOTA":       (*Conn).cmdGetQuota,
		"GETQUOTAROOT":   (*Conn).cmdGetQuotaRoot,
		"SETQUOTA":       (*Conn).cmdSetQuota,
		"NOTIFY":         (*Conn).cmdNotify,
		"COMPRESS":       (*Conn).cmdCompress,
		"CANCELUPDATE":   (*Conn).cmdCancelUpdate,
		"CLOSE":          (*Conn).cmdClose,
		"UNSELECT":       (*Conn).cmdClose,
		"EXPUNGE":        (*Conn).cmdExpunge,
		"SEARCH":         (*Conn).cmdSearch,
		"FETCH":          (*Conn).cmdFetch,
		"STORE":          (*Conn).cmdStore,
		"COPY":           (*Conn).cmdCopy,
		"MOVE":           (*Conn).cmdMove,
		"SORT":           (*Conn).cmdSort,
		"THREAD":         (*Conn).cmdThread,
	}
	for name := range commands {
		if handlers[name] == nil {
			panic("imap wire: no handler for " + name)
		}
	}
}
