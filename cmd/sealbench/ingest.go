package main

import (
	"bufio"
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// ingestConfig is what one ingest run does.
type ingestConfig struct {
	addr     string        // SMTP server host:port
	n        int           // messages to send
	conc     int           // parallel connections
	size     int           // bytes per message
	from     string        // envelope sender
	to       []string      // envelope recipients of every message
	helo     string        // EHLO name
	startTLS bool          // require STARTTLS
	insecure bool          // skip certificate verification (STARTTLS)
	timeout  time.Duration // per SMTP command
	word     string        // "": none; else put in the body of every wordEvery-th message
	every    int           // see word
}

// ingestResult is what one run measured.
type ingestResult struct {
	sent     int
	accepted []string        // Message-IDs, without angle brackets
	latency  []time.Duration // one per accepted message, sorted
	failures map[string]int  // error text → count
	elapsed  time.Duration
	bytes    int64 // accepted message bytes
	withWord int   // accepted messages carrying cfg.word
}

func ingestMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sealbench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg ingestConfig
	var to, idsPath string
	var pid int
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:2525", "SMTP server `host:port`")
	fs.IntVar(&cfg.n, "n", 1000, "number of messages")
	fs.IntVar(&cfg.conc, "c", 1, "concurrent connections")
	fs.IntVar(&cfg.size, "size", 10<<10, "message size in bytes")
	fs.StringVar(&cfg.from, "from", "sealbench@sealbench.invalid", "envelope sender")
	fs.StringVar(&to, "to", "", "comma-separated envelope recipients (required)")
	fs.StringVar(&cfg.helo, "helo", "sealbench.invalid", "EHLO name")
	fs.BoolVar(&cfg.startTLS, "starttls", false, "use STARTTLS")
	fs.BoolVar(&cfg.insecure, "insecure", false, "do not verify the server certificate")
	fs.DurationVar(&cfg.timeout, "timeout", time.Minute, "timeout per SMTP command")
	fs.StringVar(&idsPath, "ids", "", "write accepted Message-IDs to this `file`, one per line")
	fs.StringVar(&cfg.word, "word", "", "put this `word` in the body of every -word-every'th message (for SEARCH TEXT)")
	fs.IntVar(&cfg.every, "word-every", 100, "put -word in one message of every `K` (100: 1%)")
	fs.IntVar(&pid, "pid", 0, "report the peak memory growth of the server process `PID` during the run")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, t := range strings.Split(to, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.to = append(cfg.to, t)
		}
	}
	if len(cfg.to) == 0 || cfg.n <= 0 || cfg.conc <= 0 || cfg.size <= 0 || cfg.every <= 0 || cfg.timeout <= 0 {
		fmt.Fprintln(stderr, "sealbench ingest: -to is required; -n, -c, -size, -word-every and -timeout must be positive")
		return errUsage
	}
	if !validWord(cfg.word) {
		fmt.Fprintln(stderr, "sealbench ingest: -word must be at most 64 ASCII letters and digits")
		return errUsage
	}
	var watch *rssWatch
	if pid > 0 {
		var err error
		if watch, err = watchRSS(ctx, pid); err != nil {
			return err
		}
	}
	// Even an interrupted run records and reports what was accepted.
	res, runErr := runIngest(ctx, cfg)
	if idsPath != "" {
		if err := writeIDs(idsPath, res.accepted); err != nil {
			return err
		}
	}
	report(stdout, cfg, res)
	if watch != nil {
		rep, err := watch.finish()
		if err != nil {
			return err
		}
		rep.write(stdout, pid)
	}
	if runErr != nil {
		return runErr
	}
	if len(res.accepted) < res.sent {
		return fmt.Errorf("%d of %d messages not accepted", res.sent-len(res.accepted), res.sent)
	}
	return nil
}

// runIngest sends cfg.n messages and measures.
func runIngest(ctx context.Context, cfg ingestConfig) (ingestResult, error) {
	var run [6]byte
	if _, err := rand.Read(run[:]); err != nil {
		return ingestResult{failures: map[string]int{}}, err
	}
	runID := hex.EncodeToString(run[:])
	filler := fillerLines(cfg.size)

	var next atomic.Int64
	type workerResult struct {
		ids      []string
		lat      []time.Duration
		bytes    int64
		sent     int
		withWord int
		failures map[string]int
	}
	results := make([]workerResult, cfg.conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range cfg.conc {
		wg.Go(func() {
			r := &results[w]
			r.failures = map[string]int{}
			var c *gosmtp.Client
			defer func() {
				if c != nil {
					c.Quit()
					c.Close()
				}
			}()
			var msg bytes.Buffer
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.n) {
					return
				}
				id := fmt.Sprintf("%s.%d@sealbench.invalid", runID, i)
				buildMessage(&msg, cfg, id, withWord(cfg, i), filler)
				r.sent++
				var err error
				if c == nil {
					c, err = dialSMTP(cfg)
				}
				// Latency runs from MAIL FROM to the reply after the data,
				// without the connection set-up.
				t0 := time.Now()
				if err == nil {
					err = c.SendMail(cfg.from, cfg.to, bytes.NewReader(msg.Bytes()))
				}
				if err != nil {
					r.failures[errorClass(err)]++
					if c != nil {
						c.Close()
						c = nil
					}
					continue
				}
				r.lat = append(r.lat, time.Since(t0))
				r.ids = append(r.ids, id)
				if withWord(cfg, i) {
					r.withWord++
				}
				r.bytes += int64(msg.Len())
			}
		})
	}
	wg.Wait()
	res := ingestResult{elapsed: time.Since(start), failures: map[string]int{}}
	for _, r := range results {
		res.sent += r.sent
		res.accepted = append(res.accepted, r.ids...)
		res.latency = append(res.latency, r.lat...)
		res.bytes += r.bytes
		res.withWord += r.withWord
		for k, v := range r.failures {
			res.failures[k] += v
		}
	}
	slices.Sort(res.latency)
	slices.Sort(res.accepted)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("interrupted: %w", err)
	}
	return res, nil
}

