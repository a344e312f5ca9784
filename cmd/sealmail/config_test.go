package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/keyserver"
)

// clearEnv unsets every SEALMAIL_ variable for the test.
func clearEnv(t testing.TB) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, envPrefix+"_") {
			val, _ := os.LookupEnv(name)
			os.Unsetenv(name)
			t.Cleanup(func() { os.Setenv(name, val) })
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	c, file, err := loadConfig(loadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if file != "" {
		t.Errorf("file = %q, want none", file)
	}
	want := map[string]any{
		"data_dir":             "./sealmail-data",
		"hostname":             "localhost",
		"domains":              "[localhost]",
		"listen.smtp":          "127.0.0.1:2525",
		"listen.submission":    "127.0.0.1:1587",
		"listen.submissions":   "127.0.0.1:1465",
		"outbound.lifetime":    120 * time.Hour,
		"outbound.delay":       4 * time.Hour,
		"listen.imap":          "127.0.0.1:1143",
		"listen.imaps":         "127.0.0.1:1993",
		"listen.https":         "127.0.0.1:8443",
		"listen.pop3":          "127.0.0.1:1110",
		"listen.pop3s":         "127.0.0.1:1995",
		"limits.message_bytes": Size(50 << 20),
		"limits.recipients":    100,
		"command_timeout":      5 * time.Minute,
		"key.type":             "ed25519",
	}
	got := map[string]any{
		"data_dir": c.DataDir, "hostname": c.Hostname, "domains": "[" + strings.Join(c.Domains, " ") + "]",
		"listen.smtp": c.Listen.SMTP, "listen.submission": c.Listen.Submission, "listen.imap": c.Listen.IMAP,
		"listen.submissions": c.Listen.Submissions, "outbound.lifetime": c.Outbound.Lifetime, "outbound.delay": c.Outbound.DelayWarning,
		"listen.imaps": c.Listen.IMAPS, "listen.https": c.Listen.HTTPS,
		"listen.pop3": c.Listen.POP3, "listen.pop3s": c.Listen.POP3S,
		"limits.message_bytes": c.Limits.MessageBytes, "limits.recipients": c.Limits.Recipients,
		"command_timeout": c.Limits.CommandTimeout, "key.type": c.Key.Type,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}

// TestConfigPrecedence checks default < file < env < flag for one key, and
// that a file found as ./sealmail.yaml is read without --config.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, defaultConfigFile, "data_dir: /from/file\nhostname: mx.example.org\ndomains: [example.org]\nlisten:\n  smtp: 127.0.0.1:25\n")
	tests := []struct {
		name    string
		env     map[string]string
		flag    string
		wantDir string
	}{
		{"file", nil, "", "/from/file"},
		{"env over file", map[string]string{"SEALMAIL_DATA_DIR": "/from/env"}, "", "/from/env"},
		{"flag over env", map[string]string{"SEALMAIL_DATA_DIR": "/from/env"}, "/from/flag", "/from/flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			t.Chdir(dir)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			over := map[string]string{}
			if tt.flag != "" {
				over["data_dir"] = tt.flag
			}
			c, file, err := loadConfig(loadOptions{Overrides: over})
			if err != nil {
				t.Fatal(err)
			}
			if file != defaultConfigFile {
				t.Errorf("file = %q", file)
			}
			if c.DataDir != tt.wantDir {
				t.Errorf("data_dir = %q, want %q", c.DataDir, tt.wantDir)
			}
			if c.Hostname != "mx.example.org" || c.Listen.SMTP != "127.0.0.1:25" || c.Listen.IMAP != "127.0.0.1:1143" {
				t.Errorf("file values lost or defaults not merged: %+v", c)
			}
		})
	}
}

