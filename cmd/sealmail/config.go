package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sealmail/sealmail/keyserver"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/listener"
	smtpserver "github.com/sealmail/sealmail/server/smtp"
)

// Config is sealmail's whole configuration, typed and validated. It is
// the only place configuration keys are known; every package gets a plain
// Options struct built from it and validates that itself.
//
// Adding a key is one line: a field with its type, its YAML name (which
// makes the key: section.name, and the environment variable
// SEALMAIL_SECTION_NAME) and its default, as a configuration file would
// write it:
//
//	UnlockCache time.Duration `yaml:"unlock_cache" default:"5m"`
//
// Types: string, bool, int, uint32, Size ("50MiB" or bytes),
// time.Duration (with a unit: "90s"), []string (a YAML list, or comma-
// or space-separated in the environment). Numbers must be at least 1
// (durations: 1ns) unless the field says otherwise with min:"0" or any
// other minimum of its type (min:"1s"). Then document the key in
// docs/configuration.md (TestConfigDocMatchesKeys checks every key and
// its default) and pass the value to its package's Options, where the
// package validates it (Config.Validate calls that validation, so that
// `config show` reports a bad value as `serve` would).
type Config struct {
	DataDir    string              `yaml:"data_dir" default:"./sealmail-data"`
	Hostname   string              `yaml:"hostname" default:"localhost"`
	Domains    []string            `yaml:"domains" default:"localhost"`
	Listen     ListenConfig        `yaml:"listen"`
	TLS        TLSConfig           `yaml:"tls"`
	Limits     LimitsConfig        `yaml:"limits"`
	Aliases    map[string][]string `yaml:"aliases"`
	Postmaster string              `yaml:"postmaster" default:""`
	MTASTS     MTASTSConfig        `yaml:"mta_sts"`
	Autoconfig AutoconfigConfig    `yaml:"autoconfig"`
	Key        KeyConfig           `yaml:"key"`
	Log        LogConfig           `yaml:"log"`
	KDF        KDFConfig           `yaml:"kdf"`
	Auth       AuthConfig          `yaml:"auth"`
	IMAP       IMAPConfig          `yaml:"imap"`
	DNS        DNSConfig           `yaml:"dns"`
	Inbound    InboundConfig       `yaml:"inbound"`
	Submission SubmissionConfig    `yaml:"submission"`
	Outbound   OutboundConfig      `yaml:"outbound"`
	Retention  RetentionConfig     `yaml:"retention"`
	// ServerKeyFile holds the server key (serverkey.go), under which the
	// server seals what it must read itself: the outbound queue and the
	// delivery trace. "": <data_dir>/server.key, made at first start.
	ServerKeyFile string        `yaml:"server_key_file" default:""`
	Metrics       MetricsConfig `yaml:"metrics"`
	DKIM          DKIMConfig    `yaml:"dkim"`
}

// RetentionConfig configures the retention sweeper (server/retention).
type RetentionConfig struct {
	// SweepInterval is how often `serve` destroys mail past its time
	// and purges the store; 0 turns the periodic sweep off (`sealmail
	// retention sweep` still works).
	SweepInterval time.Duration `yaml:"sweep_interval" default:"24h" min:"0"`
}

// MetricsConfig configures the Prometheus endpoint on listen.metrics.
type MetricsConfig struct {
	// AllowRemote lets listen.metrics bind an address other than
	// loopback. Metrics name no account and no sender, but they tell
	// how busy the server is and who may log in how often; they belong
	// to the operator's network, behind a firewall.
	AllowRemote bool `yaml:"allow_remote" default:"false"`
}

// DKIMConfig configures the DKIM keys (server/smtp/dkim).
type DKIMConfig struct {
	// KeyDir holds the private keys and selectors; "" means
	// <data_dir>/dkim.
	KeyDir string `yaml:"key_dir" default:""`
	// RetireAfter is how long a replaced selector stays published: longer
	// than mail waits in the outbound queue.
	RetireAfter time.Duration `yaml:"retire_after" default:"336h" min:"24h"`
	// PublishWait is how long a new selector must have been seen in DNS
	// before it signs.
	PublishWait time.Duration `yaml:"publish_wait" default:"1h" min:"0"`
}

// AuthConfig configures logins.
type AuthConfig struct {
	// UnlockCache is how long a login's unlocked master secret stays in
	// memory, wrapped under a fast hash of the password, after its last
	// use (server/account); 0 disables the cache.
	UnlockCache time.Duration `yaml:"unlock_cache" default:"15m" min:"0"`
}

