package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/sealmail/sealmail/policy"
)

// defaultConfigFile is read when --config is not given and it exists.
const defaultConfigFile = "sealmail.yaml"

// envPrefix prefixes every environment variable: SEALMAIL_DATA_DIR.
const envPrefix = "SEALMAIL"

// Config is sealmail's whole configuration, typed and validated. It is the
// only place configuration keys are known; every package gets a plain
// Options struct built from it.
type Config struct {
	DataDir    string              `yaml:"data_dir"`
	Hostname   string              `yaml:"hostname"`
	Domains    []string            `yaml:"domains"`
	Listen     ListenConfig        `yaml:"listen"`
	TLS        TLSConfig           `yaml:"tls"`
	Limits     LimitsConfig        `yaml:"limits"`
	Aliases    map[string][]string `yaml:"aliases"`
	Postmaster string              `yaml:"postmaster"`
	MTASTS     MTASTSConfig        `yaml:"mta_sts"`
	Autoconfig AutoconfigConfig    `yaml:"autoconfig"`
	Key        KeyConfig           `yaml:"key"`
	Log        LogConfig           `yaml:"log"`
	KDF        KDFConfig           `yaml:"kdf"`
}

// ListenConfig holds listener addresses; "" disables a listener.
type ListenConfig struct {
	SMTP       string `yaml:"smtp"`
	Submission string `yaml:"submission"`
	IMAP       string `yaml:"imap"`
	IMAPS      string `yaml:"imaps"`
	HTTPS      string `yaml:"https"`
}

// TLSConfig says where the certificate comes from.
type TLSConfig struct {
	CertFile      string `yaml:"cert_file"`
	KeyFile       string `yaml:"key_file"`
	ACME          bool   `yaml:"acme"`
	ACMEEmail     string `yaml:"acme_email"`
	ACMEDirectory string `yaml:"acme_directory"`
}

// LimitsConfig bounds what one client may make the server do.
type LimitsConfig struct {
	MessageBytes     int64         `yaml:"message_bytes"`
	Recipients       int           `yaml:"recipients"`
	LineLength       int           `yaml:"line_length"`
	Connections      int           `yaml:"connections"`
	ConnectionsPerIP int           `yaml:"connections_per_ip"`
	CommandTimeout   time.Duration `yaml:"command_timeout"`
	DataTimeout      time.Duration `yaml:"data_timeout"`
}

// MTASTSConfig is the MTA-STS policy served by the keyserver (RFC 8461).
type MTASTSConfig struct {
	Mode   string        `yaml:"mode"`
	MX     []string      `yaml:"mx"`
	MaxAge time.Duration `yaml:"max_age"`
}

// AutoconfigConfig completes the Thunderbird/K-9 autoconfig file
// (config-v1.1.xml). The IMAP servers in it are sealmail's own listeners;
// the outgoing server, which Thunderbird requires, is named here because
// sealmail has no submission listener: typically the relay or smarthost
// the organisation already sends through.
type AutoconfigConfig struct {
	// Submission is "host:port" of the server clients send through; ""
	// serves no autoconfig file.
	Submission string `yaml:"submission"`
	// SubmissionTLS is how clients protect that connection: "tls"
	// (implicit TLS, port 465) or "starttls" (port 587). Never plaintext.
	SubmissionTLS string `yaml:"submission_tls"`
}

// KeyConfig chooses the OpenPGP key new accounts get.
type KeyConfig struct {
	Type string `yaml:"type"`
}

// LogConfig configures the slog handler.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// KDFConfig overrides the argon2id cost of new unlock slots. It exists so
// end-to-end tests can run fast; zero values mean crypto.DefaultKDF, and
// operators should leave it alone.
type KDFConfig struct {
	Time      uint32 `yaml:"time"`
	MemoryKiB uint32 `yaml:"memory_kib"`
}

// keyKind is how a configuration value is parsed.
type keyKind int

const (
	kindString keyKind = iota
	kindList
	kindBool
	kindInt
	kindSize
	kindDuration
	kindAliases
)

