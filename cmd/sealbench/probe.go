package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// probeConfig is one recipient-probing run: what an address harvester
// does (issue 9 item 11).
type probeConfig struct {
	addr     string        // SMTP server host:port
	conc     int           // parallel connections
	duration time.Duration // how long to probe
	domain   string        // domain of the probed addresses
	timeout  time.Duration // per reply
}

// probeResult counts what the server answered.
type probeResult struct {
	probed  int64 // RCPTs answered (any code)
	unknown int64 // of which 550 5.1.1
	dropped int64 // connections the server ended (421 or close)
	elapsed time.Duration
}

func probeMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sealbench probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg probeConfig
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:2525", "SMTP server `host:port`")
	fs.IntVar(&cfg.conc, "c", 1, "concurrent connections")
	fs.DurationVar(&cfg.duration, "d", 10*time.Second, "how long to probe")
	fs.StringVar(&cfg.domain, "domain", defaultBenchDomain, "`domain` of the probed addresses (random local parts)")
	fs.DurationVar(&cfg.timeout, "timeout", time.Minute, "timeout per reply")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.conc <= 0 || cfg.duration <= 0 || cfg.timeout <= 0 || cfg.domain == "" {
		fmt.Fprintln(stderr, "sealbench probe: -c, -d and -timeout must be positive, -domain set")
		return errUsage
	}
	res := runProbe(ctx, cfg)
	fmt.Fprintf(stdout, "sealbench probe: %d connections to %s for %s\n", cfg.conc, cfg.addr, res.elapsed.Round(time.Millisecond))
	fmt.Fprintf(stdout, "addresses probed %d (%.1f/s), answered unknown %d, connections dropped by the server %d\n",
		res.probed, float64(res.probed)/res.elapsed.Seconds(), res.unknown, res.dropped)
	return nil
}

// runProbe sends RCPT TO for made-up addresses on cfg.conc connections,
// one at a time per connection, reconnecting whenever the server ends
// one, until cfg.duration has passed.
func runProbe(ctx context.Context, cfg probeConfig) probeResult {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var res probeResult
	var seq atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range cfg.conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				if !probeConn(ctx, cfg, &res, &seq) {
					// Could not even connect: do not spin.
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// probeConn runs one connection until the server ends it or ctx ends. It
// reports whether it got as far as a transaction.
func probeConn(ctx context.Context, cfg probeConfig, res *probeResult, seq *atomic.Int64) bool {
	c, err := net.DialTimeout("tcp", cfg.addr, cfg.timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r := bufio.NewReader(c)
	reply := func() string {
		c.SetReadDeadline(time.Now().Add(cfg.timeout))
		var last string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return ""
			}
			last = line
			if len(line) < 4 || line[3] != '-' {
				return last
			}
		}
	}
	cmd := func(s string) string {
		if _, err := io.WriteString(c, s+"\r\n"); err != nil {
			return ""
		}
		return reply()
	}
	if !strings.HasPrefix(reply(), "220") || !strings.HasPrefix(cmd("EHLO probe.sealbench.invalid"), "250") ||
		!strings.HasPrefix(cmd("MAIL FROM:<probe@sealbench.invalid>"), "250") {
		return false
	}
	for ctx.Err() == nil {
		got := cmd(fmt.Sprintf("RCPT TO:<probe%d@%s>", seq.Add(1), cfg.domain))
		switch {
		case got == "" || strings.HasPrefix(got, "421"):
			atomic.AddInt64(&res.dropped, 1)
			return true
		case strings.HasPrefix(got, "550 5.1.1"):
			atomic.AddInt64(&res.unknown, 1)
		}
		atomic.AddInt64(&res.probed, 1)
	}
	return true
}