// IMAPConfig configures the IMAP server beyond its listeners and limits.
type IMAPConfig struct {
	// HideVersion leaves the version out of the answer to ID (RFC 2971).
	HideVersion bool `yaml:"hide_version" default:"false"`
}

// maxUnlockCache bounds auth.unlock_cache: a cached secret is cheap to
// attack for whoever reads the server's memory, so it is kept for an
// idle period, not for days.
const maxUnlockCache = 24 * time.Hour

// ListenConfig holds listener addresses; "" disables a listener.
type ListenConfig struct {
	SMTP string `yaml:"smtp" default:"127.0.0.1:2525"`
	// Submission (RFC 6409, STARTTLS; port 587 in production) and
	// submissions (RFC 8314, implicit TLS; port 465).
	Submission  string `yaml:"submission" default:"127.0.0.1:1587"`
	Submissions string `yaml:"submissions" default:"127.0.0.1:1465"`
	IMAP        string `yaml:"imap" default:"127.0.0.1:1143"`
	IMAPS       string `yaml:"imaps" default:"127.0.0.1:1993"`
	POP3        string `yaml:"pop3" default:"127.0.0.1:1110"`
	POP3S       string `yaml:"pop3s" default:"127.0.0.1:1995"`
	HTTPS       string `yaml:"https" default:"127.0.0.1:8443"`
	// Metrics serves Prometheus metrics over plain HTTP (GET /metrics);
	// "" (the default) serves none. Loopback only, unless
	// metrics.allow_remote.
	Metrics string `yaml:"metrics" default:""`
}

// TLSConfig says where the certificate comes from.
type TLSConfig struct {
	CertFile      string `yaml:"cert_file" default:""`
	KeyFile       string `yaml:"key_file" default:""`
	ACME          bool   `yaml:"acme" default:"false"`
	ACMEEmail     string `yaml:"acme_email" default:""`
	ACMEDirectory string `yaml:"acme_directory" default:""`
}

// LimitsConfig bounds what clients may make the server do.
type LimitsConfig struct {
	MessageBytes Size `yaml:"message_bytes" default:"50MiB"`
	Recipients   int  `yaml:"recipients" default:"100"`
	LineLength   int  `yaml:"line_length" default:"4096"`
	// SMTP connections (the key names predate the other listeners').
	Connections      int `yaml:"connections" default:"1000"`
	ConnectionsPerIP int `yaml:"connections_per_ip" default:"20"`
	// RFC 5321 §4.5.3.2: five minutes for commands, ten for the data phase.
	CommandTimeout time.Duration `yaml:"command_timeout" default:"5m" min:"1s"`
	DataTimeout    time.Duration `yaml:"data_timeout" default:"10m" min:"1s"`
	// Bytes per second message data must average after its first 30 s
	// (Postfix's smtpd_min_data_rate is 500).
	MinDataRate Size `yaml:"min_data_rate" default:"1KiB" min:"1"`
	// Memory messages in flight may hold, server-wide; 0: a sixteenth of
	// the machine's memory, between 64 MiB and 1 GiB (inFlightBytes).
	InFlight Size `yaml:"in_flight" default:"0" min:"0"`
	// Per client (an IPv4 address or IPv6 /64) and minute: messages, and
	// bytes times receiving accounts.
	RateMessages int  `yaml:"rate_messages" default:"120"`
	RateBytes    Size `yaml:"rate_bytes" default:"512MiB"`
	// Unknown local recipients one SMTP connection may name (tarpitted
	// after the third) before it is dropped.
	UnknownRecipients int `yaml:"unknown_recipients" default:"10"`
	// Quota of every account without one of its own (sealmail user set
	// --quota), in sealed bytes; 0: none.
	Quota Size `yaml:"quota" default:"0" min:"0"`
	// Each of IMAP and IMAPS. Thunderbird opens up to five connections
	// per account, and a whole office may share one address.
	IMAPConnections      int `yaml:"imap_connections" default:"1000"`
	IMAPConnectionsPerIP int `yaml:"imap_connections_per_ip" default:"50"`
	// Each of submission and submissions: people's mail clients.
	SubmissionConnections      int `yaml:"submission_connections" default:"200"`
	SubmissionConnectionsPerIP int `yaml:"submission_connections_per_ip" default:"20"`
	// Each of POP3 and POP3S. A POP3 client holds one connection per
	// account, briefly.
	POP3Connections      int `yaml:"pop3_connections" default:"500"`
	POP3ConnectionsPerIP int `yaml:"pop3_connections_per_ip" default:"20"`
	// HTTPS serves a few small documents per client.
	HTTPSConnections      int           `yaml:"https_connections" default:"200"`
	HTTPSConnectionsPerIP int           `yaml:"https_connections_per_ip" default:"20"`
	HTTPSHeaderTimeout    time.Duration `yaml:"https_header_timeout" default:"10s" min:"1ms"`
	// Every listener: the implicit-TLS handshake, and a new connection's
	// silence before its protocol sets its own timeouts.
	TLSHandshakeTimeout time.Duration `yaml:"tls_handshake_timeout" default:"15s" min:"1ms"`
	IdleTimeout         time.Duration `yaml:"idle_timeout" default:"1m" min:"1ms"`
}