// configKey is one known key, its kind, default and where it lands.
type configKey struct {
	name  string
	kind  keyKind
	def   any
	field func(c *Config) any // pointer to the Config field
}

// mib is 2^20; the default message size limit is 50 MiB.
const mib = 1 << 20

// configKeys is every key sealmail knows, in the order `config show`
// documents them. Names are fixed: operators' files and scripts use them.
var configKeys = []configKey{
	{"data_dir", kindString, "./sealmail-data", func(c *Config) any { return &c.DataDir }},
	{"hostname", kindString, "localhost", func(c *Config) any { return &c.Hostname }},
	{"domains", kindList, []string{"localhost"}, func(c *Config) any { return &c.Domains }},
	{"listen.smtp", kindString, "127.0.0.1:2525", func(c *Config) any { return &c.Listen.SMTP }},
	{"listen.submission", kindString, "", func(c *Config) any { return &c.Listen.Submission }},
	{"listen.imap", kindString, "127.0.0.1:1143", func(c *Config) any { return &c.Listen.IMAP }},
	{"listen.imaps", kindString, "127.0.0.1:1993", func(c *Config) any { return &c.Listen.IMAPS }},
	{"listen.https", kindString, "127.0.0.1:8443", func(c *Config) any { return &c.Listen.HTTPS }},
	{"tls.cert_file", kindString, "", func(c *Config) any { return &c.TLS.CertFile }},
	{"tls.key_file", kindString, "", func(c *Config) any { return &c.TLS.KeyFile }},
	{"tls.acme", kindBool, false, func(c *Config) any { return &c.TLS.ACME }},
	{"tls.acme_email", kindString, "", func(c *Config) any { return &c.TLS.ACMEEmail }},
	{"tls.acme_directory", kindString, "", func(c *Config) any { return &c.TLS.ACMEDirectory }},
	{"limits.message_bytes", kindSize, int64(50 * mib), func(c *Config) any { return &c.Limits.MessageBytes }},
	{"limits.recipients", kindInt, int64(100), func(c *Config) any { return &c.Limits.Recipients }},
	{"limits.line_length", kindInt, int64(4096), func(c *Config) any { return &c.Limits.LineLength }},
	{"limits.connections", kindInt, int64(1000), func(c *Config) any { return &c.Limits.Connections }},
	{"limits.connections_per_ip", kindInt, int64(20), func(c *Config) any { return &c.Limits.ConnectionsPerIP }},
	// RFC 5321 §4.5.3.2: five minutes for commands, ten for the data phase.
	{"limits.command_timeout", kindDuration, "5m", func(c *Config) any { return &c.Limits.CommandTimeout }},
	{"limits.data_timeout", kindDuration, "10m", func(c *Config) any { return &c.Limits.DataTimeout }},
	{"aliases", kindAliases, nil, func(c *Config) any { return &c.Aliases }},
	{"postmaster", kindString, "", func(c *Config) any { return &c.Postmaster }},
	{"mta_sts.mode", kindString, "", func(c *Config) any { return &c.MTASTS.Mode }},
	{"mta_sts.mx", kindList, []string{}, func(c *Config) any { return &c.MTASTS.MX }},
	// RFC 8461 §3.2: max_age is at most 31557600 s; one week is common.
	{"mta_sts.max_age", kindDuration, "168h", func(c *Config) any { return &c.MTASTS.MaxAge }},
	{"autoconfig.submission", kindString, "", func(c *Config) any { return &c.Autoconfig.Submission }},
	{"autoconfig.submission_tls", kindString, "", func(c *Config) any { return &c.Autoconfig.SubmissionTLS }},
	{"key.type", kindString, "ed25519", func(c *Config) any { return &c.Key.Type }},
	{"log.level", kindString, "info", func(c *Config) any { return &c.Log.Level }},
	{"log.format", kindString, "text", func(c *Config) any { return &c.Log.Format }},
	{"kdf.time", kindInt, int64(0), func(c *Config) any { return &c.KDF.Time }},
	{"kdf.memory_kib", kindInt, int64(0), func(c *Config) any { return &c.KDF.MemoryKiB }},
}

