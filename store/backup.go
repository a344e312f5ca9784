package store

import (
	"context"
	"errors"
	"io"
)

// Backuper is an optional ability of a Store: an online backup. A backend
// that has it also offers a way to restore what it wrote into a new,
// empty store (badgerstore.Restore); both are in its own format.
type Backuper interface {
	// Backup writes a consistent snapshot of everything in the store to
	// w while the store keeps serving: one point in time, so counters
	// and messages agree. What it writes is exactly as sealed as the
	// store: sealed mail, summaries and session keys, wrapped keys and
	// unlock slots, and the metadata SECURITY.md lists as clear; no
	// deleted rows and no older versions. Whatever the backend's format,
	// the stream's last 32 bytes are the SHA-256 of every byte before
	// them, so that a copy can be checked without knowing the format,
	// and a truncated or damaged copy fails to restore. It reports its
	// progress (bytes written, of an estimate) with ReportProgress and
	// stops when ctx ends.
	Backup(ctx context.Context, w io.Writer) (BackupInfo, error)
}

// BackupInfo says what a backup or a restore copied.
type BackupInfo struct {
	Records int64 // rows
	Bytes   int64 // the backup stream's length
}

// ErrNotEmpty: a restore needs an empty target, and it is not.
var ErrNotEmpty = errors.New("store: restore target is not empty")

// ErrBadBackup: the backup stream is not one, is damaged or was cut
// short. Nothing usable was restored.
var ErrBadBackup = errors.New("store: not a complete backup")