// MTASTSConfig is the MTA-STS policy served by the keyserver (RFC 8461).
type MTASTSConfig struct {
	Mode string   `yaml:"mode" default:""`
	MX   []string `yaml:"mx" default:""`
	// RFC 8461 §3.2: max_age is at most 31557600 s; one week is common.
	MaxAge time.Duration `yaml:"max_age" default:"168h"`
}

// AutoconfigConfig completes the Thunderbird/K-9 autoconfig file
// (config-v1.1.xml). Its servers are sealmail's own listeners; the
// outgoing server can be named here instead, for a site whose clients
// send through another server.
type AutoconfigConfig struct {
	// Submission is "host:port" of the server clients send through; "":
	// sealmail's own submission listeners.
	Submission string `yaml:"submission" default:""`
	// SubmissionTLS is how clients protect that connection: "tls"
	// (implicit TLS, port 465) or "starttls" (port 587). Never plaintext.
	SubmissionTLS string `yaml:"submission_tls" default:""`
}

// KeyConfig chooses the OpenPGP key new accounts get.
type KeyConfig struct {
	Type string `yaml:"type" default:"ed25519"`
}

// LogConfig configures the slog handler.
type LogConfig struct {
	Level  string `yaml:"level" default:"info"`
	Format string `yaml:"format" default:"text"`
}

// KDFConfig overrides the argon2id cost of new unlock slots. It exists so
// end-to-end tests can run fast; zero values mean crypto.DefaultKDF(), and
// operators should leave it alone.
type KDFConfig struct {
	Time      uint32 `yaml:"time" default:"0" min:"0"`
	MemoryKiB uint32 `yaml:"memory_kib" default:"0" min:"0"`
}

// Validate checks what only the binary knows (listen addresses,
// certificate files, logging, the test KDF), has each package check the
// Options it will get, and names the key of the first bad value. It
// normalises what it checks: domains and host names to canonical form,
// addresses to canonical addresses.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("config: data_dir: must not be empty")
	}
	var err error
	if c.Hostname, err = policy.NormalizeDomain(c.Hostname); err != nil {
		return fmt.Errorf("config: hostname: %w", err)
	}
	if len(c.Domains) == 0 {
		return errors.New("config: domains: at least one domain is needed")
	}
	for i, d := range c.Domains {
		if c.Domains[i], err = policy.NormalizeDomain(d); err != nil {
			return fmt.Errorf("config: domains: %w", err)
		}
		if slices.Contains(c.Domains[:i], c.Domains[i]) {
			return fmt.Errorf("config: domains: %q listed twice", d)
		}
	}
	for _, l := range []struct{ key, addr string }{
		{"listen.smtp", c.Listen.SMTP}, {"listen.submission", c.Listen.Submission},
		{"listen.submissions", c.Listen.Submissions}, {"listen.imap", c.Listen.IMAP},
		{"listen.imaps", c.Listen.IMAPS}, {"listen.https", c.Listen.HTTPS},
		{"listen.metrics", c.Listen.Metrics},
		{"listen.pop3", c.Listen.POP3}, {"listen.pop3s", c.Listen.POP3S},
	} {
		if err := checkListen(l.addr); err != nil {
			return fmt.Errorf("config: %s: %w", l.key, err)
		}
	}
	if c.Listen.Metrics != "" && !isLoopback(c.Listen.Metrics) && !c.Metrics.AllowRemote {
		return fmt.Errorf("config: listen.metrics: %s is not a loopback address; metrics are for the operator's network only: bind 127.0.0.1 or [::1], or set metrics.allow_remote: true and firewall the port", c.Listen.Metrics)
	}
	if err := c.TLS.validate(); err != nil {
		return err
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if err := c.validateAddresses(); err != nil {
		return err
	}
	if err := c.Autoconfig.validate(); err != nil {
		return err
	}
	p := keyserver.MTASTSPolicy{Mode: c.MTASTS.Mode, MX: c.MTASTS.MX, MaxAge: c.MTASTS.MaxAge}
	if p.Mode == "" {
		p.Mode = "none" // no policy served; the other keys must still be right
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("config: mta_sts: %w", err)
	}
	if _, err := parseKeyType(c.Key.Type); err != nil {
		return fmt.Errorf("config: key.type: %w", err)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		return fmt.Errorf("config: log.level: %w", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("config: log.format: want text or json, got %q", c.Log.Format)
	}
	if c.Auth.UnlockCache > maxUnlockCache {
		return fmt.Errorf("config: auth.unlock_cache: at most %v (0 disables it)", maxUnlockCache)
	}
	if err := c.validateInbound(); err != nil {
		return err
	}
	if err := c.validateOutbound(); err != nil {
		return err
	}
	return c.KDF.validate()
}

func (t *TLSConfig) validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("config: tls.cert_file and tls.key_file: set both or neither")
	}
	if t.ACME && t.CertFile != "" {
		return errors.New("config: tls.acme: cannot be combined with tls.cert_file")
	}
	if t.ACMEDirectory != "" && !strings.HasPrefix(t.ACMEDirectory, "https://") {
		return errors.New("config: tls.acme_directory: must be an https:// URL")
	}
	if t.ACMEEmail != "" {
		if _, err := policy.CanonicalAddress(t.ACMEEmail); err != nil {
			return fmt.Errorf("config: tls.acme_email: %w", err)
		}
	}
	return nil
}

