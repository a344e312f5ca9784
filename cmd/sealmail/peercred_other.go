//go:build !linux

package main

import (
	"errors"
	"net"
)

// peerUID cannot check peer credentials here; the control socket refuses
// every connection rather than trust the file mode alone.
func peerUID(*net.UnixConn) (int, error) {
	return -1, errors.New("peer credentials are only checked on Linux")
}
