package account

import (
	"sync"
	"testing"
	"time"
)

// countingMetrics records what the service tells Metrics.
type countingMetrics struct {
	mu      sync.Mutex
	logins  map[LoginResult]int
	unlocks map[bool]int
}

func (m *countingMetrics) Login(r LoginResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.logins[r]++
}

func (m *countingMetrics) Unlock(cached bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unlocks[cached]++
}

// TestMetrics: every Login is counted once with its outcome, every
// unlock with where it came from; SessionCount and Derivations follow.
func TestMetrics(t *testing.T) {
	m := &countingMetrics{logins: map[LoginResult]int{}, unlocks: map[bool]int{}}
	s, _ := newService(t, Options{Metrics: m, UnlockCache: time.Minute})
	mustCreate(t, s, alice, alicePW)
	before := s.Derivations()
	sess1 := mustLogin(t, s, "192.0.2.1:1000", alice, alicePW) // argon2id
	mustLogin(t, s, "192.0.2.1:1001", alice, alicePW)          // from the cache
	if _, err := login(s, "192.0.2.1:1002", alice, "wrong password!"); err == nil {
		t.Fatal("wrong password logged in")
	}
	if _, err := login(s, "192.0.2.1:1003", "nobody@example.org", alicePW); err == nil {
		t.Fatal("unknown account logged in")
	}
	if got := s.SessionCount(); got != 2 {
		t.Errorf("SessionCount %d, want 2", got)
	}
	sess1.Close()
	if got := s.SessionCount(); got != 1 {
		t.Errorf("SessionCount after a logout %d, want 1", got)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.logins[LoginOK] != 2 || m.logins[LoginFailed] != 2 || len(m.logins) != 2 {
		t.Errorf("logins %v", m.logins)
	}
	if m.unlocks[false] != 1 || m.unlocks[true] != 1 {
		t.Errorf("unlocks %v", m.unlocks)
	}
	// One real derivation, and at least one each for the two failures.
	if d := s.Derivations() - before; d < 3 {
		t.Errorf("derivations %d", d)
	}
	for r, want := range map[LoginResult]string{LoginOK: "ok", LoginFailed: "failed", LoginThrottled: "throttled", LoginUnavailable: "unavailable"} {
		if r.String() != want {
			t.Errorf("%d.String() = %q", r, r.String())
		}
	}
}
