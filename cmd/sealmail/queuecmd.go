package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sealmail/sealmail/server/audit"
	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/server/smtp/trace"
)

// `sealmail queue list|show|retry|drop`: on the running server's queue
// over the control socket, or, with the server stopped, on a queue built
// here over the store (which then delivers nothing).

// Control operations of the queue.
const (
	opQueueList  = "queue.list"
	opQueueShow  = "queue.show"
	opQueueRetry = "queue.retry"
	opQueueDrop  = "queue.drop"
)

// queueAdmin is what the queue commands do.
type queueAdmin interface {
	List(ctx context.Context, after string, limit int) ([]queue.EntryInfo, error)
	Show(ctx context.Context, id string) (queue.Detail, error)
	Retry(ctx context.Context, id string) (int, error)
	Drop(ctx context.Context, id string) (int, error)
}

var _ queueAdmin = (*queue.Queue)(nil)

// queueHolder gives the control server the queue once serve has built
// it.
type queueHolder struct {
	audit *audit.Service // records the operators' acts on the queue; set before set
	mu    sync.Mutex
	q     queueAdmin // guarded by mu; nil until set
}

func (h *queueHolder) set(q queueAdmin) {
	h.mu.Lock()
	h.q = auditedQueue{q: q, audit: h.audit}
	h.mu.Unlock()
}

func (h *queueHolder) get() queueAdmin {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.q
}

// dispatchQueue runs a queue operation for the control server.
func (s *controlServer) dispatchQueue(ctx context.Context, r *controlRequest) (any, error) {
	q := s.queue.get()
	if q == nil {
		return nil, adminErrorf(nil, "the outbound queue is not running")
	}
	var (
		res any
		err error
	)
	switch r.Op {
	case opQueueList:
		res, err = q.List(ctx, r.QueueID, 0)
	case opQueueShow:
		res, err = q.Show(ctx, r.QueueID)
	case opQueueRetry:
		res, err = q.Retry(ctx, r.QueueID)
	case opQueueDrop:
		res, err = q.Drop(ctx, r.QueueID)
	}
	return res, queueErr(err, r.QueueID)
}

// queueErr makes the queue's operator errors adminErrors.
func queueErr(err error, id string) error {
	if errors.Is(err, queue.ErrNotFound) {
		return adminErrorf(err, "no queue entry or message %q", id)
	}
	return err
}

// remoteQueue asks the running server.
type remoteQueue struct{ r *remoteAdmin }

func (q remoteQueue) List(ctx context.Context, after string, limit int) ([]queue.EntryInfo, error) {
	var out []queue.EntryInfo
	err := q.r.call(ctx, controlRequest{Op: opQueueList, QueueID: after}, &out)
	return out, err
}

func (q remoteQueue) Show(ctx context.Context, id string) (queue.Detail, error) {
	var d queue.Detail
	err := q.r.call(ctx, controlRequest{Op: opQueueShow, QueueID: id}, &d)
	return d, err
}

func (q remoteQueue) Retry(ctx context.Context, id string) (int, error) {
	var n int
	err := q.r.call(ctx, controlRequest{Op: opQueueRetry, QueueID: id}, &n)
	return n, err
}

func (q remoteQueue) Drop(ctx context.Context, id string) (int, error) {
	var n int
	err := q.r.call(ctx, controlRequest{Op: opQueueDrop, QueueID: id}, &n)
	return n, err
}

// localQueue maps the queue's errors as the control server does.
type localQueue struct{ q *queue.Queue }

func (l localQueue) List(ctx context.Context, after string, limit int) ([]queue.EntryInfo, error) {
	return l.q.List(ctx, after, limit)
}

func (l localQueue) Show(ctx context.Context, id string) (queue.Detail, error) {
	d, err := l.q.Show(ctx, id)
	return d, queueErr(err, id)
}

func (l localQueue) Retry(ctx context.Context, id string) (int, error) {
	n, err := l.q.Retry(ctx, id)
	return n, queueErr(err, id)
}

func (l localQueue) Drop(ctx context.Context, id string) (int, error) {
	n, err := l.q.Drop(ctx, id)
	return n, queueErr(err, id)
}

// auditedQueue records in the audit log what an operator reads of the
// queue (who mails whom: as a trace search) and destroys: the start of a
// listing, a show, a drop. What cannot be recorded is not shown; a drop
// that cannot be recorded is done and says so.
type auditedQueue struct {
	q     queueAdmin
	audit *audit.Service
}