// validate has server/smtp and server/listener check the limits they get.
func (l *LimitsConfig) validate() error {
	if err := l.smtp().Validate(); err != nil {
		return fmt.Errorf("config: limits: %w", err)
	}
	for _, p := range []struct {
		keys string
		opt  listener.LimiterOptions
	}{
		{"limits.connections_per_ip", listener.LimiterOptions{Connections: l.Connections, PerClient: l.ConnectionsPerIP}},
		{"limits.imap_connections_per_ip", listener.LimiterOptions{Connections: l.IMAPConnections, PerClient: l.IMAPConnectionsPerIP}},
		{"limits.submission_connections_per_ip", listener.LimiterOptions{Connections: l.SubmissionConnections, PerClient: l.SubmissionConnectionsPerIP}},
		{"limits.pop3_connections_per_ip", listener.LimiterOptions{Connections: l.POP3Connections, PerClient: l.POP3ConnectionsPerIP}},
		{"limits.https_connections_per_ip", listener.LimiterOptions{Connections: l.HTTPSConnections, PerClient: l.HTTPSConnectionsPerIP}},
	} {
		if err := p.opt.Validate(); err != nil {
			return fmt.Errorf("config: %s: %w", p.keys, err)
		}
	}
	return nil
}

// smtp is what server/smtp gets of the limits.
func (l *LimitsConfig) smtp() smtpserver.Limits {
	return smtpserver.Limits{
		MessageBytes:      int64(l.MessageBytes),
		Recipients:        l.Recipients,
		LineLength:        l.LineLength,
		CommandTimeout:    l.CommandTimeout,
		DataTimeout:       l.DataTimeout,
		MinDataRate:       int64(l.MinDataRate),
		InFlightBytes:     l.inFlightBytes(),
		RateMessages:      l.RateMessages,
		RateBytes:         int64(l.RateBytes),
		UnknownRecipients: l.UnknownRecipients,
	}
}

// inFlightBytes is limits.in_flight, or, for 0, a sixteenth of the
// machine's memory between 64 MiB and 1 GiB: what 32 concurrent large
// messages need is a few dozen MiB (each spills to the encrypted spool
// above 1 MiB), so the budget only bites under a flood.
func (l *LimitsConfig) inFlightBytes() int64 {
	if l.InFlight > 0 {
		return int64(l.InFlight)
	}
	const lo, hi = 64 << 20, 1 << 30
	mem := machineMemory()
	if mem <= 0 {
		return 256 << 20
	}
	return min(max(mem/16, lo), hi)
}

// machineMemory returns the machine's memory in bytes (MemTotal of
// /proc/meminfo), or 0 if it cannot tell.
func machineMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0
			}
			return n << 10
		}
	}
	return 0
}