// loadOptions says where configuration comes from besides the environment.
type loadOptions struct {
	File      string            // --config; "" means ./sealmail.yaml if present
	Overrides map[string]string // from flags, by key; highest precedence
}

// loadConfig reads defaults, then the optional YAML file, then SEALMAIL_*
// environment variables, then flag overrides, and validates the result.
// It returns the file it read ("" if none).
func loadConfig(opt loadOptions) (*Config, string, error) {
	v := newViper()
	file := opt.File
	if file == "" {
		if _, err := os.Stat(defaultConfigFile); err == nil {
			file = defaultConfigFile
		}
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, "", fmt.Errorf("config: %w", err)
		}
		err = readConfigFile(v, f, file)
		f.Close()
		if err != nil {
			return nil, "", err
		}
	}
	c, err := configFromViper(v, opt.Overrides)
	if err != nil {
		return nil, "", err
	}
	return c, file, nil
}

// newViper returns a viper instance holding sealmail's defaults.
func newViper() *viper.Viper {
	v := viper.New()
	for _, k := range configKeys {
		if k.def != nil {
			v.SetDefault(k.name, k.def)
		}
	}
	return v
}

// configFromViper layers the environment and overrides on v, then parses
// and validates every key.
func configFromViper(v *viper.Viper, overrides map[string]string) (*Config, error) {
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	// A variable set to "" is the empty value, not unset, so
	// SEALMAIL_LISTEN_IMAPS= disables a listener.
	v.AllowEmptyEnv(true)
	for _, k := range configKeys {
		env := envName(k.name)
		if err := v.BindEnv(k.name, env); err != nil {
			return nil, fmt.Errorf("config: bind %s: %w", env, err)
		}
	}
	if err := checkKnownEnv(os.Environ()); err != nil {
		return nil, err
	}
	for name, val := range overrides {
		v.Set(name, val)
	}
	var c Config
	for _, k := range configKeys {
		if err := setField(&c, k, v.Get(k.name)); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// parseConfigBytes reads a configuration from YAML bytes with defaults and
// the environment, as loadConfig does for a file.
func parseConfigBytes(data []byte) (*Config, error) {
	v := newViper()
	if err := readConfigFile(v, bytes.NewReader(data), "config"); err != nil {
		return nil, err
	}
	return configFromViper(v, nil)
}

// maxConfigBytes bounds the configuration file; a real one is a few KiB.
const maxConfigBytes = 1 << 20

// readConfigFile merges YAML from r into v and refuses unknown keys. name
// is for messages.
func readConfigFile(v *viper.Viper, r io.Reader, name string) error {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigBytes+1))
	if err != nil {
		return fmt.Errorf("config: read %s: %w", name, err)
	}
	if len(data) > maxConfigBytes {
		return fmt.Errorf("config: %s: larger than %d bytes", name, maxConfigBytes)
	}
	v.SetConfigType("yaml")
	if err := v.MergeConfig(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("config: %s: %w", name, err)
	}
	return checkKnownKeys(v.AllKeys(), name)
}

