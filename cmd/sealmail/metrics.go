package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/server/listener"
	smtpserver "github.com/sealmail/sealmail/server/smtp"
	"github.com/sealmail/sealmail/store"
)

// Prometheus metrics on listen.metrics. Only this package imports
// prometheus: the packages that count expose it through hooks in their
// Options (account.Metrics, badgerstore.Options.OnCommit) or through
// methods read at scrape time (listener.Listener.Stats,
// store.SizeReporter, account.Service.SessionCount). No label carries an
// address, a mailbox name or anything a client or sender wrote: labels
// are listener names, outcomes and store parts, all fixed sets.

// Limits of the metrics listener: a scraper or two, never the public.
const (
	metricsConnections    = 16
	metricsHeaderTimeout  = 10 * time.Second
	metricsMaxHeaderBytes = 8 << 10
	metricsWriteTimeout   = 30 * time.Second
	metricsPath           = "/metrics"
	metricsNamespace      = "sealmail"
)

// metrics is the registry and the instruments that hooks feed.
type metrics struct {
	reg *prometheus.Registry

	logins  *prometheus.CounterVec
	unlocks *prometheus.CounterVec
	commits prometheus.Histogram

	smtpCommands *prometheus.CounterVec
	smtpMessages *prometheus.CounterVec
	smtpDelivery prometheus.Histogram

	imapCommands *prometheus.CounterVec
	imapDuration prometheus.Histogram

	mu      sync.Mutex
	sources *metricSources // guarded by mu; nil until serve wires them
}

// metricSources are what the collector reads at scrape time.
type metricSources struct {
	guards   map[string]*listener.Listener
	st       store.Store
	accounts *account.Service
}

var (
	_ account.Metrics    = (*metrics)(nil)
	_ smtpserver.Metrics = (*metrics)(nil)
)

// newMetrics makes the registry with sealmail's instruments, the Go
// runtime's and the process's.
func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "logins_total",
		Help: "Logins (IMAP; later POP3 and submission) by result: ok, failed (wrong credentials or unknown account), throttled, unavailable.",
	}, []string{"result"})
	m.unlocks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "unlocks_total",
		Help: "Accounts unlocked by logins and changes, by source: argon2id or the unlock cache.",
	}, []string{"source"})
	m.commits = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "store_commit_duration_seconds",
		Help:    "Latency of the store's durable commits, fsync included.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
	})
	m.smtpCommands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "smtp_commands_total",
		Help: "SMTP commands by command (known ones; others as \"other\") and the status of their final reply (\"550 5.1.1\").",
	}, []string{"command", "status"})
	m.smtpMessages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "smtp_messages_total",
		Help: "Messages whose data arrived, by result (delivered, refused) and reply status: the reason, as an RFC 3463 code (\"552 5.3.4\": too large).",
	}, []string{"result", "status"})
	m.smtpDelivery = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "smtp_delivery_duration_seconds",
		Help:    "Time from the end of a delivered message's data to its 250: checks, sealing for every recipient and the durable commit.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.smtpMessages.WithLabelValues("delivered", "250 2.0.0")
	m.imapCommands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "imap_commands_total",
		Help: "IMAP commands that ran, by command (\"UID FETCH\" for UID commands) and the status of their tagged response (OK, NO, BAD).",
	}, []string{"command", "status"})
	m.imapDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "imap_command_duration_seconds",
		Help:    "Time an IMAP command took, from its last byte to its tagged response (IDLE: until DONE).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	// Every label value exists from the start, so that rates work from
	// the first scrape.
	for _, r := range []account.LoginResult{account.LoginOK, account.LoginFailed, account.LoginThrottled, account.LoginUnavailable} {
		m.logins.WithLabelValues(r.String())
	}
	m.unlocks.WithLabelValues("argon2id")
	m.unlocks.WithLabelValues("cache")
	b := readBuildInfo()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "build_info",
		Help:        "The running sealmail: module version, VCS commit, Go version (always 1).",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "go_version": b.Go},
	})
	info.Set(1)
	m.reg.MustRegister(m.logins, m.unlocks, m.commits, m.smtpCommands, m.smtpMessages, m.smtpDelivery, m.imapCommands, m.imapDuration, info, (*metricsCollector)(m),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Login implements account.Metrics.
func (m *metrics) Login(r account.LoginResult) { m.logins.WithLabelValues(r.String()).Inc() }

// Unlock implements account.Metrics.
func (m *metrics) Unlock(cached bool) {
	if cached {
		m.unlocks.WithLabelValues("cache").Inc()
	} else {
		m.unlocks.WithLabelValues("argon2id").Inc()
	}
}

// Command implements smtpserver.Metrics.
func (m *metrics) Command(verb string, code int, enhanced string) {
	m.smtpCommands.WithLabelValues(verb, replyStatus(code, enhanced)).Inc()
}

// Message implements smtpserver.Metrics.
func (m *metrics) Message(code int, enhanced string, d time.Duration) {
	if code == 250 {
		m.smtpMessages.WithLabelValues("delivered", replyStatus(code, enhanced)).Inc()
		m.smtpDelivery.Observe(d.Seconds())
		return
	}
	m.smtpMessages.WithLabelValues("refused", replyStatus(code, enhanced)).Inc()
}

// imapMetrics feeds the IMAP instruments (wire.Metrics); its own type,
// because the method's name is SMTP's too.
type imapMetrics struct{ m *metrics }

var _ wire.Metrics = imapMetrics{}

// imap returns the hook for server/imap's Options.Metrics.
func (m *metrics) imap() wire.Metrics { return imapMetrics{m} }

// Command implements wire.Metrics.
func (im imapMetrics) Command(name, status string, d time.Duration) {
	im.m.imapCommands.WithLabelValues(name, status).Inc()
	im.m.imapDuration.Observe(d.Seconds())
}

// replyStatus is an SMTP reply's code and enhanced code: "550 5.1.1".
func replyStatus(code int, enhanced string) string {
	if enhanced == "" {
		return strconv.Itoa(code)
	}
	return strconv.Itoa(code) + " " + enhanced
}

// onCommit is badgerstore.Options.OnCommit.
func (m *metrics) onCommit(d time.Duration, _ int) { m.commits.Observe(d.Seconds()) }

// setSources tells the collector what to read at scrape time.
func (m *metrics) setSources(s *metricSources) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sources = s
}

