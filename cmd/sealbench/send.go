package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/sealmail/sealmail/server/smtp/sink"
)

// sendConfig is what one send run does.
type sendConfig struct {
	addr     string // submission host:port (STARTTLS)
	user     string
	pass     string
	sinkAddr string // where the sink listens: the server's outbound.transports point there
	domains  int    // destination domains d0.bench.test … d<domains-1>.bench.test
	n, conc  int
	size     int
	hold     bool          // the sink defers everything: mail piles up in the queue
	timeout  time.Duration // per SMTP command; and for the deliveries after the last submission
}

func sendMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sealbench send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg sendConfig
	var passFile string
	var pid int
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:1587", "submission server `host:port` (STARTTLS)")
	fs.StringVar(&cfg.user, "user", "", "account to submit as (required)")
	fs.StringVar(&passFile, "pass-file", "", "`file` holding the password (else $SEALBENCH_PASSWORD)")
	fs.StringVar(&cfg.sinkAddr, "sink", "127.0.0.1:2626", "`host:port` the sink listens on (the server's outbound.transports)")
	fs.IntVar(&cfg.domains, "domains", 50, "destination domains d0.bench.test …")
	fs.IntVar(&cfg.n, "n", 10000, "number of messages")
	fs.IntVar(&cfg.conc, "c", 32, "concurrent submission connections")
	fs.IntVar(&cfg.size, "size", 10<<10, "message size in bytes")
	fs.BoolVar(&cfg.hold, "hold", false, "the sink answers 451 to every recipient: measure a growing queue")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "timeout per SMTP command, and for the deliveries after the last submission")
	fs.IntVar(&pid, "pid", 0, "report the peak memory growth of the server process `PID` during the run")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.user == "" || cfg.domains <= 0 || cfg.n <= 0 || cfg.conc <= 0 || cfg.size <= 0 {
		fmt.Fprintln(stderr, "sealbench send: -user is required; -domains, -n, -c and -size must be positive")
		return errUsage
	}
	cfg.pass = os.Getenv(passwordEnv)
	if passFile != "" {
		pw, err := readPassword(passFile)
		if err != nil {
			return err
		}
		cfg.pass = pw
	}
	if cfg.pass == "" {
		fmt.Fprintln(stderr, "sealbench send: no password: -pass-file or $"+passwordEnv)
		return errUsage
	}
	var err error
	var watch *rssWatch
	if pid > 0 {
		if watch, err = watchRSS(ctx, pid); err != nil {
			return err
		}
	}
	res, runErr := runSend(ctx, cfg)
	res.write(stdout, cfg)
	if watch != nil {
		rep, err := watch.finish()
		if err != nil {
			return err
		}
		rep.write(stdout, pid)
	}
	return runErr
}

// sendResult is what a send run measured.
type sendResult struct {
	accepted  int
	failures  map[string]int
	submitted time.Duration   // from the first MAIL to the last 250
	latency   []time.Duration // per accepted submission
	delivered int             // messages the sink took (of those accepted)
	allIn     time.Duration   // from the first MAIL to the last delivery
	dups      int
}

