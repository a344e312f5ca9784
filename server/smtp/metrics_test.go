package smtp

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordMetrics records what the server tells Metrics.
type recordMetrics struct {
	mu       sync.Mutex
	commands []string // "VERB code enhanced"
	messages []string // "code enhanced"
	maxD     time.Duration
}

func (m *recordMetrics) Command(verb string, code int, enh string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.commands = append(m.commands, strings.TrimSpace(verb+" "+strconv.Itoa(code)+" "+enh))
}

func (m *recordMetrics) Message(code int, enh string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.messages = append(m.messages, strconv.Itoa(code)+" "+enh)
	m.maxD = max(m.maxD, d)
}

// TestMetrics: every command is counted with its verb and final reply,
// unknown and unparsable ones as "other"; every message whose data
// ended is counted once with its reply, delivered or refused.
func TestMetrics(t *testing.T) {
	m := &recordMetrics{}
	e := newEnv(t, func(o *Options) {
		o.Metrics = m
		o.Limits.MessageBytes = 1 << 10
	})
	rc := dialRaw(t, e.addr)
	rc.begin("alice@example.org")
	rc.cmd("RCPT TO:<nobody@example.org>", "550 ")
	rc.cmd("RCPT TO:<someone@elsewhere.test>", "550 ")
	rc.cmd("DATA", "354 ")
	rc.send("Subject: hi\r\n\r\nhello\r\n.\r\n")
	rc.expect("250 ")
	rc.begin("alice@example.org")
	rc.cmd("DATA", "354 ")
	rc.send("Subject: big\r\n\r\n" + strings.Repeat("x", 2000) + "\r\n.\r\n")
	rc.expect("552 ")
	rc.cmd("FROB secret-argument", "500 ")
	rc.cmd("\x01\x02", "5")
	rc.cmd("QUIT", "221 ")
	m.mu.Lock()
	defer m.mu.Unlock()
	want := []string{
		"EHLO 250", "MAIL 250 2.1.0", "RCPT 250 2.1.5", "RCPT 550 5.1.1", "RCPT 550 5.7.1", "DATA 250 2.0.0",
		"EHLO 250", "MAIL 250 2.1.0", "RCPT 250 2.1.5", "DATA 552 5.3.4", "other 500 5.5.2", "other", "QUIT 221 2.0.0",
	}
	if len(m.commands) != len(want) {
		t.Fatalf("commands %q, want %q", m.commands, want)
	}
	for i := range want {
		if !strings.HasPrefix(m.commands[i], want[i]) {
			t.Errorf("command %d: %q, want %q", i, m.commands[i], want[i])
		}
	}
	for _, c := range m.commands {
		if strings.Contains(c, "secret") || strings.Contains(c, "FROB") {
			t.Errorf("a client's text reached Metrics: %q", c)
		}
	}
	if len(m.messages) != 2 || m.messages[0] != "250 2.0.0" || m.messages[1] != "552 5.3.4" {
		t.Errorf("messages %q", m.messages)
	}
	if m.maxD <= 0 || m.maxD > time.Minute {
		t.Errorf("delivery latency %v", m.maxD)
	}
}