// metricsCollector reads counts that live elsewhere at scrape time.
type metricsCollector metrics

var (
	descAccepted = prometheus.NewDesc(metricsNamespace+"_connections_accepted_total",
		"Connections handed to a protocol, by listener.", []string{"listener"}, nil)
	descRefused = prometheus.NewDesc(metricsNamespace+"_connections_refused_total",
		"Connections closed at once because a connection cap was reached, by listener.", []string{"listener"}, nil)
	descOpen = prometheus.NewDesc(metricsNamespace+"_connections_open",
		"Connections open now, by listener.", []string{"listener"}, nil)
	descSessions = prometheus.NewDesc(metricsNamespace+"_sessions",
		"Logged-in sessions, each holding an unlocked key.", nil, nil)
	descDerivations = prometheus.NewDesc(metricsNamespace+"_argon2id_runs_total",
		"argon2id runs of logins and account changes, those burnt for unknown accounts and wrong secrets included.", nil, nil)
	descStoreBytes = prometheus.NewDesc(metricsNamespace+"_store_bytes",
		"Disk space the store's files take, by part (badger: lsm, vlog, wal, other).", []string{"part"}, nil)
)

func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAccepted, descRefused, descOpen, descSessions, descDerivations, descStoreBytes} {
		ch <- d
	}
}

func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	s := c.sources
	c.mu.Unlock()
	if s == nil {
		return
	}
	for name, l := range s.guards {
		st := l.Stats()
		ch <- prometheus.MustNewConstMetric(descAccepted, prometheus.CounterValue, float64(st.Accepted), name)
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(st.Refused), name)
		ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(st.Open), name)
	}
	if s.accounts != nil {
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(s.accounts.SessionCount()))
		ch <- prometheus.MustNewConstMetric(descDerivations, prometheus.CounterValue, float64(s.accounts.Derivations()))
	}
	if sr, ok := s.st.(store.SizeReporter); ok {
		for part, n := range sr.Sizes() {
			ch <- prometheus.MustNewConstMetric(descStoreBytes, prometheus.GaugeValue, float64(n), part)
		}
	}
}

// metricsServer serves the registry on a guarded listener: GET /metrics
// only, bounded headers and time.
func metricsServer(m *metrics, log *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET "+metricsPath, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             metricsWriteTimeout,
	}))
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: metricsHeaderTimeout,
		ReadTimeout:       metricsHeaderTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    metricsMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serveMetrics serves hs on ln until it is shut down.
func serveMetrics(hs *http.Server, ln net.Listener) error {
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// slogPrinter is promhttp's error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("metrics", "proto", "metrics", "err", fmt.Sprint(v...))
}
