package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// mailBenchConfig is what one mailbox run measures.
type mailBenchConfig struct {
	data      string // the data set in data/pristine, each round's copy in data/round
	serverBin string // the sealbench binary that serves
	client    string // clientRaw or clientGoIMAP
	rounds    int
	timeout   time.Duration // per command
	profile   string        // directory for the servers' CPU profiles; "": none
	set       mailManifest  // the data set's dimensions
	log       io.Writer     // progress
}

// The clients of -client.
const (
	clientRaw    = "raw"
	clientGoIMAP = "goimap"
)

// mailTarget is one row of the table: a command, timed cold (first in a
// fresh session of a fresh server process) or warm (again in that
// session).
type mailTarget struct {
	name  string
	limit string                  // issue 11's target, as printed
	met   func(s mailSample) bool // whether a sample meets it
	mbps  bool                    // print MB/s of the literals too
	check func(mailManifest, rawCounts) error
}

// mailSample is one timed command.
type mailSample struct {
	wall, clientCPU, serverCPU time.Duration
	counts                     rawCounts
}

// The rows, in the order of mailTargets.
const (
	rowEnvFirst = iota
	rowEnvSecond
	rowBodyCold
	rowBodyWarm
	rowSearchCold
	rowSearchWarm
	rowResyncSelectCold
	rowResyncSelectWarm
	rowResyncFetchCold
	rowResyncFetchWarm
	rowLogin
	numRows
)

func under(d time.Duration) func(mailSample) bool {
	return func(s mailSample) bool { return s.wall < d }
}

func checkEnvelopes(m mailManifest, n rawCounts) error {
	if n.fetch != m.Messages || n.complete != m.Messages {
		return fmt.Errorf("%d FETCH responses, %d with FLAGS, ENVELOPE and RFC822.SIZE; want %d", n.fetch, n.complete, m.Messages)
	}
	return nil
}

func checkBodies(m mailManifest, n rawCounts) error {
	if n.fetch != m.Messages || n.literals != m.PlainBytes {
		return fmt.Errorf("%d FETCH responses, %d bytes of BODY[]; want %d, %d", n.fetch, n.literals, m.Messages, m.PlainBytes)
	}
	return nil
}

func checkSearch(m mailManifest, n rawCounts) error {
	if n.hits != m.Hits {
		return fmt.Errorf("%d hits; want %d", n.hits, m.Hits)
	}
	return nil
}

func checkResyncCounts(_ mailManifest, n rawCounts) error {
	if n.fetch != resyncFlagged || n.vanished != resyncExpunged {
		return fmt.Errorf("%d FETCH, %d UIDs VANISHED; want %d, %d", n.fetch, n.vanished, resyncFlagged, resyncExpunged)
	}
	return nil
}

var mailTargets = [numRows]mailTarget{
	rowEnvFirst:         {name: "envelopes, first fetch (cold)", limit: "< 1.5 s", met: under(1500 * time.Millisecond), check: checkEnvelopes},
	rowEnvSecond:        {name: "envelopes, second fetch (warm)", limit: "< 0.25 s", met: under(250 * time.Millisecond), check: checkEnvelopes},
	rowBodyCold:         {name: "bodies (cold)", limit: ">= 140 MB/s", met: atLeastMBps(140), mbps: true, check: checkBodies},
	rowBodyWarm:         {name: "bodies (warm)", limit: ">= 140 MB/s", met: atLeastMBps(140), mbps: true, check: checkBodies},
	rowSearchCold:       {name: "SEARCH TEXT (cold)", limit: "< 0.6 s", met: under(600 * time.Millisecond), check: checkSearch},
	rowSearchWarm:       {name: "SEARCH TEXT (warm)", limit: "< 0.6 s", met: under(600 * time.Millisecond), check: checkSearch},
	rowResyncSelectCold: {name: "resync SELECT QRESYNC (cold)", limit: "< 50 ms", met: under(50 * time.Millisecond), check: checkResyncCounts},
	rowResyncSelectWarm: {name: "resync SELECT QRESYNC (warm)", limit: "< 50 ms", met: under(50 * time.Millisecond), check: checkResyncCounts},
	rowResyncFetchCold:  {name: "resync UID FETCH VANISHED (cold)", limit: "< 50 ms", met: under(50 * time.Millisecond), check: checkResyncCounts},
	rowResyncFetchWarm:  {name: "resync UID FETCH VANISHED (warm)", limit: "< 50 ms", met: under(50 * time.Millisecond), check: checkResyncCounts},
	rowLogin:            {name: "LOGIN (argon2id, fresh server)", limit: "-"},
}

