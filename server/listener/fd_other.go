//go:build !linux

package listener

import (
	"errors"
	"fmt"
	"syscall"
)

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns the new soft limit.
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

// OpenFiles is not implemented outside Linux.
func OpenFiles() (int, error) {
	return 0, errors.New("listener: counting open files needs /proc (Linux)")
}
