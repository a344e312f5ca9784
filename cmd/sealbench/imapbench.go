package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// imapBenchConfig is what one imap run measures.
type imapBenchConfig struct {
	login    imapLogin
	mailbox  string
	word     string        // "": no SEARCH TEXT
	sessions int           // idle sessions to open; 0: none
	mode     string        // what each idle session does: sessionModes
	par      int           // logins in parallel while opening sessions
	pid      int           // server process for VmRSS; 0: not measured
	settle   time.Duration // wait before each VmRSS reading
	hold     time.Duration // keep the idle sessions open after measuring
	holdLog  io.Writer     // told when the hold starts
}

// imapBenchResult is what one imap run measured.
type imapBenchResult struct {
	connect, login, sel   time.Duration
	messages              uint32
	envFirst, envSecond   time.Duration
	envFirstN, envSecondN int
	body                  time.Duration
	bodyN                 int
	bodyBytes             int64
	search                time.Duration
	searchHits            int
	sessions              int // idle sessions opened
	sessionsTime          time.Duration
	rssBefore, rssAfter   int64 // bytes; 0 if not measured
}

func imapBenchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sealbench imap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg imapBenchConfig
	cfg.login.register(fs)
	cfg.holdLog = stderr
	fs.StringVar(&cfg.mailbox, "mailbox", "INBOX", "mailbox to measure")
	fs.StringVar(&cfg.word, "word", "", "run UID SEARCH TEXT for this `word` (as given to ingest -word)")
	fs.IntVar(&cfg.sessions, "sessions", 0, "then open `K` idle logged-in sessions")
	fs.StringVar(&cfg.mode, "session-mode", modeLogin, "what each idle session does after LOGIN: "+
		"login (nothing), select (SELECT INBOX), idle (SELECT INBOX, IDLE) or notify (SELECT INBOX, NOTIFY SET)")
	fs.IntVar(&cfg.par, "session-par", 4, "logins in parallel while opening -sessions, and warm-up sessions opened before measuring")
	fs.IntVar(&cfg.pid, "pid", 0, "server process `id`: report its resident memory growth per idle session")
	fs.DurationVar(&cfg.hold, "hold", 0, "with -sessions: keep the idle sessions open this long after measuring (saying so on stderr), for a look at the server")
	fs.DurationVar(&cfg.settle, "settle", 10*time.Second, "with -pid: wait this long before each memory reading, for the server's garbage collector to return freed memory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	err := cfg.login.check()
	if err == nil && (cfg.sessions < 0 || cfg.par <= 0 || cfg.pid < 0 || cfg.settle < 0 || cfg.hold < 0) {
		err = errors.New("-sessions, -pid, -settle and -hold must not be negative, -session-par must be positive")
	}
	if err == nil && !slices.Contains(sessionModes, cfg.mode) {
		err = fmt.Errorf("-session-mode %q: want one of %s", cfg.mode, strings.Join(sessionModes, ", "))
	}
	if err == nil && cfg.pid > 0 && cfg.sessions == 0 {
		err = errors.New("-pid needs -sessions")
	}
	if err != nil {
		fmt.Fprintf(stderr, "sealbench imap: %v\n", err)
		return errUsage
	}
	res, err := runIMAPBench(ctx, cfg)
	if err != nil {
		return err
	}
	reportIMAP(stdout, cfg, res)
	return nil
}

// runIMAPBench runs the measurements in order on one session, then opens
// the idle sessions.
func runIMAPBench(ctx context.Context, cfg imapBenchConfig) (imapBenchResult, error) {
	var res imapBenchResult
	t0 := time.Now()
	c, err := cfg.login.dial()
	if err != nil {
		return res, fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	res.connect = time.Since(t0)

	t0 = time.Now()
	if err := c.Login(cfg.login.user, cfg.login.password).Wait(); err != nil {
		return res, fmt.Errorf("login: %w", err)
	}
	res.login = time.Since(t0)

	t0 = time.Now()
	sel, err := c.Select(cfg.mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return res, fmt.Errorf("select %s: %w", cfg.mailbox, err)
	}
	res.sel = time.Since(t0)
	res.messages = sel.NumMessages

	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}} // 1:*
	envelopes := &imap.FetchOptions{Flags: true, Envelope: true, RFC822Size: true}
	if res.envFirst, res.envFirstN, _, err = timeFetch(c, all, envelopes); err != nil {
		return res, fmt.Errorf("first envelope fetch: %w", err)
	}
	if res.envSecond, res.envSecondN, _, err = timeFetch(c, all, envelopes); err != nil {
		return res, fmt.Errorf("second envelope fetch: %w", err)
	}
	bodies := &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	if res.body, res.bodyN, res.bodyBytes, err = timeFetch(c, all, bodies); err != nil {
		return res, fmt.Errorf("body fetch: %w", err)
	}
	if cfg.word != "" {
		t0 = time.Now()
		data, err := c.UIDSearch(&imap.SearchCriteria{Text: []string{cfg.word}}, nil).Wait()
		if err != nil {
			return res, fmt.Errorf("search: %w", err)
		}
		res.search = time.Since(t0)
		res.searchHits = len(data.AllUIDs())
	}
	if cfg.sessions > 0 {
		if err := idleSessions(ctx, cfg, &res); err != nil {
			return res, err
		}
	}
	if err := c.Logout().Wait(); err != nil && ctx.Err() == nil {
		return res, fmt.Errorf("logout: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("interrupted: %w", err)
	}
	return res, nil
}

