package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sealmail/sealmail/store"
)

// exitNotRunning is `sealmail status`'s exit code when no server runs
// (LSB's "program is not running").
const exitNotRunning = 3

func init() {
	registerOp(&controlOp{name: "server.status", run: opStatus})
	register(&command{name: "status", summary: "show the running server: listeners, accounts, storage, sessions, queue, certificate",
		flags: jsonFlag, run: runStatus})
}

// serverStatus is what a running server knows of itself for `sealmail
// status`. serve fills it before it starts serving; the functions are
// the hooks subsystems fill when they exist (nil: not there).
type serverStatus struct {
	started   time.Time        // immutable
	version   buildInfo        // immutable
	listeners []listenerStatus // immutable; Connections filled per report
	// connections returns the open connections of the named listener;
	// nil or unknown name: not counted.
	connections func(name string) int
	// cert describes the certificate in use.
	cert func() certInfo

	mu sync.Mutex
	// queueLength returns the number of entries in the outbound queue (a
	// message for one destination domain). nil: there is no outbound
	// queue. serve sets it once the queue runs (setQueue).
	queueLength func(ctx context.Context) (int, error) // guarded by mu
	// lastSweep returns the retention sweeper's last sweep (nil: none
	// yet). nil: there is no sweeper. The sweeper sets it
	// (setLastSweep).
	lastSweep func() *sweepStatus // guarded by mu
}

