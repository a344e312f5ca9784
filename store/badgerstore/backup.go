package badgerstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"

	"github.com/sealmail/sealmail/store"
)

var _ store.Backuper = (*DB)(nil)

// The backup stream (version 2):
//
//	"sealmail badgerstore backup 2\n"
//	record*       uvarint(len(key)) key uvarint(len(value)) value [file]; len(key) ≥ 1
//	end           uvarint(0) uvarint(records) SHA-256 of every byte before the hash
//
// Records are the store's rows, latest version only, in key order. A
// blob file's record (K <acct> <blob>, whose value is the file's size)
// is followed by the file's bytes, exactly that many. The format is the
// store's own, not badger's backup format, so that it carries no badger
// internals (versions, deletion markers) and a restore writes only live
// rows. Restore reads version 1 too (no files: large blobs were rows
// then, which Open moves to files).
const backupMagic = "sealmail badgerstore backup 2\n"

// backupMagicV1 starts the streams of older versions.
const backupMagicV1 = "sealmail badgerstore backup 1\n"

// maxBackupKey bounds a key in a backup stream; the store's longest key
// is a prefix, two IDs and a mailbox name or address.
const maxBackupKey = 64 << 10

// maxBackupValue bounds a value in a backup stream; badger's own limit
// (the value-log file size) is lower.
const maxBackupValue = 1 << 30

// backupBuffer is the write buffer of a backup: values are written in
// place from badger's value log, so memory stays bounded whatever the
// size of a message.
const backupBuffer = 256 << 10

// backupProgressEvery bounds how often Backup reports progress.
const backupProgressEvery = 1 << 20

// Backup implements store.Backuper. It reads one badger snapshot (a
// read-only transaction) key by key, and the blob files it names;
// writers go on meanwhile. No blob file is unlinked while it runs
// (blobsMu), and a linked file never changes, so the files agree with
// the snapshot.
func (db *DB) Backup(ctx context.Context, w io.Writer) (store.BackupInfo, error) {
	if err := db.enter(ctx); err != nil {
		return store.BackupInfo{}, err
	}
	defer db.leave()
	db.blobsMu.RLock()
	defer db.blobsMu.RUnlock()
	var estimate int64
	for _, n := range db.Sizes() {
		estimate += n
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	bw := bufio.NewWriterSize(cw, backupBuffer)
	var info store.BackupInfo
	lastReport := int64(0)
	err := db.bdb.View(func(txn *badger.Txn) error {
		if _, err := bw.WriteString(backupMagic); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		var num [binary.MaxVarintLen64]byte
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			key := item.Key()
			bw.Write(num[:binary.PutUvarint(num[:], uint64(len(key)))])
			bw.Write(key)
			var file []byte
			err := item.Value(func(v []byte) error {
				bw.Write(num[:binary.PutUvarint(num[:], uint64(len(v)))])
				if key[0] == pBlobFile {
					file = append(file, v...)
				}
				_, err := bw.Write(v)
				return err
			})
			if err == nil && file != nil {
				err = db.backupFile(bw, key, file)
			}
			if err != nil {
				return err
			}
			info.Records++
			if n := cw.n + int64(bw.Buffered()); n-lastReport >= backupProgressEvery {
				lastReport = n
				store.ReportProgress(ctx, n, max(estimate, n))
			}
		}
		return nil
	})
	if err == nil {
		var num [binary.MaxVarintLen64]byte
		bw.Write(num[:binary.PutUvarint(num[:], 0)])
		bw.Write(num[:binary.PutUvarint(num[:], uint64(info.Records))])
		if err = bw.Flush(); err == nil {
			sum := h.Sum(nil)
			_, err = w.Write(sum)
			cw.n += int64(len(sum))
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return store.BackupInfo{}, ctx.Err()
		}
		return store.BackupInfo{}, fmt.Errorf("badgerstore: backup: %w", err)
	}
	info.Bytes = cw.n
	store.ReportProgress(ctx, info.Bytes, info.Bytes)
	return info, nil
}

// backupFile writes the bytes of the blob file whose record is key,
// value: exactly the size the record gives.
func (db *DB) backupFile(w io.Writer, key, value []byte) error {
	if len(key) != 17 {
		return corrupt("blob file record", errCorrupt)
	}
	size, err := decodeU64(value)
	if err != nil {
		return corrupt("blob file record", err)
	}
	f, err := os.Open(db.blobPath(binary.BigEndian.Uint64(key[9:17])))
	if err != nil {
		return fileBlobError("blob file", err)
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, int64(size)))
	if err != nil {
		return err
	}
	if n != int64(size) {
		return corrupt("blob file size", errCorrupt)
	}
	return nil
}