func atLeastMBps(v float64) func(mailSample) bool {
	return func(s mailSample) bool { return mbPerSec(s.counts.literals, s.wall) >= v }
}

func mailBenchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sealbench mailbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := mailBenchConfig{log: stderr, set: mailManifest{Word: mailWord}}
	fs.StringVar(&cfg.data, "data", "", "`directory` of the data set (filled on first use, then reused) and of each round's copy (required)")
	fs.StringVar(&cfg.serverBin, "server-bin", "", "sealbench `binary` whose serve runs the server (default: this one); it must read the data set this one fills")
	fs.StringVar(&cfg.client, "client", clientRaw, "client for the mailbox commands: raw (counts responses, parses nothing) or goimap (go-imap's client, which parses them)")
	fs.IntVar(&cfg.rounds, "rounds", 1, "measure `N` times, each on a fresh copy of the data set")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "bound on each command and on each server's start")
	fs.StringVar(&cfg.profile, "server-cpuprofile", "", "write each server process's CPU profile into `directory` (round-phase.pprof)")
	fs.IntVar(&cfg.set.Messages, "messages", 10000, "messages in the mailbox")
	fs.IntVar(&cfg.set.Size, "size", 10<<10, "approximate size of each message in `bytes`")
	fs.IntVar(&cfg.set.ResyncMessages, "resync-messages", 10000, "messages in the resynchronised mailbox (100 of them change)")
	fs.BoolVar(&cfg.set.FastKDF, "fast-kdf", false, "cheap argon2id for the mailbox's account (tests only: LOGIN then measures no real unlock)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	switch {
	case cfg.data == "":
		err = errors.New("-data is required")
	case cfg.client != clientRaw && cfg.client != clientGoIMAP:
		err = fmt.Errorf("-client %q: want raw or goimap", cfg.client)
	case cfg.rounds <= 0 || cfg.timeout <= 0:
		err = errors.New("-rounds and -timeout must be positive")
	case cfg.set.Messages <= 0 || cfg.set.Size <= 0:
		err = errors.New("-messages and -size must be positive")
	case cfg.set.ResyncMessages < resyncFlagged+resyncExpunged:
		err = fmt.Errorf("-resync-messages must be at least %d", resyncFlagged+resyncExpunged)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sealbench mailbox: %v\n", err)
		return errUsage
	}
	if cfg.serverBin == "" {
		if cfg.serverBin, err = os.Executable(); err != nil {
			return fmt.Errorf("server binary: %w", err)
		}
	}
	res, err := runMailBench(ctx, cfg)
	if err != nil {
		return err
	}
	reportMailBench(stdout, cfg, res)
	return nil
}

// mailBenchResult is what a run measured: per row, one sample per round.
type mailBenchResult struct {
	set                mailManifest
	rows               [numRows][]mailSample
	loadStart, loadEnd string
}

// runMailBench fills (or reuses) the data set and runs the rounds.
func runMailBench(ctx context.Context, cfg mailBenchConfig) (*mailBenchResult, error) {
	logf := func(format string, a ...any) { fmt.Fprintf(cfg.log, "sealbench mailbox: "+format+"\n", a...) }
	pristine := filepath.Join(cfg.data, "pristine")
	set, err := loadOrFill(ctx, pristine, cfg.set, logf)
	if err != nil {
		return nil, err
	}
	res := &mailBenchResult{set: set, loadStart: loadAvg()}
	if cfg.profile != "" {
		if err := os.MkdirAll(cfg.profile, 0o700); err != nil {
			return nil, err
		}
	}
	for r := 1; r <= cfg.rounds; r++ {
		if err := mailRound(ctx, cfg, r, res); err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		logf("round %d done (load %s)", r, loadAvg())
	}
	res.loadEnd = loadAvg()
	return res, nil
}