// timeFetch runs one UID FETCH, streaming: it counts the messages and the
// bytes of body section literals, and keeps nothing.
func timeFetch(c *imapclient.Client, set imap.UIDSet, opts *imap.FetchOptions) (time.Duration, int, int64, error) {
	t0 := time.Now()
	cmd := c.Fetch(set, opts)
	var n int
	var size int64
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		n++
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
				k, err := io.Copy(io.Discard, b.Literal)
				size += k
				if err != nil {
					cmd.Close()
					return 0, 0, 0, err
				}
			}
		}
	}
	if err := cmd.Close(); err != nil {
		return 0, 0, 0, err
	}
	return time.Since(t0), n, size, nil
}

// idleSessions opens cfg.par warm-up sessions, then cfg.sessions measured
// ones, reading the server's resident memory between the two and at the
// end, and logs them all out. The warm-up takes the memory that concurrent
// password unlocks need (argon2id's buffers, which a Go server's heap
// keeps), so that the growth after it is what idle sessions hold.
func idleSessions(ctx context.Context, cfg imapBenchConfig, res *imapBenchResult) error {
	warm := make([]*idleConn, cfg.par)
	measured := make([]*idleConn, cfg.sessions)
	defer func() {
		var wg sync.WaitGroup
		for i, c := range slices.Concat(warm, measured) {
			if c != nil {
				if i%cfg.par == 0 {
					wg.Wait() // at most cfg.par at a time
				}
				wg.Go(func() { c.close(cfg.mode) })
			}
		}
		wg.Wait()
	}()
	if err := openSessions(ctx, cfg, warm); err != nil {
		return err
	}
	var err error
	if cfg.pid > 0 {
		if res.rssBefore, err = settledRSS(ctx, cfg); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := openSessions(ctx, cfg, measured); err != nil {
		return err
	}
	res.sessions = cfg.sessions
	res.sessionsTime = time.Since(t0)
	if cfg.pid > 0 {
		if res.rssAfter, err = settledRSS(ctx, cfg); err != nil {
			return err
		}
	}
	if cfg.hold > 0 {
		fmt.Fprintf(cfg.holdLog, "sealbench imap: holding %d idle sessions for %s\n", len(warm)+len(measured), cfg.hold)
		t := time.NewTimer(cfg.hold)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// settledRSS waits cfg.settle, then reads the server's VmRSS.
func settledRSS(ctx context.Context, cfg imapBenchConfig) (int64, error) {
	t := time.NewTimer(cfg.settle)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return 0, fmt.Errorf("interrupted: %w", ctx.Err())
	case <-t.C:
	}
	return readRSS(cfg.pid)
}

// openSessions fills clients with logged-in sessions, cfg.par at a time.
// On error the sessions already open stay in clients for the caller to
// close.
func openSessions(ctx context.Context, cfg imapBenchConfig, clients []*idleConn) error {
	var (
		mu       sync.Mutex
		firstErr error
		next     int
		wg       sync.WaitGroup
	)
	for range min(cfg.par, len(clients)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				done := i >= len(clients) || firstErr != nil
				mu.Unlock()
				if done {
					return
				}
				c, err := cfg.login.openIdle(cfg.mode)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("idle session: %w", err)
				}
				clients[i] = c
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	return nil
}

// readRSS returns VmRSS of process pid, in bytes, from /proc.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("server memory: %w", err)
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS finds the "VmRSS: <n> kB" line of a /proc/PID/status file.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || unit != "kB" || kb < 0 {
			return 0, fmt.Errorf("server memory: bad VmRSS line %q", sc.Text())
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("server memory: %w", err)
	}
	return 0, errors.New("server memory: no VmRSS line (kernel thread or exited?)")
}

func reportIMAP(w io.Writer, cfg imapBenchConfig, res imapBenchResult) {
	fmt.Fprintf(w, "sealbench imap: %s %s on %s, %d messages\n", cfg.login.user, cfg.mailbox, cfg.login.addr, res.messages)
	fmt.Fprintf(w, "connect:                %s\n", fmtDur(res.connect))
	fmt.Fprintf(w, "LOGIN:                  %s\n", fmtDur(res.login))
	fmt.Fprintf(w, "SELECT:                 %s\n", fmtDur(res.sel))
	fmt.Fprintf(w, "envelopes, first fetch: %s (%d messages, UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE))\n", fmtDur(res.envFirst), res.envFirstN)
	fmt.Fprintf(w, "envelopes, second:      %s (%d messages)\n", fmtDur(res.envSecond), res.envSecondN)
	fmt.Fprintf(w, "bodies:                 %s (%d messages, %.2f MB, %.1f MB/s, UID FETCH 1:* BODY.PEEK[])\n",
		fmtDur(res.body), res.bodyN, float64(res.bodyBytes)/1e6, mbPerSec(res.bodyBytes, res.body))
	if cfg.word != "" {
		fmt.Fprintf(w, "search:                 %s (%d hits, UID SEARCH TEXT %s)\n", fmtDur(res.search), res.searchHits, cfg.word)
	}
	if res.sessions > 0 {
		fmt.Fprintf(w, "idle sessions:          %d logged in in %s (after %d warm-up sessions), mode %s\n", res.sessions, fmtDur(res.sessionsTime), cfg.par, cfg.mode)
	}
	if res.rssAfter > 0 {
		growth := res.rssAfter - res.rssBefore
		fmt.Fprintf(w, "server memory:          RSS %.1f MiB after warm-up, %.1f MiB after, %.1f KiB per idle session\n",
			float64(res.rssBefore)/(1<<20), float64(res.rssAfter)/(1<<20), float64(growth)/1024/float64(res.sessions))
	}
}

// mbPerSec is bytes per second in MB (10^6 bytes).
func mbPerSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds() / 1e6
}
