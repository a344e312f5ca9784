package wire

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type recordMetrics struct {
	mu   sync.Mutex
	seen []string
}

func (m *recordMetrics) Command(name, status string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d < 0 {
		name = "negative duration"
	}
	m.seen = append(m.seen, name+" "+status)
}

// TestMetrics: every command that ran is heard once, with its name and
// the status of its tagged response; a client's arguments are not.
func TestMetrics(t *testing.T) {
	m := &recordMetrics{}
	addr, _ := startServer(t, newMemBackend(), func(o *Options) { o.Metrics = m })
	c := dial(t, addr)
	c.send(`a LOGIN user wrong-secret`)
	c.expectRe(`^a NO `)
	c.send(`b LOGIN user pass`)
	c.expectRe(`^b OK `)
	c.send(`c SELECT INBOX`)
	for !strings.HasPrefix(c.line(), "c OK") {
	}
	c.send(`d UID FETCH 1:* FLAGS`)
	for !strings.HasPrefix(c.line(), "d OK") {
	}
	c.send(`e LOGOUT`)
	for !strings.HasPrefix(c.line(), "e OK") {
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	want := []string{"LOGIN NO", "LOGIN OK", "SELECT OK", "UID FETCH OK"}
	if len(m.seen) < len(want) || !slices.Equal(m.seen[:len(want)], want) {
		t.Errorf("heard %q, want %q first", m.seen, want)
	}
	for _, s := range m.seen {
		if strings.Contains(s, "secret") || strings.Contains(s, "negative") {
			t.Errorf("heard %q", s)
		}
	}
}