func runSend(ctx context.Context, cfg sendConfig) (sendResult, error) {
	res := sendResult{failures: map[string]int{}}
	var run [6]byte
	rand.Read(run[:])
	runID := hex.EncodeToString(run[:])
	hold := cfg.hold
	sk, err := startSinkAt(cfg.sinkAddr, sink.Options{MaxMessageBytes: 1 << 30, Rcpt: func(string) error {
		if hold {
			return sink.Reply(451, "4.7.1", "held by sealbench -hold")
		}
		return nil
	}})
	if err != nil {
		return res, fmt.Errorf("sink: %w", err)
	}
	defer sk.Close()
	filler := fillerLines(cfg.size)

	// Connect and log in one connection at a time before the load: the
	// login throttle admits only a few parallel attempts per account
	// (the first login makes this address known, and then it is not
	// slowed down).
	conns := make([]*gosmtp.Client, cfg.conc)
	for i := range conns {
		if conns[i], err = dialSubmission(cfg); err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return res, fmt.Errorf("connect and log in: %w", err)
		}
	}
	var next atomic.Int64
	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := range cfg.conc {
		wg.Go(func() {
			c := conns[w]
			defer func() {
				if c != nil {
					c.Quit()
					c.Close()
				}
			}()
			var msg bytes.Buffer
			var lat []time.Duration
			fails := map[string]int{}
			var ids []string
			defer func() {
				mu.Lock()
				for _, id := range ids {
					accepted[id] = true
				}
				res.latency = append(res.latency, lat...)
				for k, v := range fails {
					res.failures[k] += v
				}
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.n) {
					return
				}
				id := fmt.Sprintf("%s.%d@sealbench.invalid", runID, i)
				rcpt := fmt.Sprintf("r%d@d%d.bench.test", i, i%int64(cfg.domains))
				ic := ingestConfig{from: cfg.user, to: []string{rcpt}, size: cfg.size}
				buildMessage(&msg, ic, id, false, filler)
				var err error
				if c == nil {
					c, err = dialSubmission(cfg)
				}
				t0 := time.Now()
				if err == nil {
					err = c.SendMail(cfg.user, []string{rcpt}, bytes.NewReader(msg.Bytes()))
				}
				if err != nil {
					fails[errorClass(err)]++
					if c != nil {
						c.Close()
						c = nil
					}
					continue
				}
				lat = append(lat, time.Since(t0))
				ids = append(ids, "<"+id+">")
			}
		})
	}
	wg.Wait()
	res.submitted = time.Since(start)
	res.accepted = len(accepted)
	slices.Sort(res.latency)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("interrupted: %w", err)
	}
	if cfg.hold {
		return res, nil
	}
	// Wait for the deliveries.
	deadline := time.Now().Add(cfg.timeout)
	for {
		got := map[string]int{}
		for _, m := range sk.Messages() {
			got[m.MessageID]++
		}
		res.delivered, res.dups = 0, 0
		for id, n := range got {
			if accepted[id] {
				res.delivered++
			}
			res.dups += n - 1
		}
		if res.delivered == res.accepted {
			res.allIn = time.Since(start)
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return res, fmt.Errorf("%d of %d accepted messages not delivered", res.accepted-res.delivered, res.accepted)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res.accepted < cfg.n {
		return res, fmt.Errorf("%d of %d messages not accepted", cfg.n-res.accepted, cfg.n)
	}
	return res, nil
}

// startSinkAt runs a sink on addr.
func startSinkAt(addr string, opt sink.Options) (*sink.Server, error) {
	if addr == "" {
		return nil, errors.New("no address")
	}
	return sink.StartOn(addr, opt)
}

// dialSubmission connects with STARTTLS (any certificate: the server's
// is the benchmark's own) and authenticates.
func dialSubmission(cfg sendConfig) (*gosmtp.Client, error) {
	conn, err := net.DialTimeout("tcp", cfg.addr, cfg.timeout)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(cfg.addr)
	c, err := gosmtp.NewClientStartTLS(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.CommandTimeout, c.SubmissionTimeout = cfg.timeout, cfg.timeout
	if err := c.Auth(plainSASL{cfg.user, cfg.pass}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// plainSASL is SASL PLAIN (RFC 4616) for go-smtp's client.
type plainSASL struct{ user, pass string }

func (p plainSASL) Start() (string, []byte, error) {
	return "PLAIN", []byte("\x00" + p.user + "\x00" + p.pass), nil
}
func (p plainSASL) Next([]byte) ([]byte, error) { return nil, nil }

func (r sendResult) write(w io.Writer, cfg sendConfig) {
	fmt.Fprintf(w, "sealbench send: %d messages of %d bytes to %d domains via %s, concurrency %d\n",
		cfg.n, cfg.size, cfg.domains, cfg.addr, cfg.conc)
	secs := r.submitted.Seconds()
	fmt.Fprintf(w, "submitted: %d accepted in %.2fs: %.1f msgs/s; latency p50 %s p90 %s p99 %s max %s\n",
		r.accepted, secs, float64(r.accepted)/secs,
		fmtDur(percentile(r.latency, 50)), fmtDur(percentile(r.latency, 90)),
		fmtDur(percentile(r.latency, 99)), fmtDur(percentile(r.latency, 100)))
	if !cfg.hold && r.allIn > 0 {
		fmt.Fprintf(w, "delivered: %d at the sink %.2fs after the first submission: %.1f msgs/s submitted and delivered; %d duplicates\n",
			r.delivered, r.allIn.Seconds(), float64(r.delivered)/r.allIn.Seconds(), r.dups)
	}
	keys := make([]string, 0, len(r.failures))
	for k := range r.failures {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "error x%d: %s\n", r.failures[k], k)
	}
}