// validateAddresses has policy check postmaster and aliases against the
// domains, and keeps their canonical forms.
func (c *Config) validateAddresses() error {
	if c.Postmaster != "" {
		a, err := policy.CanonicalAddress(c.Postmaster)
		if err != nil {
			return fmt.Errorf("config: postmaster: %w", err)
		}
		c.Postmaster = a
	}
	if _, err := policy.NewRecipients(policy.RecipientOptions{Domains: c.Domains, Postmaster: c.Postmaster}); err != nil {
		return fmt.Errorf("config: postmaster: %w", err)
	}
	if _, err := policy.NewRecipients(policy.RecipientOptions{Domains: c.Domains, Aliases: c.Aliases}); err != nil {
		return fmt.Errorf("config: aliases: %w", err)
	}
	aliases := make(map[string][]string, len(c.Aliases))
	for alias, targets := range c.Aliases {
		a, _ := policy.CanonicalAddress(alias) // checked by NewRecipients
		ts := make([]string, 0, len(targets))
		for _, t := range targets {
			ta, _ := policy.CanonicalAddress(t)
			ts = append(ts, ta)
		}
		aliases[a] = ts
	}
	c.Aliases = aliases
	return nil
}

// Values of autoconfig.submission_tls.
const (
	submissionImplicitTLS = "tls"
	submissionStartTLS    = "starttls"
)

// validate checks autoconfig.submission and autoconfig.submission_tls and
// normalises the host (canonical form) and port (no leading zeros).
func (a *AutoconfigConfig) validate() error {
	if a.Submission == "" {
		if a.SubmissionTLS != "" {
			return errors.New("config: autoconfig.submission_tls: set without autoconfig.submission")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(a.Submission)
	if err != nil {
		return fmt.Errorf("config: autoconfig.submission: want host:port of the server clients send mail through, got %q", a.Submission)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("config: autoconfig.submission: bad port in %q: want 1-65535", a.Submission)
	}
	if net.ParseIP(host) != nil {
		return fmt.Errorf("config: autoconfig.submission: %q: want a host name, not an IP address (clients check the certificate against it)", a.Submission)
	}
	if host, err = policy.NormalizeDomain(host); err != nil {
		return fmt.Errorf("config: autoconfig.submission: host: %w", err)
	}
	a.Submission = net.JoinHostPort(host, strconv.FormatUint(n, 10))
	switch a.SubmissionTLS {
	case submissionImplicitTLS, submissionStartTLS:
		return nil
	case "":
		return errors.New("config: autoconfig.submission_tls: required with autoconfig.submission: tls (implicit TLS, port 465) or starttls (port 587)")
	}
	return fmt.Errorf("config: autoconfig.submission_tls: want tls or starttls, got %q (plaintext is never offered)", a.SubmissionTLS)
}

// kdfMinMemoryKiB and kdfMaxMemoryKiB bound the testing override: below
// 1 MiB argon2id is no cost at all; above 4 GiB a typo could exhaust memory.
const (
	kdfMinMemoryKiB = 1024
	kdfMaxMemoryKiB = 4 << 20
	kdfMaxTime      = 100
)

func (k KDFConfig) validate() error {
	if k.Time == 0 && k.MemoryKiB == 0 {
		return nil
	}
	if k.Time == 0 || k.MemoryKiB == 0 {
		return errors.New("config: kdf.time and kdf.memory_kib: set both or neither")
	}
	if k.Time > kdfMaxTime {
		return fmt.Errorf("config: kdf.time: at most %d", kdfMaxTime)
	}
	if k.MemoryKiB < kdfMinMemoryKiB || k.MemoryKiB > kdfMaxMemoryKiB {
		return fmt.Errorf("config: kdf.memory_kib: between %d and %d", kdfMinMemoryKiB, kdfMaxMemoryKiB)
	}
	return nil
}

// checkListen accepts "" (disabled) or host:port with a numeric port.
func checkListen(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port or empty, got %q", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("bad port in %q", addr)
	}
	if host != "" && net.ParseIP(host) == nil {
		if _, err := policy.NormalizeDomain(host); err != nil {
			return fmt.Errorf("bad host in %q", addr)
		}
	}
	return nil
}

// Paths inside the data directory.
func (c *Config) storeDir() string   { return filepath.Join(c.DataDir, "store") }
func (c *Config) tlsDir() string     { return filepath.Join(c.DataDir, "tls") }
func (c *Config) acmeDir() string    { return filepath.Join(c.DataDir, "acme") }
func (c *Config) socketPath() string { return filepath.Join(c.DataDir, "control.sock") }

// dkimDir is dkim.key_dir, or <data_dir>/dkim.
func (c *Config) dkimDir() string {
	if c.DKIM.KeyDir != "" {
		return c.DKIM.KeyDir
	}
	return filepath.Join(c.DataDir, "dkim")
}