// mailRound copies the data set and measures every row once, each
// phase in a fresh server process.
func mailRound(ctx context.Context, cfg mailBenchConfig, round int, res *mailBenchResult) error {
	dir := filepath.Join(cfg.data, "round")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := copyTree(filepath.Join(cfg.data, "pristine"), dir); err != nil {
		return fmt.Errorf("copy data set: %w", err)
	}
	password, err := readPassword(filepath.Join(dir, passFileName))
	if err != nil {
		return err
	}
	set := res.set
	phases := []struct {
		name string
		run  func(p *phase) error
	}{
		{"envelopes", func(p *phase) error {
			return p.mailbox(mailUser, password, func(c mailClient) error {
				return errors.Join(
					p.time(rowEnvFirst, c.fetchEnvelopes),
					p.time(rowEnvSecond, c.fetchEnvelopes))
			})
		}},
		{"bodies", func(p *phase) error {
			return p.mailbox(mailUser, password, func(c mailClient) error {
				return errors.Join(p.time(rowBodyCold, c.fetchBodies), p.time(rowBodyWarm, c.fetchBodies))
			})
		}},
		{"search", func(p *phase) error {
			return p.mailbox(mailUser, password, func(c mailClient) error {
				search := func() (rawCounts, error) { return c.searchText(set.Word) }
				return errors.Join(p.time(rowSearchCold, search), p.time(rowSearchWarm, search))
			})
		}},
		{"resync-select", func(p *phase) error {
			c, err := p.rawLogin(resyncUser, password)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.run("ENABLE QRESYNC"); err != nil {
				return err
			}
			cmd := fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", set.UIDValidity, set.ModSeq)
			sel := func() (rawCounts, error) { return c.run(cmd) }
			return errors.Join(p.time(rowResyncSelectCold, sel), p.time(rowResyncSelectWarm, sel), rawLogout(c))
		}},
		{"resync-fetch", func(p *phase) error {
			c, err := p.rawLogin(resyncUser, password)
			if err != nil {
				return err
			}
			defer c.Close()
			for _, cmd := range []string{"ENABLE QRESYNC", "SELECT INBOX"} {
				if _, err := c.run(cmd); err != nil {
					return err
				}
			}
			cmd := fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", set.ModSeq)
			fetch := func() (rawCounts, error) { return c.run(cmd) }
			return errors.Join(p.time(rowResyncFetchCold, fetch), p.time(rowResyncFetchWarm, fetch), rawLogout(c))
		}},
	}
	for _, ph := range phases {
		srv, err := startServerProcess(ctx, cfg, dir, fmt.Sprintf("%d-%s", round, ph.name))
		if err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		p := &phase{cfg: cfg, srv: srv, res: res}
		// Interrupted: stopping the server ends the command in flight.
		cancel := context.AfterFunc(ctx, func() { srv.cmd.Process.Signal(syscall.SIGTERM) })
		err = ph.run(p)
		cancel()
		if serr := srv.stop(); err == nil && serr != nil {
			err = serr
		}
		if ctx.Err() != nil {
			// The commands' errors are those of the stopped server.
			err = fmt.Errorf("interrupted: %w", ctx.Err())
		}
		if err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
	}
	return nil
}

// phase is one server process's part of a round.
type phase struct {
	cfg mailBenchConfig
	srv *serverProcess
	res *mailBenchResult
}

// time runs one command, records its sample in row and checks its
// responses.
func (p *phase) time(row int, cmd func() (rawCounts, error)) error {
	s, err := measure(p.srv.pid, cmd)
	if err != nil {
		return fmt.Errorf("%s: %w", mailTargets[row].name, err)
	}
	p.res.rows[row] = append(p.res.rows[row], s)
	if check := mailTargets[row].check; check != nil {
		if err := check(p.res.set, s.counts); err != nil {
			return fmt.Errorf("%s: incomplete responses: %w", mailTargets[row].name, err)
		}
	}
	return nil
}

// measure times cmd: wall clock from sending to the tagged OK, and the
// CPU time the client (this process) and the server process spent.
func measure(pid int, cmd func() (rawCounts, error)) (mailSample, error) {
	var s mailSample
	srv0, err := processCPU(pid)
	if err != nil {
		return s, err
	}
	cl0 := selfCPU()
	t0 := time.Now()
	s.counts, err = cmd()
	s.wall = time.Since(t0)
	s.clientCPU = selfCPU() - cl0
	srv1, cerr := processCPU(pid)
	s.serverCPU = srv1 - srv0
	return s, errors.Join(err, cerr)
}