// setQueue wires the outbound queue's length into the status.
func (s *serverStatus) setQueue(f func(ctx context.Context) (int, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queueLength = f
}

// setLastSweep wires the retention sweeper's last run into the status.
func (s *serverStatus) setLastSweep(f func() *sweepStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastSweep = f
}

// listenerStatus is one listener in the report.
type listenerStatus struct {
	Name        string `json:"name"`
	Addr        string `json:"addr"`
	Mode        string `json:"mode"`
	Connections *int   `json:"connections,omitempty"` // open now; nil: not counted
}

// statusReport is `sealmail status --json`.
type statusReport struct {
	Running   bool             `json:"running"`
	Version   string           `json:"version,omitempty"`
	Started   time.Time        `json:"started,omitzero"`
	DataDir   string           `json:"data_dir,omitempty"`
	Listeners []listenerStatus `json:"listeners,omitempty"`
	Accounts  int              `json:"accounts"`
	// Sessions are logged-in protocol sessions (IMAP; later POP3 and
	// submission), each holding an unlocked key.
	Sessions int           `json:"sessions"`
	Storage  storageStatus `json:"storage"`
	// QueueLength is the number of entries in the outbound queue (a
	// message for one destination domain); null: no queue.
	QueueLength *int     `json:"queue_length"`
	Certificate certInfo `json:"certificate"`
	// LastSweep is the retention sweeper's last sweep (not a dry run);
	// null: no sweeper or no sweep yet.
	LastSweep *sweepStatus `json:"last_sweep"`
}

// sweepStatus is a retention sweep in the status.
type sweepStatus struct {
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	DurationMS int64     `json:"duration_ms"`
	// Destroyed counts the messages destroyed, FromVault those of them
	// that were in the retention vault, Bytes their sealed size.
	Destroyed int   `json:"destroyed"`
	FromVault int   `json:"from_vault"`
	Bytes     int64 `json:"bytes"`
}

// storageStatus is what the store takes.
type storageStatus struct {
	// SealedBytes is the mail of all accounts, sealed, as quotas count it.
	SealedBytes int64 `json:"sealed_bytes"`
	// Files are the store's files by part, as the backend reports them
	// (badger: "lsm", "vlog"); nil if it does not.
	Files map[string]int64 `json:"files,omitempty"`
}

// report gathers the status now.
func (s *serverStatus) report(ctx context.Context, svc *backend) (statusReport, error) {
	r := statusReport{Running: true, Version: s.version.String(), Started: s.started, DataDir: svc.cfg.DataDir}
	for _, l := range s.listeners {
		if s.connections != nil {
			if n := s.connections(l.Name); n >= 0 {
				l.Connections = &n
			}
		}
		r.Listeners = append(r.Listeners, l)
	}
	accts, err := svc.st.PublicAccounts(ctx)
	if err != nil {
		return statusReport{}, err
	}
	r.Accounts = len(accts)
	for _, a := range accts {
		r.Storage.SealedBytes += a.UsedBytes
	}
	if sr, ok := svc.st.(store.SizeReporter); ok {
		r.Storage.Files = sr.Sizes()
	}
	r.Sessions = svc.accounts.SessionCount()
	if s.cert != nil {
		r.Certificate = s.cert()
	}
	s.mu.Lock()
	queue, sweep := s.queueLength, s.lastSweep
	s.mu.Unlock()
	if queue != nil {
		n, err := queue(ctx)
		if err != nil {
			return statusReport{}, fmt.Errorf("queue length: %w", err)
		}
		r.QueueLength = &n
	}
	if sweep != nil {
		r.LastSweep = sweep()
	}
	return r, nil
}

func opStatus(ctx context.Context, s *backend, _ *opRequest) (any, error) {
	if s.status == nil {
		return nil, adminErrorf(nil, "status is known only to a running server")
	}
	return s.status.report(ctx, s)
}

func runStatus(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	var r statusReport
	err := e.callOp(ctx, "server.status", opCall{}, &r)
	if errors.Is(err, errNotRunning) {
		c, _ := e.config()
		if e.flags.json {
			writeJSON(e.io.out, statusReport{Running: false, DataDir: c.DataDir})
		} else {
			fmt.Fprintf(e.io.out, "sealmail is not running on %s\n", c.DataDir)
		}
		return &exitCodeError{code: exitNotRunning}
	}
	if err != nil {
		return err
	}
	if e.flags.json {
		return writeJSON(e.io.out, r)
	}
	return writeStatus(e.io.out, r, time.Now())
}

// writeStatus prints the report for people.
func writeStatus(w io.Writer, r statusReport, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "sealmail\t%s, running since %s (%s)\n", r.Version, r.Started.UTC().Format(time.DateTime),
		now.Sub(r.Started).Round(time.Second))
	fmt.Fprintf(tw, "data\t%s\n", r.DataDir)
	for i, l := range r.Listeners {
		head := ""
		if i == 0 {
			head = "listeners"
		}
		conns := ""
		if l.Connections != nil {
			conns = fmt.Sprintf(", %d open", *l.Connections)
		}
		fmt.Fprintf(tw, "%s\t%-8s %s (%s%s)\n", head, l.Name, l.Addr, l.Mode, conns)
	}
	fmt.Fprintf(tw, "accounts\t%d\n", r.Accounts)
	fmt.Fprintf(tw, "sessions\t%d logged in\n", r.Sessions)
	storage := formatBytes(r.Storage.SealedBytes) + " of sealed mail"
	if len(r.Storage.Files) > 0 {
		var parts []string
		var total int64
		for _, k := range slices.Sorted(maps.Keys(r.Storage.Files)) {
			parts = append(parts, fmt.Sprintf("%s %s", k, formatBytes(r.Storage.Files[k])))
			total += r.Storage.Files[k]
		}
		storage += fmt.Sprintf("; store files %s (%s)", formatBytes(total), strings.Join(parts, ", "))
	}
	fmt.Fprintf(tw, "storage\t%s\n", storage)
	if r.QueueLength == nil {
		fmt.Fprintf(tw, "queue\tno outbound queue\n")
	} else {
		fmt.Fprintf(tw, "queue\t%d %s\n", *r.QueueLength, plural(*r.QueueLength, "entry", "entries"))
	}
	ci := r.Certificate
	switch {
	case ci.Source == "":
	case ci.NotAfter.IsZero():
		fmt.Fprintf(tw, "certificate\t%s, none served yet\n", ci.Source)
	default:
		fmt.Fprintf(tw, "certificate\t%s, expires %s (in %d days)\n", ci.Source, ci.NotAfter.UTC().Format(time.DateTime),
			int(ci.NotAfter.Sub(now).Hours()/24))
		if ci.Path != "" {
			fmt.Fprintf(tw, "\t%s\n", ci.Path)
		}
		fmt.Fprintf(tw, "\tSHA-256 %s\n", ci.Fingerprint)
	}
	if s := r.LastSweep; s == nil {
		fmt.Fprintf(tw, "last sweep\tnone\n")
	} else {
		fmt.Fprintf(tw, "last sweep\t%s (%s ago), destroyed %d %s (%s sealed; %d from the vault) in %s\n",
			s.Finished.UTC().Format(time.DateTime), now.Sub(s.Finished).Round(time.Second), s.Destroyed,
			plural(s.Destroyed, "message", "messages"), formatBytes(s.Bytes), s.FromVault,
			(time.Duration(s.DurationMS) * time.Millisecond).String())
	}
	return tw.Flush()
}

// newServerStatus describes the running server: its listeners (with
// their open connections from the guards' limiters) and its certificate.
func newServerStatus(svcs []*service, srv *servers, cert func() certInfo) *serverStatus {
	st := &serverStatus{started: time.Now(), version: readBuildInfo(), cert: cert}
	for _, s := range svcs {
		if s.addr != nil {
			st.listeners = append(st.listeners, listenerStatus{Name: s.name, Addr: s.addr.String(), Mode: s.mode})
		}
	}
	st.connections = func(name string) int {
		if l := srv.limiters[name]; l != nil {
			return l.Open()
		}
		return -1
	}
	return st
}