// countWriter counts what it writes.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Restore writes a stream from Backup into dir, which must be absent or
// empty (it is created, mode 0700); then Open opens it as usual. The
// stream is checked as it is read and in full at its end; on any error
// (store.ErrBadBackup for a damaged or short stream, store.ErrNotEmpty
// for a used dir) the partly written store is removed again, and nothing
// else is touched. Memory grows with the bytes a record really has, not
// with the length it claims, so a damaged length cannot make Restore
// allocate more than the stream holds.
func Restore(ctx context.Context, dir string, r io.Reader, opt Options) (store.BackupInfo, error) {
	logger := opt.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := checkEmptyDir(dir); err != nil {
		return store.BackupInfo{}, err
	}
	info, err := restore(ctx, dir, r, opt, logger)
	if err != nil {
		// The directory was empty: take back what was written.
		if rerr := removeContents(dir); rerr != nil {
			logger.Warn("badgerstore: restore: clean up", "err", rerr)
		}
		return store.BackupInfo{}, err
	}
	return info, nil
}

func restore(ctx context.Context, dir string, r io.Reader, opt Options, logger *slog.Logger) (info store.BackupInfo, err error) {
	// The backup may hold values larger than this configuration's
	// largest message (an older, larger limit): the restore writes with
	// the largest value-log files, which closing trims to what they hold.
	opt.MaxValueBytes = maxValueLogFile
	bdb, err := openBadger(dir, opt, logger)
	if err != nil {
		return info, err
	}
	defer func() {
		if cerr := bdb.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("badgerstore: restore: close: %v", cerr)
		}
	}()
	cr := &countReader{r: r}
	br := bufio.NewReaderSize(cr, backupBuffer)
	// hr hashes what it hands out: every byte before the checksum.
	hr := &hashReader{r: br, h: sha256.New()}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", store.ErrBadBackup, fmt.Sprintf(format, args...))
	}
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(hr, magic); err != nil || (string(magic) != backupMagic && string(magic) != backupMagicV1) {
		return info, bad("it does not start like a sealmail badgerstore backup")
	}
	withFiles := string(magic) == backupMagic
	root := blobDir(dir)
	dirs := map[string]bool{}
	wb := bdb.NewWriteBatch()
	defer wb.Cancel()
	for {
		if err := ctx.Err(); err != nil {
			return info, err
		}
		klen, err := binary.ReadUvarint(hr)
		if err != nil {
			return info, bad("cut short after %d records", info.Records)
		}
		if klen == 0 {
			break
		}
		if klen > maxBackupKey {
			return info, bad("record %d: key of %d bytes", info.Records, klen)
		}
		key := make([]byte, klen)
		if _, err := io.ReadFull(hr, key); err != nil {
			return info, bad("cut short in record %d", info.Records)
		}
		vlen, err := binary.ReadUvarint(hr)
		if err != nil || vlen > maxBackupValue {
			return info, bad("record %d: value length", info.Records)
		}
		var val bytes.Buffer
		val.Grow(int(min(vlen, backupBuffer)))
		if n, err := io.CopyN(&val, hr, int64(vlen)); err != nil || n != int64(vlen) {
			return info, bad("cut short in record %d", info.Records)
		}
		if err := wb.Set(key, val.Bytes()); err != nil {
			return info, fmt.Errorf("badgerstore: restore: %v", err)
		}
		if withFiles && key[0] == pBlobFile {
			d, err := restoreFile(root, key, val.Bytes(), hr)
			if err != nil {
				return info, bad("record %d: %v", info.Records, err)
			}
			dirs[d] = true
		}
		info.Records++
	}
	n, err := binary.ReadUvarint(hr)
	if err != nil || n != uint64(info.Records) {
		return info, bad("the end record says %d records, %d read", n, info.Records)
	}
	sum := hr.h.Sum(nil)
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(br, want); err != nil || !bytes.Equal(sum, want) {
		return info, bad("checksum mismatch: the backup is damaged")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return info, bad("data after the end")
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return info, fmt.Errorf("badgerstore: restore: %v", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return info, fmt.Errorf("badgerstore: restore: %v", err)
	}
	info.Bytes = cr.n
	return info, nil
}

// restoreFile writes the blob file whose record is key, value from r
// into the blob directory root, synced, and returns its directory.
func restoreFile(root string, key, value []byte, r io.Reader) (string, error) {
	if len(key) != 17 {
		return "", errors.New("a blob file record of the wrong length")
	}
	size, err := decodeU64(value)
	if err != nil || size == 0 || size > maxBackupValue {
		return "", errors.New("a blob file record with a bad size")
	}
	id := binary.BigEndian.Uint64(key[9:17])
	if !isStaged(id) {
		return "", errors.New("a blob file record with a bad ID")
	}
	f, err := createBlobFile(root, id)
	if err != nil {
		return "", err
	}
	n, err := io.CopyN(f, r, int64(size))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n != int64(size) {
		return "", fmt.Errorf("blob file cut short (%v)", err)
	}
	return filepath.Dir(blobPath(root, id)), nil
}

// countReader counts what it reads.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// hashReader hashes every byte it hands out.
type hashReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

func (h *hashReader) ReadByte() (byte, error) {
	b, err := h.r.ReadByte()
	if err == nil {
		h.h.Write([]byte{b})
	}
	return b, err
}

// checkEmptyDir accepts a directory that does not exist or is empty.
func checkEmptyDir(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("badgerstore: restore: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return fmt.Errorf("badgerstore: restore: %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("badgerstore: restore into %s: %w", dir, store.ErrNotEmpty)
	}
	return nil
}

// removeContents removes everything in dir, leaving dir.
func removeContents(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