// rawLogin connects the raw client and logs in (timed as rowLogin when
// it is the mailbox user's).
func (p *phase) rawLogin(user, password string) (*rawIMAP, error) {
	c, err := dialRawIMAP(p.srv.imaps, p.cfg.timeout)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	login := func() (rawCounts, error) { return c.run("LOGIN " + quoteIMAP(user) + " " + quoteIMAP(password)) }
	if user == mailUser {
		err = p.time(rowLogin, login)
	} else {
		_, err = login()
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("login: %w", err)
	}
	return c, nil
}

func rawLogout(c *rawIMAP) error {
	_, err := c.run("LOGOUT")
	return err
}

// quoteIMAP is s as an IMAP quoted string.
func quoteIMAP(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// mailClient is what the mailbox rows need of a client: raw or go-imap's.
type mailClient interface {
	fetchEnvelopes() (rawCounts, error)
	fetchBodies() (rawCounts, error)
	searchText(word string) (rawCounts, error)
}

// mailbox logs in as user with the configured client, selects INBOX,
// runs f and logs out.
func (p *phase) mailbox(user, password string, f func(mailClient) error) error {
	if p.cfg.client == clientGoIMAP {
		return p.goIMAPMailbox(user, password, f)
	}
	c, err := p.rawLogin(user, password)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.run("SELECT INBOX"); err != nil {
		return err
	}
	return errors.Join(f(rawMailClient{c}), rawLogout(c))
}

// rawMailClient runs the mailbox rows' commands with the raw client.
type rawMailClient struct{ c *rawIMAP }

func (r rawMailClient) fetchEnvelopes() (rawCounts, error) {
	return r.c.run("UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)", "FLAGS (", "ENVELOPE (", "RFC822.SIZE ")
}

func (r rawMailClient) fetchBodies() (rawCounts, error) {
	return r.c.run("UID FETCH 1:* BODY.PEEK[]")
}

func (r rawMailClient) searchText(word string) (rawCounts, error) {
	return r.c.run("UID SEARCH TEXT " + quoteIMAP(word))
}

// serverProcess is a `sealbench serve` child.
type serverProcess struct {
	cmd   *exec.Cmd
	pid   int
	imaps string
	done  chan error // Wait's result
}

// startServerProcess starts cfg.serverBin serve on dir, with listeners
// on free loopback ports, and waits for it to be ready. Its log goes to
// dir/server-<name>.log.
func startServerProcess(ctx context.Context, cfg mailBenchConfig, dir, name string) (*serverProcess, error) {
	args := []string{"serve", "-data", dir, "-smtp", "127.0.0.1:0", "-imap", "127.0.0.1:0", "-imaps", "127.0.0.1:0",
		"-user", mailUser + "," + resyncUser}
	if cfg.profile != "" {
		args = append(args, "-cpuprofile", filepath.Join(cfg.profile, name+".pprof"))
	}
	logFile, err := os.Create(filepath.Join(dir, "server-"+name+".log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(cfg.serverBin, args...)
	cmd.Stderr = logFile
	// The server dies with the harness, however the harness ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	s := &serverProcess{cmd: cmd, pid: cmd.Process.Pid, done: make(chan error, 1)}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var err error = errors.New("server exited before it was ready")
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "imaps" {
				s.imaps = f[1]
			}
			if len(f) > 0 && f[0] == "ready;" {
				err = nil
				break
			}
		}
		ready <- err
		io.Copy(io.Discard, out)
		s.done <- cmd.Wait()
	}()
	t := time.NewTimer(cfg.timeout)
	defer t.Stop()
	select {
	case err = <-ready:
	case <-t.C:
		err = errors.New("server not ready in time")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil && s.imaps == "" {
		err = errors.New("server printed no imaps address")
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("%w (log: %s)", err, logFile.Name())
	}
	return s, nil
}

// stop ends the server with SIGTERM (SIGKILL after 30 s) and waits for
// it; a server that does not stop cleanly is an error.
func (s *serverProcess) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case err := <-s.done:
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		return nil
	case <-t.C:
		s.cmd.Process.Kill()
		<-s.done
		return errors.New("server did not stop within 30 s of SIGTERM")
	}
}

