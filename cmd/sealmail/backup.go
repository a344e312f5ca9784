package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

func init() {
	registerOp(&controlOp{name: "store.backup", local: true, long: true, run: opBackup})
	register(
		&command{name: "backup", args: "FILE|-", summary: "write an online backup of the store to FILE (- for standard output), while the server runs or not",
			run: runBackup},
		&command{name: "restore", args: "FILE|-", summary: "restore a backup into the configured data directory, which must be absent or empty",
			run: runRestore},
	)
}

// A backup file is one header line (backupHeader as JSON), then the
// store's backup stream (store.Backuper), whose last 32 bytes are the
// SHA-256 of the rest of the stream.
const (
	backupFormat   = "sealmail-backup"
	backupVersion  = 1
	maxHeaderBytes = 4 << 10
)

// backupHeader describes a backup file.
type backupHeader struct {
	Format   string    `json:"format"`  // backupFormat
	Version  int       `json:"version"` // backupVersion
	Store    string    `json:"store"`   // the backend: "badger"
	Created  time.Time `json:"created"`
	Sealmail string    `json:"sealmail"` // the version that wrote it
	Hostname string    `json:"hostname"` // the configured host name
	DataDir  string    `json:"data_dir"`
}

// backupStart is the answer of store.backup before its stream.
type backupStart struct {
	Estimate int64 `json:"estimate"` // bytes, roughly
}

// opBackup streams the header and the store's backup.
func opBackup(ctx context.Context, b *backend, req *opRequest) (any, error) {
	bk, ok := b.st.(store.Backuper)
	if !ok {
		return nil, adminErrorf(nil, "this store has no online backup")
	}
	var estimate int64
	if sr, ok := b.st.(store.SizeReporter); ok {
		for _, n := range sr.Sizes() {
			estimate += n
		}
	}
	w, err := req.Stream(backupStart{Estimate: estimate})
	if err != nil {
		return nil, err
	}
	h := backupHeader{Format: backupFormat, Version: backupVersion, Store: "badger", Created: time.Now().UTC(),
		Sealmail: readBuildInfo().String(), Hostname: b.cfg.Hostname, DataDir: b.cfg.DataDir}
	if err := json.NewEncoder(w).Encode(h); err != nil {
		return nil, err
	}
	start := time.Now()
	info, err := bk.Backup(ctx, w)
	if err != nil {
		return nil, err
	}
	b.log.Info("backup written", "proto", "control", "records", info.Records, "bytes", info.Bytes, "duration", time.Since(start))
	return nil, nil
}

func runBackup(ctx context.Context, e *env, args []string) (err error) {
	if len(args) != 1 {
		return usagef("want FILE (or - for standard output)")
	}
	path := args[0]
	if _, err := e.config(); err != nil {
		return err
	}
	var (
		out  io.Writer = e.io.out
		file *os.File
	)
	if path != "-" {
		// A new file next to the target, renamed over it once complete
		// and synced: an older backup at path stays whole until then.
		file, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		defer func() {
			if err != nil {
				file.Close()
				os.Remove(file.Name())
			}
		}()
		if err := file.Chmod(0o600); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		out = file
	}
	p := e.progress("backup", unitBytes)
	var (
		start backupStart
		sum   tailSum
		n     int64
	)
	err = e.callOp(ctx, "store.backup", opCall{Stream: func(r io.Reader) error {
		p.SetTotal(start.Estimate)
		br := bufio.NewReader(r)
		header, err := readBackupHeader(br)
		if err != nil {
			return err
		}
		hb, _ := json.Marshal(header)
		if _, err := fmt.Fprintf(out, "%s\n", hb); err != nil {
			return err
		}
		sum.h = sha256.New()
		cw := &countingWriter{w: io.MultiWriter(out, &sum), p: p}
		_, err = io.Copy(cw, br)
		n = int64(len(hb)+1) + cw.n
		return err
	}}, &start)
	p.Done()
	if err != nil {
		return err
	}
	if !sum.ok() {
		return errors.New("the backup stream ended early or is damaged (the server log may say why); nothing was written")
	}
	if file != nil {
		if err := file.Sync(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := file.Close(); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := os.Rename(file.Name(), path); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		fmt.Fprintf(e.io.err, "backup written to %s: %s, checked (SHA-256 %x)\n"+
			"It is as sealed as the data directory, and as sensitive: keep it as safe.\n",
			path, formatBytes(n), sum.tail)
	}
	return nil
}

// readBackupHeader reads and checks a backup file's header line.
func readBackupHeader(br *bufio.Reader) (backupHeader, error) {
	var h backupHeader
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) || len(line) >= maxHeaderBytes {
			return h, errors.New("not a sealmail backup (no header line)")
		}
		return h, fmt.Errorf("not a sealmail backup: %w", err)
	}
	if len(line) > maxHeaderBytes || json.Unmarshal(line, &h) != nil || h.Format != backupFormat {
		return h, errors.New("not a sealmail backup")
	}
	if h.Version != backupVersion {
		return h, fmt.Errorf("a sealmail backup of version %d, which this sealmail (version %d backups) cannot read", h.Version, backupVersion)
	}
	if h.Store != "badger" {
		return h, fmt.Errorf("a backup of a %q store; this sealmail restores badger stores", h.Store)
	}
	return h, nil
}

