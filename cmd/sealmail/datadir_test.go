package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// loosen makes dir's tree readable by everyone, as a careless copy or a
// restore with the wrong umask would.
func loosen(t *testing.T, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 || fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		if fi.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkPrivate fails unless nothing under dir is open to group or others.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return err
		}
		n++
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %04o", p, fi.Mode().Perm())
		}
		return nil
	})
	if n < 3 {
		t.Errorf("only %d paths under %s", n, dir)
	}
}

// TestServeTightensDataDir: a data directory whose store and certificate
// are readable by others (issue 9 item 12) is made private at start-up,
// with a warning, and the server runs.
func TestServeTightensDataDir(t *testing.T) {
	te := newTestEnv(t)
	te.ok(alicePW+"\n", "user", "add", "alice@example.org", "--password-stdin")
	s := te.serve() // makes tls/
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	loosen(t, te.dataDir)
	if fi, _ := os.Stat(filepath.Join(te.dataDir, "tls", selfSignedKey)); fi.Mode().Perm() != 0o644 {
		t.Fatalf("test setup: key is %04o", fi.Mode().Perm())
	}
	s = te.serve()
	if !strings.Contains(s.logs(), "had permissions open to other users; tightened") {
		t.Errorf("tightening not logged:\n%s", s.logs())
	}
	checkPrivate(t, te.dataDir)
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// TestSecureDataDir: loose modes are tightened (symbolic links are left
// alone), and a tree that belongs to another user is refused, named, and
// left unchanged.
func TestSecureDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, d := range []string{"store", "tls"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "tls", "selfsigned.key"), []byte("key"), 0o644)
	os.WriteFile(filepath.Join(dir, "store", "000001.vlog"), []byte("x"), 0o666)
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("not ours to change"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "tls", "link"))
	loosen(t, dir)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	// Another owner: refused before anything changes.
	err := secureDataDir(dir, os.Geteuid()+1, log)
	if err == nil || !strings.Contains(err.Error(), "refusing to use a data directory that is not its own") {
		t.Fatalf("other owner: %v", err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o755 {
		t.Errorf("refused directory changed to %04o", fi.Mode().Perm())
	}

	if err := secureDataDir(dir, os.Geteuid(), log); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir)
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o644 {
		t.Errorf("followed a symbolic link: %s is %04o", outside, fi.Mode().Perm())
	}
	if !strings.Contains(logs.String(), "tightened 5 paths") {
		t.Errorf("log: %s", logs.String())
	}
	logs.Reset()
	if err := secureDataDir(dir, os.Geteuid(), log); err != nil || logs.Len() != 0 {
		t.Errorf("second run: %v, logged %q", err, logs.String())
	}
	// A missing directory is created private.
	fresh := filepath.Join(t.TempDir(), "new", "data")
	if err := secureDataDir(fresh, os.Geteuid(), log); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("fresh data directory: %v %v", fi, err)
	}
}

// TestFreshDataDirSize: issue 14 found a fresh data directory showing a
// 512 MiB (sparse) value-log file while the server runs, which looks
// alarming and trips backups that do not handle sparse files. With the
// default limits the files badger maps are at most 128 MiB each, and the
// data directory at most 200 MiB in all.
func TestFreshDataDirSize(t *testing.T) {
	te := newTestEnv(t)
	s := te.serve()
	var total int64
	err := filepath.Walk(te.dataDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		total += fi.Size()
		if fi.Size() > 128<<20 {
			t.Errorf("%s: %d MiB", p, fi.Size()>>20)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > 200<<20 {
		t.Errorf("a fresh data directory holds %d MiB (apparent size)", total>>20)
	}
	if err := s.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}