// processCPU is the CPU time process pid has used: the sum of its
// threads' run time in /proc/PID/task/*/schedstat (nanoseconds; a Go
// process keeps its threads), or, where that is missing, user and system
// time from /proc/PID/stat (clock ticks of 10 ms).
func processCPU(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err == nil {
		var sum time.Duration
		for _, t := range tasks {
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread has just exited
			}
			if err != nil {
				sum = -1
				break
			}
			ns, err := strconv.ParseInt(strings.Fields(string(raw) + " x")[0], 10, 64)
			if err != nil {
				sum = -1
				break
			}
			sum += time.Duration(ns)
		}
		if sum >= 0 {
			return sum, nil
		}
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	return parseProcStatCPU(string(raw))
}

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// parseProcStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line; the command name before them may hold spaces.
func parseProcStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("server CPU: bad stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("server CPU: short stat %q", stat)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// selfCPU is the user and system CPU time of this process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the first three fields of /proc/loadavg, or "?".
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(raw)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func reportMailBench(w io.Writer, cfg mailBenchConfig, res *mailBenchResult) {
	s := res.set
	fmt.Fprintf(w, "sealbench mailbox: %d messages of ~%d bytes (%.1f MB), %d hits of %q; resync of %d messages after %d flag changes and %d expunges\n",
		s.Messages, s.Size, float64(s.PlainBytes)/1e6, s.Hits, s.Word, s.ResyncMessages, resyncFlagged, resyncExpunged)
	fmt.Fprintf(w, "server %s (a fresh process per phase, implicit TLS on loopback), client %s, %d round(s), GOMAXPROCS %d, load %s at start, %s at end\n",
		cfg.serverBin, cfg.client, cfg.rounds, runtime.GOMAXPROCS(0), res.loadStart, res.loadEnd)
	fmt.Fprintf(w, "wall: median (min-max) from command sent to tagged OK; CPU: medians of the client (this process) and the server process\n")
	fmt.Fprintf(w, "%-34s %-12s %-34s %-10s %-10s %-5s %s\n", "target", "issue 11", "wall", "client CPU", "server CPU", "met", "responses (checked)")
	for row, t := range mailTargets {
		ss := res.rows[row]
		if len(ss) == 0 {
			continue
		}
		walls := sampleDurations(ss, func(s mailSample) time.Duration { return s.wall })
		med := median(walls)
		wall := fmt.Sprintf("%s (%s-%s)", fmtDur(med), fmtDur(walls[0]), fmtDur(walls[len(walls)-1]))
		if t.mbps {
			n := ss[0].counts.literals
			wall = fmt.Sprintf("%.1f MB/s (%.1f-%.1f)", mbPerSec(n, med), mbPerSec(n, walls[len(walls)-1]), mbPerSec(n, walls[0]))
		}
		met := "-"
		if t.met != nil {
			n := 0
			for _, x := range ss {
				if t.met(x) {
					n++
				}
			}
			met = fmt.Sprintf("%d/%d", n, len(ss))
		}
		fmt.Fprintf(w, "%-34s %-12s %-34s %-10s %-10s %-5s %s\n", t.name, t.limit, wall,
			fmtDur(median(sampleDurations(ss, func(s mailSample) time.Duration { return s.clientCPU }))),
			fmtDur(median(sampleDurations(ss, func(s mailSample) time.Duration { return s.serverCPU }))), met,
			countsSummary(ss[0].counts))
	}
}

// sampleDurations returns f of every sample, sorted.
func sampleDurations(ss []mailSample, f func(mailSample) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	slices.Sort(out)
	return out
}

// median of sorted durations (the lower middle one of an even count).
func median(sorted []time.Duration) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)/2]
}

// countsSummary says what a command's responses were.
func countsSummary(n rawCounts) string {
	var parts []string
	if n.fetch > 0 {
		parts = append(parts, fmt.Sprintf("%d FETCH", n.fetch))
	}
	if n.literals > 0 {
		parts = append(parts, fmt.Sprintf("%.1f MB", float64(n.literals)/1e6))
	}
	if n.hits > 0 {
		parts = append(parts, fmt.Sprintf("%d hits", n.hits))
	}
	if n.vanished > 0 {
		parts = append(parts, fmt.Sprintf("%d vanished", n.vanished))
	}
	return strings.Join(parts, ", ")
}
