package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// serverKeySize is the server key's size: 32 bytes (AES-256), what
// server/smtp/queue and server/smtp/trace derive their keys from.
const serverKeySize = 32

// serverKeyPath is where the server key lives: server_key_file, or
// <data_dir>/server.key.
func (c *Config) serverKeyPath() string {
	if c.ServerKeyFile != "" {
		return c.ServerKeyFile
	}
	return filepath.Join(c.DataDir, "server.key")
}

// loadServerKey reads the server key, the secret under which the server
// seals what it must read itself (the outbound queue, the delivery
// trace): serverKeySize random bytes in a file of its own, mode 0600.
// The default file is made at first use; a configured one must exist
// (it was kept apart on purpose, and a new key would orphan what the old
// one sealed).
func loadServerKey(c *Config) ([]byte, error) {
	path := c.serverKeyPath()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && c.ServerKeyFile == "" {
		return makeServerKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("server key: %w", err)
	}
	if len(b) != serverKeySize {
		return nil, fmt.Errorf("server key %s: %d bytes, want %d", path, len(b), serverKeySize)
	}
	return b, nil
}

// makeServerKey writes a new key to path (temp file, fsync, link, fsync
// of the directory) and returns it; if another process made one
// meanwhile, that one is returned.
func makeServerKey(path string) ([]byte, error) {
	k := make([]byte, serverKeySize)
	rand.Read(k) // never fails (crypto/rand, Go 1.24+)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("server key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".server.key-*")
	if err != nil {
		return nil, fmt.Errorf("server key: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(k)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Link, not rename: a key made meanwhile by another process
		// wins, and is the one read back.
		err = os.Link(tmp.Name(), path)
		if errors.Is(err, os.ErrExist) {
			return loadServerKey(&Config{ServerKeyFile: path})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("server key: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return k, nil
}
