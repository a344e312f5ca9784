package listener

import (
	"fmt"
	"os"
	"syscall"
)

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit, so that
// the server can use every descriptor it is allowed, and returns the new
// soft limit.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("listener: getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return rl.Cur, fmt.Errorf("listener: raise RLIMIT_NOFILE to %d: %w", rl.Max, err)
		}
		rl = want
	}
	return rl.Cur, nil
}

// OpenFiles returns how many descriptors the process has open.
func OpenFiles() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("listener: count open files: %w", err)
	}
	return len(ents) - 1, nil // ReadDir's own descriptor is listed too
}