func (a auditedQueue) List(ctx context.Context, after string, limit int) ([]queue.EntryInfo, error) {
	es, err := a.q.List(ctx, after, limit)
	if err != nil || after != "" {
		return es, err // a listing's later pages are part of the act recorded at its start
	}
	if err := a.record(ctx, "queue.list", "", map[string]string{"entries": strconv.Itoa(len(es))}); err != nil {
		return nil, fmt.Errorf("the listing could not be audited, so it is withheld: %w", err)
	}
	return es, nil
}

func (a auditedQueue) Show(ctx context.Context, id string) (queue.Detail, error) {
	d, err := a.q.Show(ctx, id)
	if err != nil {
		return d, err
	}
	err = a.record(ctx, "queue.show", id, map[string]string{
		"entries": strconv.Itoa(len(d.Entries)), "records": strconv.Itoa(len(d.Trace))})
	if err != nil {
		return queue.Detail{}, fmt.Errorf("the message could not be audited, so it is withheld: %w", err)
	}
	return d, nil
}

func (a auditedQueue) Retry(ctx context.Context, id string) (int, error) { return a.q.Retry(ctx, id) }

func (a auditedQueue) Drop(ctx context.Context, id string) (int, error) {
	n, err := a.q.Drop(ctx, id)
	if err != nil {
		return n, err
	}
	if err := a.record(ctx, "queue.drop", id, map[string]string{"entries": strconv.Itoa(n)}); err != nil {
		return n, fmt.Errorf("%d entr%s dropped but not audited: %w", n, plural(n, "y", "ies"), err)
	}
	return n, nil
}

// record appends one act on the queue; id, when set, is the entry or
// message acted on (a transaction id, no address).
func (a auditedQueue) record(ctx context.Context, action, id string, d map[string]string) error {
	if id != "" {
		d["id"] = id
	}
	return a.audit.Record(ctx, audit.Event{Action: action, Scope: "org", Detail: d})
}

// withQueue runs f on the running server's queue, or on one over the
// store opened here.
func (e *env) withQueue(f func(q queueAdmin) error) error {
	c, err := e.config()
	if err != nil {
		return err
	}
	remote, err := dialControl(c.socketPath())
	if err != nil {
		return err
	}
	if remote != nil {
		return f(remoteQueue{remote})
	}
	if _, err := os.Stat(c.DataDir); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	log := slog.New(slog.DiscardHandler)
	st, err := openStore(c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	key, err := os.ReadFile(c.serverKeyPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
		// No server key yet: nothing was ever queued under one. A
		// throwaway key lists an empty queue, and shows anything else as
		// unreadable.
		key = make([]byte, serverKeySize)
		rand.Read(key)
	case err != nil:
		return fmt.Errorf("server key: %w", err)
	}
	defer clear(key)
	opt, err := queueOptions(c, st, key, nil, log)
	if err != nil {
		return err
	}
	q, err := queue.New(opt)
	if err != nil {
		return err
	}
	defer q.Shutdown(context.Background())
	aud, err := audit.New(audit.Options{Store: st, Logger: log})
	if err != nil {
		return err
	}
	return f(auditedQueue{q: localQueue{q}, audit: aud})
}

func runQueueList(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	return e.withQueue(func(q queueAdmin) error {
		var all []queue.EntryInfo
		after := ""
		for {
			page, err := q.List(ctx, after, 1000)
			if err != nil {
				return err
			}
			all = append(all, page...)
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].ID
		}
		if all == nil {
			all = []queue.EntryInfo{}
		}
		if e.flags.json {
			return writeJSON(e.io.out, all)
		}
		if len(all) == 0 {
			fmt.Fprintln(e.io.out, "the outbound queue is empty")
			return nil
		}
		tw := tabwriter.NewWriter(e.io.out, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ENTRY\tFROM\tTO\tSIZE\tATTEMPTS\tNEXT\tLAST ERROR")
		for _, en := range all {
			if en.Error != "" {
				fmt.Fprintf(tw, "%s\t?\t?\t?\t%d\t%s\tunreadable: %s\n", en.ID, en.Attempts, when(en.Next), en.Error)
				continue
			}
			next := when(en.Next)
			if en.Running {
				next = "now (in progress)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", en.ID, orNull(en.From), rcptSummary(en), en.Size, en.Attempts,
				next, clipLine(en.Last, 70))
		}
		tw.Flush()
		fmt.Fprintf(e.io.out, "%d entr%s\n", len(all), plural(len(all), "y", "ies"))
		return nil
	})
}

func runQueueShow(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("want exactly one ID")
	}
	return e.withQueue(func(q queueAdmin) error {
		d, err := q.Show(ctx, args[0])
		if err != nil {
			return err
		}
		if d.Entries == nil {
			d.Entries = []queue.EntryInfo{}
		}
		if d.Trace == nil {
			d.Trace = []trace.Record{}
		}
		if e.flags.json {
			return writeJSON(e.io.out, d)
		}
		w := e.io.out
		if len(d.Entries) == 0 {
			fmt.Fprintln(w, "not queued (any more); its trace:")
		}
		for _, en := range d.Entries {
			fmt.Fprintf(w, "entry %s\n", en.ID)
			if en.Error != "" {
				fmt.Fprintf(w, "  unreadable: %s\n", en.Error)
				continue
			}
			fmt.Fprintf(w, "  from %s (account %s), %d bytes, queued %s\n", orNull(en.From), orNone(en.Account), en.Size, when(en.Created))
			fmt.Fprintf(w, "  to %s\n", strings.Join(en.Rcpts, ", "))
			fmt.Fprintf(w, "  %d attempt(s); next %s\n", en.Attempts, when(en.Next))
			if en.Last != "" {
				fmt.Fprintf(w, "  last error: %s\n", en.Last)
			}
		}
		writeQueueTrace(w, d.Trace)
		return nil
	})
}