// tailSum checks, as a stream goes through it, that its last 32 bytes
// are the SHA-256 of everything before them (store.Backuper's promise).
type tailSum struct {
	h    hash.Hash
	tail []byte // the last (up to) 32 bytes seen, not hashed yet
}

func (t *tailSum) Write(p []byte) (int, error) {
	n := len(p)
	buf := append(t.tail, p...)
	if len(buf) > sha256.Size {
		t.h.Write(buf[:len(buf)-sha256.Size])
		buf = buf[len(buf)-sha256.Size:]
	}
	t.tail = append(t.tail[:0], buf...)
	return n, nil
}

func (t *tailSum) ok() bool {
	return t.h != nil && len(t.tail) == sha256.Size && string(t.h.Sum(nil)) == string(t.tail)
}

func runRestore(ctx context.Context, e *env, args []string) (err error) {
	if len(args) != 1 {
		return usagef("want FILE (or - for standard input)")
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	var (
		in    io.Reader = e.io.in
		total int64
	)
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			total = fi.Size()
		}
		in = f
	}
	// The target must not hold anything: a restore never merges into,
	// or replaces, a data directory in use.
	created, err := emptyDataDir(c.DataDir)
	if err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		// Leave the data directory as it was: absent, or empty.
		if created {
			os.RemoveAll(c.DataDir)
			return
		}
		if entries, rerr := os.ReadDir(c.DataDir); rerr == nil {
			for _, en := range entries {
				os.RemoveAll(filepath.Join(c.DataDir, en.Name()))
			}
		}
	}()
	p := e.progress("restore", unitBytes)
	p.SetTotal(total)
	br := bufio.NewReaderSize(&countingReader{r: in, p: p}, 1<<20)
	h, err := readBackupHeader(br)
	if err != nil {
		p.Done()
		return err
	}
	info, err := badgerstore.Restore(p.context(ctx), c.storeDir(), br, badgerstore.Options{})
	p.Done()
	if errors.Is(err, store.ErrBadBackup) {
		return adminErrorf(err, "%v; nothing was restored", err)
	}
	if err != nil {
		return err
	}
	// Open once as serve would: this finishes what the backup caught in
	// progress (a deletion) and checks that the store opens.
	st, err := openStore(c, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	accts, err := st.PublicAccounts(ctx)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.io.out, "restored %d account(s), %d records (%s) into %s\n  from a backup of %s (%s) taken %s by sealmail %s\n",
		len(accts), info.Records, formatBytes(info.Bytes), c.DataDir, h.DataDir, h.Hostname,
		h.Created.Format(time.DateTime+" MST"), h.Sealmail)
	fmt.Fprintln(e.io.out, "  the TLS certificate is not in a backup: the self-signed one is made anew, ACME fetches its certificates again")
	return nil
}

// emptyDataDir makes sure dir is absent (it is created, mode 0700) or an
// empty directory, and says whether it created it.
func emptyDataDir(dir string) (created bool, err error) {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("data directory: %w", err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("data directory: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return false, adminErrorf(nil, "data directory %s is not a directory", dir)
	}
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("data directory: %w", err)
	}
	if len(names) > 0 {
		return false, adminErrorf(store.ErrNotEmpty, "data directory %s is not empty: restore writes only into an absent or empty data directory (move the old one away, or set --data-dir)", dir)
	}
	return false, nil
}