// dialSMTP connects, runs STARTTLS if configured, and greets.
func dialSMTP(cfg ingestConfig) (*gosmtp.Client, error) {
	conn, err := net.DialTimeout("tcp", cfg.addr, cfg.timeout)
	if err != nil {
		return nil, err
	}
	var c *gosmtp.Client
	if cfg.startTLS {
		// go-smtp v0.25 has no exported StartTLS: the EHLO before TLS
		// names "localhost", the one after it cfg.helo.
		host, _, _ := net.SplitHostPort(cfg.addr)
		c, err = gosmtp.NewClientStartTLS(conn, &tls.Config{ServerName: host, InsecureSkipVerify: cfg.insecure})
		if err != nil {
			return nil, err
		}
	} else {
		c = gosmtp.NewClient(conn)
	}
	c.CommandTimeout = cfg.timeout
	c.SubmissionTimeout = cfg.timeout
	if err := c.Hello(cfg.helo); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// errorClass groups errors for the report: SMTP replies by reply code
// (with the text, which servers keep fixed per cause), network errors by
// operation and cause without the addresses, which differ per connection.
func errorClass(err error) string {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		if se.EnhancedCode == gosmtp.NoEnhancedCode || se.EnhancedCode == (gosmtp.EnhancedCode{}) {
			return fmt.Sprintf("%d %s", se.Code, se.Message)
		}
		return fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "network: timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "network: " + oe.Op + ": " + oe.Err.Error()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "network: connection closed by server"
	}
	return err.Error()
}

// withWord reports whether message i carries cfg.word.
func withWord(cfg ingestConfig, i int64) bool {
	return cfg.word != "" && i%int64(cfg.every) == 0
}

// validWord accepts "" and ASCII letters and digits, which go in a body
// line as they are and form one search term.
func validWord(w string) bool {
	if len(w) > 64 {
		return false
	}
	for _, r := range w {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// fillerLines returns body text of 78-byte CRLF lines, enough for size.
func fillerLines(size int) []byte {
	line := []byte("sealbench filler text 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOP\r\n")
	var b bytes.Buffer
	for b.Len() < size {
		b.Write(line)
	}
	return b.Bytes()
}

// buildMessage writes a message of exactly cfg.size bytes (or its header,
// if that is longer) with Message-ID <id>, and cfg.word in the first body
// line if word is set.
func buildMessage(b *bytes.Buffer, cfg ingestConfig, id string, word bool, filler []byte) {
	b.Reset()
	fmt.Fprintf(b, "From: sealbench <%s>\r\nTo: %s\r\nSubject: sealbench %s\r\nMessage-ID: <%s>\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		cfg.from, cfg.to[0], id, id, time.Now().Format(time.RFC1123Z))
	if word {
		fmt.Fprintf(b, "The word is %s.\r\n", cfg.word)
	}
	if rest := cfg.size - b.Len(); rest > 2 {
		// Whole filler lines, then a short last line, so the size is exact
		// and every line ends in CRLF.
		body := filler[:rest-2]
		if i := bytes.LastIndexByte(body, '\n'); i >= 0 {
			b.Write(body[:i+1])
			body = body[i+1:]
		}
		b.Write(bytes.ReplaceAll(body, []byte("\r"), []byte(" ")))
		b.WriteString("\r\n")
	}
}

func writeIDs(path string, ids []string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, id := range ids {
		fmt.Fprintln(w, id)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id := strings.Trim(strings.TrimSpace(sc.Text()), "<>"); id != "" {
			ids = append(ids, id)
		}
	}
	return ids, sc.Err()
}

// percentile returns the p-th percentile (0–100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func report(w io.Writer, cfg ingestConfig, res ingestResult) {
	secs := res.elapsed.Seconds()
	fmt.Fprintf(w, "sealbench ingest: %d messages of %d bytes to %s, concurrency %d\n", cfg.n, cfg.size, cfg.addr, cfg.conc)
	fmt.Fprintf(w, "accepted %d, failed %d, in %.2fs\n", len(res.accepted), res.sent-len(res.accepted), secs)
	if cfg.word != "" {
		fmt.Fprintf(w, "accepted with the word %q: %d\n", cfg.word, res.withWord)
	}
	fmt.Fprintf(w, "throughput %.1f msgs/s, %.2f MB/s\n", float64(len(res.accepted))/secs, float64(res.bytes)/secs/1e6)
	fmt.Fprintf(w, "latency p50 %s p90 %s p99 %s max %s\n",
		fmtDur(percentile(res.latency, 50)), fmtDur(percentile(res.latency, 90)),
		fmtDur(percentile(res.latency, 99)), fmtDur(percentile(res.latency, 100)))
	keys := make([]string, 0, len(res.failures))
	for k := range res.failures {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "error x%d: %s\n", res.failures[k], k)
	}
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
}
