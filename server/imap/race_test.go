//go:build race

package imap

// raceEnabled: the race detector is on, and goroutine stacks are larger.
const raceEnabled = true
