package main

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches url and parses it with Prometheus' text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// value returns the value of the family's metric whose labels include
// labels ("k=v" pairs); -1 if there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if !slices.ContainsFunc(m.Label, func(lp *dto.LabelPair) bool { return lp.GetName() == k && lp.GetValue() == v }) {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetricsEndpoint runs the binary with listen.metrics, logs in and
// fails to log in over IMAPS, delivers over SMTP, and scrapes: the text
// parses, the counters moved, every family is documented, and no label
// value is anything a client or sender chose.
func TestMetricsEndpoint(t *testing.T) {
	te := newTestEnv(t)
	te.setenv("SEALMAIL_LISTEN_METRICS=127.0.0.1:0", "SEALMAIL_LIMITS_MESSAGE_BYTES=64KiB")
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve()
	url := "http://" + s.addr("metrics") + "/metrics"
	if s.addr("metrics") == "" {
		t.Fatalf("no metrics listener:\n%s", s.stdout())
	}
	waitLog(t, s, "msg=listening proto=metrics addr="+s.addr("metrics"))
	before := scrape(t, url)
	if v := value(before, "sealmail_build_info"); v != 1 {
		t.Errorf("build_info %v", v)
	}

	const secret = "Canary-Subject-7f3a9"
	if err := sendTo(s.addr("smtp"), []string{"alice@example.org"}, "Subject: "+secret+"\r\n\r\nbody\r\n"); err != nil {
		t.Fatal(err)
	}
	// Refused: an unknown recipient, and a message over the size limit.
	if err := sendTo(s.addr("smtp"), []string{"nobody-" + secret + "@example.org"}, "x\r\n"); err == nil {
		t.Fatal("unknown recipient accepted")
	}
	if err := sendTo(s.addr("smtp"), []string{"alice@example.org"}, "Subject: big\r\n\r\n"+strings.Repeat(strings.Repeat("y", 70)+"\r\n", 1000)); err == nil {
		t.Fatal("oversize message accepted")
	}
	c, err := imapclient.DialTLS(s.addr("imaps"), &imapclient.Options{TLSConfig: trustSelfSigned(t, te.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.org", "wrong-"+secret).Wait(); err == nil {
		t.Fatal("wrong password logged in")
	}
	if err := c.Login("alice@example.org", alicePW).Wait(); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, url)
	for _, tc := range []struct {
		name   string
		labels []string
		delta  float64
	}{
		{"sealmail_logins_total", []string{"result=ok"}, 1},
		{"sealmail_logins_total", []string{"result=failed"}, 1},
		{"sealmail_unlocks_total", []string{"source=argon2id"}, 1},
		{"sealmail_connections_accepted_total", []string{"listener=smtp"}, 3},
		{"sealmail_connections_accepted_total", []string{"listener=imaps"}, 1},
		{"sealmail_sessions", nil, 1},
		{"sealmail_smtp_messages_total", []string{"result=delivered", "status=250 2.0.0"}, 1},
		{"sealmail_smtp_delivery_duration_seconds", nil, 1},
		{"sealmail_smtp_commands_total", []string{"command=RCPT", "status=250 2.1.5"}, 2},
		{"sealmail_smtp_commands_total", []string{"command=RCPT", "status=550 5.1.1"}, 1},
		{"sealmail_smtp_messages_total", []string{"result=refused", "status=552 5.3.4"}, 1},
		{"sealmail_imap_commands_total", []string{"command=LOGIN", "status=NO"}, 1},
		{"sealmail_imap_commands_total", []string{"command=LOGIN", "status=OK"}, 1},
	} {
		if d := max(value(after, tc.name, tc.labels...), 0) - max(value(before, tc.name, tc.labels...), 0); d != tc.delta {
			t.Errorf("%s%v moved by %v, want %v", tc.name, tc.labels, d, tc.delta)
		}
	}
	if v := value(after, "sealmail_imap_command_duration_seconds"); v < 2 {
		t.Errorf("sealmail_imap_command_duration_seconds counts %v commands, want at least the two LOGINs", v)
	}
	if v := value(after, "sealmail_connections_open", "listener=imaps"); v != 1 {
		t.Errorf("imaps connections open: %v", v)
	}
	if d := value(after, "sealmail_store_commit_duration_seconds") - value(before, "sealmail_store_commit_duration_seconds"); d < 1 {
		t.Errorf("store commits observed: %v more", d)
	}
	if v := value(after, "sealmail_store_bytes", "part=vlog"); v <= 0 {
		t.Errorf("store vlog bytes: %v", v)
	}
	if value(after, "go_goroutines") <= 0 || value(after, "process_open_fds") <= 0 {
		t.Error("no Go runtime or process metrics")
	}

	// Labels are fixed sets; nothing a client sent appears anywhere.
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, bad := range []string{secret, "alice", "example.org", "127.0.0.1"} {
		if strings.Contains(string(text), bad) {
			t.Errorf("the metrics contain %q", bad)
		}
	}
	// Every sealmail_ family is in docs/configuration.md.
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	for name := range after {
		if strings.HasPrefix(name, "sealmail_") && !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("%s is not documented in %s", name, configDoc)
		}
	}
	for _, m := range regexp.MustCompile("`(sealmail_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		if after[m[1]] == nil {
			t.Errorf("%s documents %s, which is not served", configDoc, m[1])
		}
	}
	// Only GET /metrics.
	for _, path := range []string{"/", "/debug/pprof/"} {
		resp, err := http.Get("http://" + s.addr("metrics") + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	resp, err = http.Post(url, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %s", resp.Status)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsLoopbackOnly: listen.metrics refuses a non-loopback address
// unless metrics.allow_remote, and then warns.
func TestMetricsLoopbackOnly(t *testing.T) {
	te := newTestEnv(t)
	for _, addr := range []string{"0.0.0.0:9465", ":9465", "192.0.2.1:9465", "[::]:9465"} {
		te.setenv("SEALMAIL_LISTEN_METRICS=" + addr)
		te.fails(exitError, "listen.metrics: "+addr+" is not a loopback address", "", "config", "show")
	}
	for _, addr := range []string{"127.0.0.1:9465", "[::1]:9465", "localhost:9465"} {
		te.setenv("SEALMAIL_LISTEN_METRICS=" + addr)
		te.ok("", "config", "show")
	}
	te.setenv("SEALMAIL_LISTEN_METRICS=0.0.0.0:0", "SEALMAIL_METRICS_ALLOW_REMOTE=true")
	s := te.serve()
	waitLog(t, s, "metrics are served over plain HTTP on a non-loopback address")
}
