package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// secureDataDir creates the data directory if needed and makes sure that
// it, and everything in it, is private to uid (the user sealmail runs
// as): directories 0700, files 0600. A directory made by hand, restored
// from a backup or copied with loose permissions is tightened, with a
// warning naming how many paths changed; the umask makes everything
// sealmail creates private from the start. Anything owned by another
// user is refused, not taken over: a data directory that is not ours is
// an operator's mistake (wrong user, wrong path) to fix, not to hide.
// Symbolic links are neither followed nor changed, except the data
// directory itself, which may be one.
func secureDataDir(dir string, uid int, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	root, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !root.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	var tightened []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi := root
		if path != dir {
			if d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			if fi, err = d.Info(); err != nil {
				return err
			}
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
			return fmt.Errorf("%s belongs to uid %d, but sealmail runs as uid %d: refusing to use a data directory that is not its own (run sealmail as that user, or chown -R the data directory)",
				path, st.Uid, uid)
		}
		want := fs.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm()&^want != 0 {
			if err := os.Chmod(path, fi.Mode().Perm()&want); err != nil {
				return err
			}
			tightened = append(tightened, fmt.Sprintf("%s (%04o)", path, fi.Mode().Perm()))
		}
		return nil
	})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("data directory: %w", err)
		}
		return err
	}
	if len(tightened) > 0 {
		first := tightened[0]
		log.Warn(fmt.Sprintf("data directory %s had permissions open to other users; tightened %d paths to 0700 (directories) and 0600 (files), the first %s", dir, len(tightened), first))
	}
	return nil
}