func TestConfigEnvWithoutFile(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	t.Setenv("SEALMAIL_LISTEN_SMTP", "0.0.0.0:25")
	t.Setenv("SEALMAIL_DOMAINS", "example.org, Example.NET")
	t.Setenv("SEALMAIL_LISTEN_IMAPS", "")
	t.Setenv("SEALMAIL_LIMITS_MESSAGE_BYTES", "10MiB")
	t.Setenv("SEALMAIL_LIMITS_DATA_TIMEOUT", "90s")
	t.Setenv("SEALMAIL_ALIASES", "info@example.org=a@example.org,b@example.net; sales@example.org=a@example.org")
	t.Setenv("SEALMAIL_TLS_ACME", "true")
	t.Setenv("SEALMAIL_AUTOCONFIG_SUBMISSION", "SMTP.Example.NET.:0587")
	t.Setenv("SEALMAIL_AUTOCONFIG_SUBMISSION_TLS", "starttls")
	c, _, err := loadConfig(loadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.SMTP != "0.0.0.0:25" {
		t.Errorf("listen.smtp = %q", c.Listen.SMTP)
	}
	if strings.Join(c.Domains, ",") != "example.org,example.net" {
		t.Errorf("domains = %q", c.Domains)
	}
	if c.Listen.IMAPS != "" {
		t.Errorf("empty env did not disable listen.imaps: %q", c.Listen.IMAPS)
	}
	if c.Limits.MessageBytes != 10<<20 || c.Limits.DataTimeout != 90*time.Second || !c.TLS.ACME {
		t.Errorf("limits/tls = %+v %+v", c.Limits, c.TLS)
	}
	if got := strings.Join(c.Aliases["info@example.org"], ","); got != "a@example.org,b@example.net" {
		t.Errorf("aliases = %v", c.Aliases)
	}
	// Host normalised (lower case, no trailing dot), port without zeros.
	if c.Autoconfig.Submission != "smtp.example.net:587" || c.Autoconfig.SubmissionTLS != "starttls" {
		t.Errorf("autoconfig = %+v", c.Autoconfig)
	}
}

// TestKeyserverOptionsAutoconfig checks what the keyserver is told: IMAP
// endpoints at hostname on the given ports (implicit TLS first), and the
// submission endpoint only when autoconfig.submission is set.
func TestKeyserverOptionsAutoconfig(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, dir, "on.yaml", "hostname: mx.example.org\ndomains: [example.org]\n"+
		"listen:\n  imap: 127.0.0.1:143\n  imaps: '[::1]:993'\n"+
		"autoconfig:\n  submission: relay.example.net:465\n  submission_tls: tls\n")
	c, _, err := loadConfig(loadOptions{File: "on.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	opt := keyserverOptions(c, nil, nil, configPorts(c))
	if opt.Hostname != "mx.example.org" || len(opt.IMAP) != 2 ||
		opt.IMAP[0] != (keyserver.Endpoint{Port: 993, TLS: keyserver.ImplicitTLS}) ||
		opt.IMAP[1] != (keyserver.Endpoint{Port: 143, TLS: keyserver.StartTLS}) {
		t.Errorf("IMAP endpoints %+v (hostname %q)", opt.IMAP, opt.Hostname)
	}
	if len(opt.Submission) != 1 || opt.Submission[0] != (keyserver.Endpoint{Host: "relay.example.net", Port: 465, TLS: keyserver.ImplicitTLS}) {
		t.Errorf("submission endpoints %+v", opt.Submission)
	}
	// Bound ports replace ephemeral ones; a disabled listener is left out.
	opt = keyserverOptions(c, nil, nil, clientPorts{imaps: 41993})
	if len(opt.IMAP) != 1 || opt.IMAP[0].Port != 41993 {
		t.Errorf("IMAP endpoints from bound ports %+v", opt.IMAP)
	}
	c.Autoconfig = AutoconfigConfig{Submission: "relay.example.net:587", SubmissionTLS: "starttls"}
	if opt := keyserverOptions(c, nil, nil, configPorts(c)); len(opt.Submission) != 1 || opt.Submission[0].TLS != keyserver.StartTLS || opt.Submission[0].Port != 587 {
		t.Errorf("starttls submission endpoints %+v", opt.Submission)
	}
	// Without the override, sealmail's own submission listeners, implicit
	// TLS first (RFC 8314 §3.3).
	c.Autoconfig = AutoconfigConfig{}
	opt = keyserverOptions(c, nil, nil, configPorts(c))
	if len(opt.Submission) != 2 || opt.Submission[0] != (keyserver.Endpoint{Port: 1465, TLS: keyserver.ImplicitTLS}) ||
		opt.Submission[1] != (keyserver.Endpoint{Port: 1587, TLS: keyserver.StartTLS}) {
		t.Errorf("submission endpoints without autoconfig.submission: %+v", opt.Submission)
	}
	c.Listen.Submission, c.Listen.Submissions = "", ""
	if opt := keyserverOptions(c, nil, nil, configPorts(c)); len(opt.Submission) != 0 {
		t.Errorf("submission endpoints without listeners: %+v", opt.Submission)
	}
}

// TestConfigErrors checks that every bad input names its key.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		want       string // substring of the error
	}{
		{"unknown key", "hostname: a.example\nlisten:\n  smpt: 1.2.3.4:25\n", nil, "unknown key listen.smpt"},
		{"unknown top key", "data_dri: /x\n", nil, "unknown key data_dri"},
		{"scalar where map", "listen: 127.0.0.1:25\n", nil, "unknown key listen"},
		{"bad yaml", "hostname: [\n", nil, "sealmail.yaml"},
		{"bad port", "listen:\n  smtp: 127.0.0.1:99999\n", nil, "listen.smtp"},
		{"bad listen", "listen:\n  imap: nonsense\n", nil, "listen.imap"},
		{"submission port", "listen:\n  submission: 127.0.0.1:99999\n", nil, "config: listen.submission: bad port"},
		{"submissions host", "listen:\n  submissions: 'bad host:465'\n", nil, "config: listen.submissions: bad host"},
		{"transport syntax", "outbound:\n  transports: [example.net]\n", nil, "config: outbound.transports: want domain=host:port"},
		{"transport port", "outbound:\n  transports: ['example.net=127.0.0.1:0']\n", nil, "config: outbound.transports: queue: transport for example.net: bad port"},
		{"transport twice", "outbound:\n  transports: ['a.test=h:25', 'a.test=g:25']\n", nil, "config: outbound.transports: a.test listed twice"},
		{"smarthost tls", "outbound:\n  smarthost: relay.example.net:587\n  smarthost_tls: maybe\n", nil, "config: outbound: queue: smarthost: TLS \"maybe\""},
		{"smarthost auth in clear", "outbound:\n  smarthost: relay.example.net:25\n  smarthost_tls: none\n  smarthost_username: u\n  smarthost_password_file: /p\n", nil, "AUTH needs TLS"},
		{"smarthost user alone", "outbound:\n  smarthost: relay.example.net:587\n  smarthost_username: u\n", nil, "config: outbound.smarthost_username and outbound.smarthost_password_file: set both or neither"},
		{"smarthost parts alone", "outbound:\n  smarthost_username: u\n", nil, "need outbound.smarthost"},
		{"delay past lifetime", "outbound:\n  lifetime: 1h\n  delay_warning: 2h\n", nil, "config: outbound.delay_warning: must be shorter"},
		{"lifetime long", "outbound:\n  lifetime: 1000h\n", nil, "config: outbound.lifetime: at most"},
		{"dns resolver", "dns:\n  resolver: 'not an address:x'\n", nil, "config: dns.resolver"},
		{"dkim retires before the queue gives up", "dkim:\n  retire_after: 48h\n", nil, "config: dkim.retire_after: must be longer than outbound.lifetime"},
		{"dkim retire_after short", "dkim:\n  retire_after: 1h\n", nil, "dkim.retire_after"},
		{"submission per ip", "limits:\n  submission_connections: 5\n  submission_connections_per_ip: 6\n", nil, "config: limits.submission_connections_per_ip"},
		{"bad duration", "limits:\n  command_timeout: 5\n", nil, "limits.command_timeout"},
		{"bad duration env", "", map[string]string{"SEALMAIL_LIMITS_DATA_TIMEOUT": "ten minutes"}, "limits.data_timeout"},
		{"bad int", "limits:\n  recipients: many\n", nil, "limits.recipients"},
		{"zero int", "limits:\n  recipients: 0\n", nil, "limits.recipients"},
		{"bad size", "limits:\n  message_bytes: 5 parsecs\n", nil, "limits.message_bytes"},
		{"bad bool", "", map[string]string{"SEALMAIL_TLS_ACME": "perhaps"}, "tls.acme"},
		{"list not string", "domains: example.org\nhostname: 5\n", nil, "hostname"},
		{"bad domain", "domains: [exa_mple.org]\n", nil, "domains"},
		{"no domains", "domains: []\n", nil, "domains"},
		{"dup domains", "domains: [a.org, A.org]\n", nil, "listed twice"},
		{"cert without key", "tls:\n  cert_file: /x.pem\n", nil, "tls.cert_file and tls.key_file"},
		{"key type", "key:\n  type: dsa\n", nil, "key.type"},
		{"log level", "", map[string]string{"SEALMAIL_LOG_LEVEL": "loud"}, "log.level"},
		{"log format", "log:\n  format: xml\n", nil, "log.format"},
		{"alias foreign target", "domains: [example.org]\naliases:\n  info@example.org: [x@elsewhere.net]\n", nil, "aliases"},
		{"alias foreign", "domains: [example.org]\naliases:\n  info@elsewhere.net: [a@example.org]\n", nil, "aliases"},
		{"postmaster foreign", "postmaster: root@elsewhere.net\n", nil, "postmaster"},
		{"mta-sts mode", "mta_sts:\n  mode: strict\n", nil, `config: mta_sts: keyserver: MTA-STS mode "strict": want enforce, testing or none`},
		{"mta-sts mx", "mta_sts:\n  mode: enforce\n", nil, "config: mta_sts: keyserver: MTA-STS mode enforce needs at least one mx"},
		{"mta-sts bad mx", "mta_sts:\n  mx: [mx_1.example.org]\n", nil, "config: mta_sts: keyserver: MTA-STS mx: policy: not a valid domain name"},
		{"mta-sts max age", "mta_sts:\n  max_age: 9000h\n", nil, "config: mta_sts: keyserver: MTA-STS max age"},
		{"autoconfig tls missing", "autoconfig:\n  submission: relay.example.net:465\n", nil, "autoconfig.submission_tls: required"},
		{"autoconfig tls plain", "autoconfig:\n  submission: relay.example.net:25\n  submission_tls: plain\n", nil, `autoconfig.submission_tls: want tls or starttls, got "plain"`},
		{"autoconfig tls none", "", map[string]string{"SEALMAIL_AUTOCONFIG_SUBMISSION": "relay.example.net:587", "SEALMAIL_AUTOCONFIG_SUBMISSION_TLS": "none"}, "autoconfig.submission_tls"},
		{"autoconfig tls case", "autoconfig:\n  submission: relay.example.net:587\n  submission_tls: STARTTLS\n", nil, "autoconfig.submission_tls"},
		{"autoconfig tls ssl", "autoconfig:\n  submission: relay.example.net:465\n  submission_tls: ssl\n", nil, "autoconfig.submission_tls"},
		{"autoconfig tls alone", "autoconfig:\n  submission_tls: tls\n", nil, "autoconfig.submission_tls: set without autoconfig.submission"},
		{"autoconfig no port", "autoconfig:\n  submission: relay.example.net\n  submission_tls: tls\n", nil, "autoconfig.submission: want host:port"},
		{"autoconfig port 0", "", map[string]string{"SEALMAIL_AUTOCONFIG_SUBMISSION": "relay.example.net:0", "SEALMAIL_AUTOCONFIG_SUBMISSION_TLS": "tls"}, "autoconfig.submission: bad port"},
		{"autoconfig port big", "autoconfig:\n  submission: relay.example.net:65536\n  submission_tls: tls\n", nil, "autoconfig.submission: bad port"},
		{"autoconfig port name", "autoconfig:\n  submission: relay.example.net:smtp\n  submission_tls: tls\n", nil, "autoconfig.submission: bad port"},
		{"autoconfig port sign", "autoconfig:\n  submission: relay.example.net:+465\n  submission_tls: tls\n", nil, "autoconfig.submission: bad port"},
		{"autoconfig no host", "autoconfig:\n  submission: ':465'\n  submission_tls: tls\n", nil, `config: autoconfig.submission: host: policy: not a valid domain name: ""`},
		{"autoconfig ipv4", "autoconfig:\n  submission: 192.0.2.1:465\n  submission_tls: tls\n", nil, "autoconfig.submission: \"192.0.2.1:465\": want a host name"},
		{"autoconfig ipv6", "autoconfig:\n  submission: '[2001:db8::1]:465'\n  submission_tls: tls\n", nil, "autoconfig.submission: \"[2001:db8::1]:465\": want a host name"},
		{"autoconfig bad host", "autoconfig:\n  submission: relay_1.example.net:465\n  submission_tls: tls\n", nil, `config: autoconfig.submission: host: policy: not a valid domain name: "relay_1.example.net"`},
		{"autoconfig list", "autoconfig:\n  submission: [relay.example.net:465]\n  submission_tls: tls\n", nil, "autoconfig.submission: want a string"},
		{"autoconfig unknown", "autoconfig:\n  imap: mail.example.org:993\n", nil, "unknown key autoconfig.imap"},
		{"kdf half", "kdf:\n  time: 1\n", nil, "kdf.time and kdf.memory_kib"},
		{"kdf tiny", "kdf:\n  time: 1\n  memory_kib: 8\n", nil, "kdf.memory_kib"},
		{"empty data dir", "", map[string]string{"SEALMAIL_DATA_DIR": ""}, "data_dir"},
		{"unknown env", "", map[string]string{"SEALMAIL_LIMITS_RECIPENTS": "5"}, "SEALMAIL_LIMITS_RECIPENTS matches no configuration key"},
		{"negative int", "limits:\n  recipients: -5\n", nil, "config: limits.recipients: want a non-negative integer"},
		{"fraction", "limits:\n  recipients: 2.5\n", nil, "config: limits.recipients: want a non-negative integer"},
		{"negative size", "", map[string]string{"SEALMAIL_LIMITS_MESSAGE_BYTES": "-1MiB"}, "config: limits.message_bytes: want a size"},
		{"zero duration", "limits:\n  idle_timeout: 0s\n", nil, "config: limits.idle_timeout: must be at least 1ms"},
		{"short line", "limits:\n  line_length: 999\n", nil, "config: limits: smtp: Limits.LineLength 999 is below 1000 (RFC 5321 §4.5.3.1.6)"},
		{"short timeout", "limits:\n  command_timeout: 500ms\n", nil, "config: limits.command_timeout: must be at least 1s"},
		{"per ip over total", "limits:\n  imap_connections: 10\n  imap_connections_per_ip: 11\n", nil, "config: limits.imap_connections_per_ip: listener: 11 connections per client exceed the total of 10"},
		{"kdf negative", "kdf:\n  time: -1\n  memory_kib: 2048\n", nil, "config: kdf.time: want a non-negative integer"},
		{"hostname ip", "hostname: 192.0.2.1\n", nil, "config: hostname: policy: not a valid domain name"},
		{"idn twice", "domains: [bücher.example, xn--bcher-kva.example]\n", nil, `config: domains: "xn--bcher-kva.example" listed twice`},
		{"alias map env", "", map[string]string{"SEALMAIL_ALIASES": "info@localhost"}, "config: aliases: want alias=address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			dir := t.TempDir()
			t.Chdir(dir)
			if tt.file != "" {
				writeFile(t, dir, defaultConfigFile, tt.file)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, _, err := loadConfig(loadOptions{})
			if err == nil {
				t.Fatalf("no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestConfigMissingFile(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	_, _, err := loadConfig(loadOptions{File: "nope.yaml"})
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v, want one naming nope.yaml", err)
	}
}

// TestConfigShowRoundTrip checks that `config show` output reads back as
// the same configuration.
func TestConfigShowRoundTrip(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, dir, "in.yaml", `data_dir: /srv/mail
hostname: mx.example.org
domains: [example.org, example.net]
aliases:
  info@example.org: [a@example.org, b@example.net]
postmaster: a@example.org
limits:
  message_bytes: 20MiB
  data_timeout: 2m30s
mta_sts:
  mode: enforce
  mx: [mx.example.org]
autoconfig:
  submission: relay.example.net:465
  submission_tls: tls
log:
  format: json
`)
	c1, _, err := loadConfig(loadOptions{File: "in.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := writeConfigYAML(&out, c1); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "out.yaml", out.String())
	c2, _, err := loadConfig(loadOptions{File: "out.yaml"})
	if err != nil {
		t.Fatalf("reading back:\n%s\n%v", out.String(), err)
	}
	var out2 bytes.Buffer
	if err := writeConfigYAML(&out2, c2); err != nil {
		t.Fatal(err)
	}
	if out.String() != out2.String() {
		t.Errorf("round trip differs:\n%s\n---\n%s", out.String(), out2.String())
	}
	for _, want := range []string{"data_timeout: 2m30s", "message_bytes: 20971520", "info@example.org:", "- b@example.net", "submission: relay.example.net:465", "submission_tls: tls"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config show lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRedact(t *testing.T) {
	type inner struct {
		SMTPPassword string `yaml:"smtp_password"`
		Name         string `yaml:"name"`
	}
	type outer struct {
		Relay  inner  `yaml:"relay"`
		Secret string `yaml:"client_secret"`
	}
	var out bytes.Buffer
	if err := writeYAMLRedacted(&out, outer{Relay: inner{SMTPPassword: "hunter2hunter2", Name: "relay"}, Secret: "s3cr3t"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "hunter2") || strings.Contains(out.String(), "s3cr3t") {
		t.Errorf("secret shown:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "name: relay") || strings.Count(out.String(), redacted) != 2 {
		t.Errorf("unexpected output:\n%s", out.String())
	}
}

func TestPasswordRules(t *testing.T) {
	tests := []struct {
		pw string
		ok bool
	}{
		{"", false},
		{"short", false},
		{"elevenchars", false},
		{"twelve chars", true},
		{"ünïcödé pässwörd", true},
		{"tab\tinside the password", false},
		{"bad utf8 \xff\xfe padding", false},
		{strings.Repeat("a", maxPasswordBytes), true},
		{strings.Repeat("a", maxPasswordBytes+1), false},
	}
	for _, tt := range tests {
		err := checkPassword([]byte(tt.pw))
		if (err == nil) != tt.ok {
			t.Errorf("checkPassword(%.20q) = %v, want ok=%v", tt.pw, err, tt.ok)
		}
	}
}

func TestLineReader(t *testing.T) {
	l := newLineReader(strings.NewReader("first password\r\nsecond password\nlast-no-newline"))
	for _, want := range []string{"first password", "second password", "last-no-newline"} {
		got, err := l.next()
		if err != nil || string(got) != want {
			t.Fatalf("next = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := l.next(); err == nil {
		t.Fatal("no error at end of input")
	}
	long := newLineReader(strings.NewReader(strings.Repeat("x", 5000) + "\n"))
	if _, err := long.next(); err == nil {
		t.Fatal("over-long line accepted")
	}
}

// TestInterruptiblePrompt: SIGINT/SIGTERM (the command's context) ends a
// read that would block forever, after restoring the terminal.
func TestInterruptiblePrompt(t *testing.T) {
	r, w, err := os.Pipe() // never written: the read blocks
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{ctx: ctx, lines: newLineReader(r)}
	restored := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := e.interruptible(e.lines.next, func() { close(restored) })
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, errInterrupted) {
		t.Errorf("interrupted read: %v", err)
	}
	select {
	case <-restored:
	default:
		t.Error("terminal not restored")
	}
	// Without an interruption the line comes through.
	e = &env{ctx: context.Background(), lines: newLineReader(strings.NewReader("a secret\n"))}
	if b, err := e.interruptible(e.lines.next, nil); err != nil || string(b) != "a secret" {
		t.Errorf("read %q, %v", b, err)
	}
}

// TestConfigKeyTags: every key's default and minimum parse as its type,
// so a typo in a tag fails here rather than at an operator's start-up.
func TestConfigKeyTags(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range configKeys() {
		if k.name == "" || strings.Contains(k.name, "..") || seen[k.name] {
			t.Errorf("bad or duplicate key name %q", k.name)
		}
		seen[k.name] = true
		if _, err := configHook(nil, k.typ, k.def); err != nil && k.typ != typeAliases {
			t.Errorf("%s: default %q: %v", k.name, k.def, err)
		}
		if k.min != "" {
			if _, err := configHook(nil, k.typ, k.min); err != nil {
				t.Errorf("%s: min %q: %v", k.name, k.min, err)
			}
		}
	}
	if len(seen) < 30 {
		t.Errorf("only %d keys found", len(seen))
	}
}

// TestConfigInternationalDomain: IDN domains may be written either way;
// the configuration holds the canonical A-label form everywhere.
func TestConfigInternationalDomain(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	c, err := parseConfigBytes([]byte("hostname: MX.Bücher.example.\ndomains: [Bücher.example, example.org]\n" +
		"postmaster: Jörg@bücher.example\naliases:\n  info@xn--bcher-kva.example: [jörg@Bücher.example]\n" +
		"mta_sts:\n  mode: enforce\n  mx: ['*.bücher.example']\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "mx.xn--bcher-kva.example" || strings.Join(c.Domains, " ") != "xn--bcher-kva.example example.org" ||
		c.Postmaster != "jörg@xn--bcher-kva.example" || strings.Join(c.Aliases["info@xn--bcher-kva.example"], " ") != "jörg@xn--bcher-kva.example" {
		t.Errorf("not canonical: %+v", c)
	}
	var out bytes.Buffer
	if err := writeConfigYAML(&out, c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "- xn--bcher-kva.example # bücher.example\n") {
		t.Errorf("config show does not name the IDN for people:\n%s", out.String())
	}
	if c2, err := parseConfigBytes(out.Bytes()); err != nil || strings.Join(c2.Domains, " ") != strings.Join(c.Domains, " ") {
		t.Errorf("config show does not read back: %v", err)
	}
}

// TestConfigErrorPrefixes: no error repeats a prefix ("keyserver:
// keyserver:"), whichever layer it comes from.
func TestConfigErrorPrefixes(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	for _, yaml := range []string{
		"domains: [exa_mple.org]\n", "hostname: 'a b'\n", "mta_sts:\n  mode: strict\n", "mta_sts:\n  mx: [a_b.example]\n",
		"postmaster: x@elsewhere.test\n", "aliases:\n  a@localhost: [b@elsewhere.test]\n", "limits:\n  line_length: 10\n",
		"autoconfig:\n  submission: a_b.example:465\n  submission_tls: tls\n", "tls:\n  acme_email: 'not an address'\n",
	} {
		_, err := parseConfigBytes([]byte(yaml))
		if err == nil {
			t.Errorf("%q accepted", yaml)
			continue
		}
		seen := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?:^|: )([a-z]+): `).FindAllStringSubmatch(err.Error(), -1) {
			if seen[m[1]] {
				t.Errorf("%q: error repeats %q: %v", yaml, m[1]+":", err)
			}
			seen[m[1]] = true
		}
	}
}

// TestConfigShowEffectiveKDF: issue 14 found `config show` printing
// "kdf: time: 0, memory_kib: 0"; it prints the cost in force.
func TestConfigShowEffectiveKDF(t *testing.T) {
	te := newTestEnv(t)
	r := te.ok("", "config", "show")
	if !strings.Contains(r.stdout, "kdf:\n  time: 1\n  memory_kib: 1024\n") {
		t.Errorf("config show with the test KDF:\n%s", r.stdout)
	}
	te.unsetenv("SEALMAIL_KDF_TIME", "SEALMAIL_KDF_MEMORY_KIB")
	r = te.ok("", "config", "show")
	d := crypto.DefaultKDF()
	if want := fmt.Sprintf("kdf:\n  time: %d\n  memory_kib: %d\n", d.Time, d.MemoryKiB); !strings.Contains(r.stdout, want) {
		t.Errorf("config show without kdf.* lacks %q:\n%s", want, r.stdout)
	}
}