// envName is the environment variable for a key: listen.smtp →
// SEALMAIL_LISTEN_SMTP.
func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// checkKnownKeys refuses keys sealmail does not know, naming them, so a typo
// is never a silent default.
func checkKnownKeys(keys []string, file string) error {
	var unknown []string
	for _, key := range keys {
		if strings.HasPrefix(key, "aliases.") {
			continue
		}
		if !slices.ContainsFunc(configKeys, func(k configKey) bool { return k.name == key }) {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("config: %s: unknown key %s", file, strings.Join(unknown, ", "))
}

// checkKnownEnv refuses SEALMAIL_* variables that match no key, naming
// them: SEALMAIL_LIMITS_RECIPENTS is a typo, not a silent default.
func checkKnownEnv(environ []string) error {
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix+"_") {
			continue
		}
		if !slices.ContainsFunc(configKeys, func(k configKey) bool { return envName(k.name) == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("config: environment variable %s matches no configuration key (see `sealmail config show` for the keys; %s_<KEY> with dots as underscores)",
		strings.Join(unknown, ", "), envPrefix)
}

// setField parses raw (from YAML, the environment or a flag) strictly by
// the key's kind and stores it in c.
func setField(c *Config, k configKey, raw any) error {
	bad := func(want string) error {
		return fmt.Errorf("config: %s: want %s, got %v", k.name, want, describe(raw))
	}
	switch p := k.field(c).(type) {
	case *string:
		s, ok := raw.(string)
		if !ok {
			return bad("a string")
		}
		*p = strings.TrimSpace(s)
	case *bool:
		switch r := raw.(type) {
		case bool:
			*p = r
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(r))
			if err != nil {
				return bad("true or false")
			}
			*p = b
		default:
			return bad("true or false")
		}
	case *[]string:
		l, err := toList(raw)
		if err != nil {
			return bad("a list of strings")
		}
		*p = l
	case *time.Duration:
		s, ok := raw.(string)
		if !ok {
			return bad(`a duration with a unit, like "5m"`)
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return bad(`a duration with a unit, like "5m"`)
		}
		*p = d
	case *int64:
		n, err := toInt(raw, k.kind == kindSize)
		if err != nil {
			if k.kind == kindSize {
				return bad(`a size in bytes, like 52428800 or "50MiB"`)
			}
			return bad("an integer")
		}
		*p = n
	case *int:
		n, err := toInt(raw, false)
		if err != nil || n > 1<<31-1 {
			return bad("an integer")
		}
		*p = int(n)
	case *uint32:
		n, err := toInt(raw, false)
		if err != nil || n > 1<<32-1 {
			return bad("a non-negative integer")
		}
		*p = uint32(n)
	case *map[string][]string:
		m, err := toAliases(raw)
		if err != nil {
			return fmt.Errorf("config: %s: %w", k.name, err)
		}
		*p = m
	default:
		return fmt.Errorf("config: %s: internal: unhandled field type %T", k.name, p)
	}
	return nil
}

// describe renders a raw value for an error message without dumping
// anything large.
func describe(raw any) string {
	s := fmt.Sprintf("%#v", raw)
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// toList accepts a YAML list of strings, or a string (from the environment
// or a flag) of items separated by commas or white space.
func toList(raw any) ([]string, error) {
	switch r := raw.(type) {
	case nil:
		return []string{}, nil
	case []string:
		return slices.Clone(r), nil
	case []any:
		out := make([]string, 0, len(r))
		for _, e := range r {
			s, ok := e.(string)
			if !ok {
				return nil, errors.New("not a string")
			}
			out = append(out, strings.TrimSpace(s))
		}
		return out, nil
	case string:
		return strings.FieldsFunc(r, func(c rune) bool {
			return c == ',' || c == ' ' || c == '\t' || c == '\n'
		}), nil
	}
	return nil, errors.New("not a list")
}

// sizeUnits are the suffixes a size may carry.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}

// toInt accepts a YAML integer or a decimal string; sizes may carry a unit.
func toInt(raw any, size bool) (int64, error) {
	switch r := raw.(type) {
	case int:
		if r < 0 {
			return 0, errors.New("negative")
		}
		return int64(r), nil
	case int64:
		if r < 0 {
			return 0, errors.New("negative")
		}
		return r, nil
	case uint64:
		if r > 1<<62 {
			return 0, errors.New("too large")
		}
		return int64(r), nil
	case string:
		s := strings.TrimSpace(r)
		mult := int64(1)
		if size {
			for _, u := range sizeUnits {
				if strings.HasSuffix(s, u.suffix) {
					s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
					break
				}
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > (1<<62)/mult {
			return 0, errors.New("not a size")
		}
		return n * mult, nil
	}
	return 0, errors.New("not an integer")
}

// toAliases accepts a YAML map of alias → list of addresses, or a string
// (from the environment) "alias=a,b; alias2=c".
func toAliases(raw any) (map[string][]string, error) {
	out := map[string][]string{}
	switch r := raw.(type) {
	case nil:
		return out, nil
	case map[string]any:
		for alias, targets := range r {
			l, err := toList(targets)
			if err != nil {
				return nil, fmt.Errorf("alias %q: want a list of addresses", alias)
			}
			out[alias] = l
		}
		return out, nil
	case string:
		for _, entry := range strings.Split(r, ";") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			alias, targets, ok := strings.Cut(entry, "=")
			if !ok {
				return nil, fmt.Errorf("want alias=address,address; …, got %q", entry)
			}
			l, _ := toList(targets)
			out[strings.TrimSpace(alias)] = l
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a map of alias to addresses, got %s", describe(raw))
}

// Validate checks every value and names the key of the first bad one.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("config: data_dir: must not be empty")
	}
	if err := checkHostname(c.Hostname); err != nil {
		return fmt.Errorf("config: hostname: %w", err)
	}
	if len(c.Domains) == 0 {
		return errors.New("config: domains: at least one domain is needed")
	}
	seen := map[string]bool{}
	for i, d := range c.Domains {
		d, err := policy.NormalizeDomain(d)
		if err != nil {
			return fmt.Errorf("config: domains: %w", err)
		}
		if seen[d] {
			return fmt.Errorf("config: domains: %q listed twice", d)
		}
		seen[d] = true
		c.Domains[i] = d
	}
	for _, l := range []struct{ key, addr string }{
		{"listen.smtp", c.Listen.SMTP}, {"listen.imap", c.Listen.IMAP},
		{"listen.imaps", c.Listen.IMAPS}, {"listen.https", c.Listen.HTTPS},
	} {
		if err := checkListen(l.addr); err != nil {
			return fmt.Errorf("config: %s: %w", l.key, err)
		}
	}
	if c.Listen.Submission != "" {
		return errors.New("config: listen.submission: submission (authenticated sending) is not available yet; leave it empty")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("config: tls.cert_file and tls.key_file: set both or neither")
	}
	if c.TLS.ACME && c.TLS.CertFile != "" {
		return errors.New("config: tls.acme: cannot be combined with tls.cert_file")
	}
	if c.TLS.ACMEDirectory != "" && !strings.HasPrefix(c.TLS.ACMEDirectory, "https://") {
		return errors.New("config: tls.acme_directory: must be an https:// URL")
	}
	if c.TLS.ACMEEmail != "" {
		if _, err := policy.CanonicalAddress(c.TLS.ACMEEmail); err != nil {
			return fmt.Errorf("config: tls.acme_email: %w", err)
		}
	}
	for _, l := range []struct {
		key string
		n   int64
	}{
		{"limits.message_bytes", c.Limits.MessageBytes},
		{"limits.recipients", int64(c.Limits.Recipients)},
		{"limits.line_length", int64(c.Limits.LineLength)},
		{"limits.connections", int64(c.Limits.Connections)},
		{"limits.connections_per_ip", int64(c.Limits.ConnectionsPerIP)},
		{"limits.command_timeout", int64(c.Limits.CommandTimeout)},
		{"limits.data_timeout", int64(c.Limits.DataTimeout)},
	} {
		if l.n <= 0 {
			return fmt.Errorf("config: %s: must be greater than zero", l.key)
		}
	}
	// RFC 5321 §4.5.3.1.6: a text line is at least 1000 octets with CRLF.
	if c.Limits.LineLength < 1000 {
		return errors.New("config: limits.line_length: must be at least 1000 (RFC 5321 §4.5.3.1.6)")
	}
	if c.Limits.ConnectionsPerIP > c.Limits.Connections {
		return errors.New("config: limits.connections_per_ip: must not exceed limits.connections")
	}
	if c.Limits.CommandTimeout < time.Second || c.Limits.DataTimeout < time.Second {
		return errors.New("config: limits.command_timeout/data_timeout: must be at least 1s")
	}
	if err := c.validateAddresses(); err != nil {
		return err
	}
	switch c.MTASTS.Mode {
	case "", "none", "testing", "enforce":
	default:
		return fmt.Errorf("config: mta_sts.mode: want none, testing or enforce, got %q", c.MTASTS.Mode)
	}
	if c.MTASTS.Mode == "testing" || c.MTASTS.Mode == "enforce" {
		if len(c.MTASTS.MX) == 0 {
			return errors.New("config: mta_sts.mx: needed when mta_sts.mode is testing or enforce")
		}
	}
	for _, mx := range c.MTASTS.MX {
		if err := checkHostname(strings.TrimPrefix(mx, "*.")); err != nil {
			return fmt.Errorf("config: mta_sts.mx: %q: %w", mx, err)
		}
	}
	// RFC 8461 §3.2: max_age up to 31557600 seconds.
	if c.MTASTS.MaxAge < time.Second || c.MTASTS.MaxAge > 31557600*time.Second {
		return errors.New("config: mta_sts.max_age: must be between 1s and 8766h")
	}
	if err := c.Autoconfig.validate(); err != nil {
		return err
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
	if err := c.KDF.validate(); err != nil {
		return err
	}
	return nil
}

// validateAddresses checks postmaster and aliases: every address canonical
// and local.
func (c *Config) validateAddresses() error {
	local := func(key, addr string) (string, error) {
		a, err := policy.CanonicalAddress(addr)
		if err != nil {
			return "", fmt.Errorf("config: %s: %w", key, err)
		}
		if !c.isLocalDomain(a) {
			return "", fmt.Errorf("config: %s: %q is not in a configured domain", key, addr)
		}
		return a, nil
	}
	if c.Postmaster != "" {
		a, err := local("postmaster", c.Postmaster)
		if err != nil {
			return err
		}
		c.Postmaster = a
	}
	aliases := make(map[string][]string, len(c.Aliases))
	for alias, targets := range c.Aliases {
		a, err := local("aliases", alias)
		if err != nil {
			return err
		}
		if len(targets) == 0 {
			return fmt.Errorf("config: aliases: %q has no target", alias)
		}
		ts := make([]string, 0, len(targets))
		for _, t := range targets {
			ta, err := local("aliases."+a, t)
			if err != nil {
				return err
			}
			ts = append(ts, ta)
		}
		aliases[a] = ts
	}
	c.Aliases = aliases
	return nil
}

// isLocalDomain reports whether a canonical address is in a configured
// domain.
func (c *Config) isLocalDomain(addr string) bool {
	_, domain, err := policy.SplitAddress(addr)
	return err == nil && slices.Contains(c.Domains, domain)
}

// Values of autoconfig.submission_tls.
const (
	submissionImplicitTLS = "tls"
	submissionStartTLS    = "starttls"
)

// validate checks autoconfig.submission and autoconfig.submission_tls and
// normalises the host (lower case, no trailing dot) and port (no leading
// zeros).
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
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if net.ParseIP(host) != nil {
		return fmt.Errorf("config: autoconfig.submission: %q: want a host name, not an IP address (clients check the certificate against it)", a.Submission)
	}
	if err := checkHostname(host); err != nil {
		return fmt.Errorf("config: autoconfig.submission: host in %q: %w", a.Submission, err)
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

// checkHostname accepts a DNS name (letters, digits, hyphens; labels of at
// most 63 bytes), as policy accepts domains.
func checkHostname(h string) error {
	if h == "" {
		return errors.New("must not be empty")
	}
	if _, _, err := policy.SplitAddress("postmaster@" + h); err != nil {
		return fmt.Errorf("%q is not a valid host name", h)
	}
	if h != strings.ToLower(h) {
		return fmt.Errorf("%q must be lower case", h)
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
		if err := checkHostname(host); err != nil {
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
