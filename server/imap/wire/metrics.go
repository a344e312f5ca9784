package wire

import "time"

// Metrics hears, for monitoring, every command a connection ran: its
// name (a command this package knows, "UID FETCH" for UID commands), the
// status of its tagged response ("OK", "NO" or "BAD") and how long it
// took, updates after it not included. It is told nothing else a client
// sent. Its method is called from connection goroutines: it must be
// cheap, must not block and must be safe for concurrent use.
type Metrics interface {
	Command(name, status string, d time.Duration)
}