func runQueueRetry(ctx context.Context, e *env, args []string) error {
	id := ""
	switch {
	case e.flags.all && len(args) == 0:
	case !e.flags.all && len(args) == 1:
		id = args[0]
	default:
		return usagef("want one ID, or --all")
	}
	return e.withQueue(func(q queueAdmin) error {
		n, err := q.Retry(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.io.out, "%d entr%s due now\n", n, plural(n, "y", "ies"))
		return nil
	})
}

func runQueueDrop(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("want exactly one ID")
	}
	return e.withQueue(func(q queueAdmin) error {
		n, err := q.Drop(ctx, args[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(e.io.out, "%d entr%s dropped\n", n, plural(n, "y", "ies"))
		return nil
	})
}

// writeQueueTrace prints outbound trace records, one step a line.
func writeQueueTrace(w io.Writer, recs []trace.Record) {
	if len(recs) == 0 {
		fmt.Fprintln(w, "no trace")
		return
	}
	fmt.Fprintln(w, "trace:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, r := range recs {
		if r.Out == nil {
			continue
		}
		what, detail := outboundStep(r.Out)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Time.Local().Format("2006-01-02 15:04:05"), r.Out.Event, what, detail)
	}
	tw.Flush()
}

// outboundStep describes one outbound trace record for people: what it
// concerns (entry, recipients, the server tried, TLS and policy, …) and
// the remote server's reply or the local error, on one line.
func outboundStep(o *trace.Outbound) (what, detail string) {
	var parts []string
	add := func(label, v string) {
		if v != "" {
			parts = append(parts, label+v)
		}
	}
	add("entry ", o.Entry)
	if len(o.Rcpts) > 0 {
		add("to ", strings.Join(o.Rcpts, ","))
	}
	if o.Host != "" {
		host := o.Host
		if o.IP != "" && o.IP != o.Host {
			host += " [" + o.IP + "]"
		}
		if o.Port != 0 && o.Port != 25 {
			host += fmt.Sprintf(":%d", o.Port)
		}
		add("via ", host)
	}
	if o.Event == trace.EventAttempt {
		tls := o.TLS
		if tls == "" {
			tls = "no TLS"
		}
		if o.Verified {
			tls += " verified"
		}
		add("", tls)
		add("policy ", o.Policy)
		add("at ", o.Stage)
	}
	add("from ", o.From)
	add("account ", o.Account)
	if o.Size > 0 {
		add("", fmt.Sprintf("%d bytes", o.Size))
	}
	add("notice ", o.DSN)
	if !o.Next.IsZero() {
		add("next ", when(o.Next))
	}
	detail = o.Reply
	if detail == "" {
		detail = o.Error
	}
	return strings.Join(parts, " "), strings.ReplaceAll(detail, "\n", " / ")
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func orNull(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func rcptSummary(en queue.EntryInfo) string {
	if len(en.Rcpts) == 1 {
		return en.Rcpts[0]
	}
	return fmt.Sprintf("%s (%d)", en.Domain, len(en.Rcpts))
}

// clipLine puts s on one line and cuts it to n bytes, marking the cut.
func clipLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " / ")
	if len(s) > n {
		return clipText(s, n) + "…"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
