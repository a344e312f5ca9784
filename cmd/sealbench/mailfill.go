package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/server/benchmsg"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// The mailbox harness's data set: that of server/imap's in-process
// benchmarks (bench_test.go, qresync_bench_test.go), message for message.
const (
	mailUser       = "bench@example.org" // the 10,000 sealed messages; default argon2id
	mailWord       = "quokkaberry"       // in every 100th message
	resyncUser     = "resync@example.org"
	resyncFlagged  = 50 // flag changes after the client's mod-sequence
	resyncExpunged = 50 // expunges after it
	manifestName   = "mailbench.json"
)

// mailManifest describes a filled data directory; the harness checks its
// figures against what the server sends.
type mailManifest struct {
	Messages       int    `json:"messages"`
	Size           int    `json:"size"`
	Word           string `json:"word"`
	Hits           int    `json:"hits"`        // messages holding Word
	PlainBytes     int64  `json:"plain_bytes"` // of all messages
	ResyncMessages int    `json:"resync_messages"`
	UIDValidity    uint32 `json:"uid_validity"` // of resyncUser's INBOX
	ModSeq         uint64 `json:"mod_seq"`      // the resyncing client's, before the 100 changes
	FastKDF        bool   `json:"fast_kdf"`
}

// loadOrFill returns the manifest of the data set in dir, filling dir
// first if it holds none. A data set of other dimensions is an error.
func loadOrFill(ctx context.Context, dir string, want mailManifest, log func(string, ...any)) (mailManifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err == nil {
		var m mailManifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return m, fmt.Errorf("%s: %w", manifestName, err)
		}
		if m.Messages != want.Messages || m.Size != want.Size || m.ResyncMessages != want.ResyncMessages || m.FastKDF != want.FastKDF {
			return m, fmt.Errorf("%s holds another data set (%d messages of %d bytes, %d to resync, fast KDF %v): use another -data",
				dir, m.Messages, m.Size, m.ResyncMessages, m.FastKDF)
		}
		return m, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return want, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return want, fmt.Errorf("%s is not empty and holds no %s: use an empty or new directory", dir, manifestName)
	}
	t0 := time.Now()
	m, err := fill(ctx, dir, want)
	if err != nil {
		return m, fmt.Errorf("fill %s: %w", dir, err)
	}
	log("filled %s: %d messages (%.1f MB) and %d to resync, in %s", dir, m.Messages, float64(m.PlainBytes)/1e6, m.ResyncMessages, time.Since(t0).Round(time.Millisecond))
	return m, nil
}

// fill builds the data set in dir/store, as the in-process benchmarks
// build theirs: mailUser's INBOX gets m.Messages sealed messages
// (benchmsg.Message, internal dates a minute apart, delivered 100 to a
// commit), resyncUser's INBOX m.ResyncMessages opaque blobs (flags and
// mod-sequences never open one) of which 50 are then flagged and 50
// expunged. The password file and the manifest are written last.
func fill(ctx context.Context, dir string, m mailManifest) (mailManifest, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return m, err
	}
	password, err := loadOrMakePassword(filepath.Join(dir, passFileName))
	if err != nil {
		return m, err
	}
	st, err := badgerstore.Open(filepath.Join(dir, "store"), badgerstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return m, err
	}
	defer st.Close()
	kdf := crypto.KDFParams{} // the default, as the in-process benchmark's LOGIN
	if m.FastKDF {
		kdf = crypto.TestKDF()
	}
	for _, a := range []struct {
		addr string
		kdf  crypto.KDFParams
	}{{mailUser, kdf}, {resyncUser, crypto.TestKDF()}} {
		acc, err := account.New(account.Options{Store: st, Domains: []string{"example.org"}, KDF: a.kdf})
		if err != nil {
			return m, err
		}
		_, err = acc.Create(ctx, a.addr, []byte(password))
		acc.Close()
		if err != nil {
			return m, err
		}
	}
	acct, err := st.Account(ctx, mailUser)
	if err != nil {
		return m, err
	}
	pk, err := crypto.ParsePublicKey(acct.PublicKey)
	if err != nil {
		return m, err
	}
	msg := func(i int) []byte { return benchmsg.Message(i, mailUser, m.Size, m.Word) }
	blobs, err := sealAll(pk, m.Messages, msg)
	if err != nil {
		return m, err
	}
	for i := range m.Messages {
		b := msg(i)
		m.PlainBytes += int64(len(b))
		if strings.Contains(string(b), m.Word) {
			m.Hits++
		}
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 100
	for i := 0; i < m.Messages; i += batch {
		ds := make([]store.Delivery, 0, batch)
		for j := i; j < min(i+batch, m.Messages); j++ {
			ds = append(ds, store.Delivery{Account: mailUser, InternalDate: base.Add(time.Duration(j) * time.Minute), Blob: blobs[j]})
		}
		if _, err := st.Deliver(ctx, ds); err != nil {
			return m, err
		}
	}
	if err := fillResync(ctx, st, &m); err != nil {
		return m, err
	}
	if err := st.Close(); err != nil {
		return m, err
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	return m, os.WriteFile(filepath.Join(dir, manifestName), append(raw, '\n'), 0o600)
}

// fillResync fills resyncUser's INBOX and changes it 100 times after the
// mod-sequence it records, as qresync_bench_test.go does.
func fillResync(ctx context.Context, st *badgerstore.DB, m *mailManifest) error {
	const batch = 2000
	for i := 0; i < m.ResyncMessages; i += batch {
		ds := make([]store.Delivery, 0, batch)
		for j := i; j < min(i+batch, m.ResyncMessages); j++ {
			ds = append(ds, store.Delivery{Account: resyncUser, InternalDate: time.Now(), Blob: []byte(fmt.Sprint(j))})
		}
		if _, err := st.Deliver(ctx, ds); err != nil {
			return err
		}
	}
	mb, err := st.Mailbox(ctx, resyncUser, store.Inbox)
	if err != nil {
		return err
	}
	m.UIDValidity, m.ModSeq = mb.UIDValidity, mb.HighestModSeq
	step := uint32(m.ResyncMessages / (resyncFlagged + resyncExpunged))
	for k := uint32(0); k < resyncFlagged+resyncExpunged; k++ {
		uid := 1 + k*step
		if k%2 == 0 {
			_, err = st.StoreFlags(ctx, resyncUser, mb.ID, store.FlagUpdate{UIDs: []uint32{uid}, Op: store.FlagsAdd, Flags: []string{store.FlagSeen}})
		} else {
			_, err = st.Expunge(ctx, resyncUser, mb.ID, []uint32{uid})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sealAll seals messages 0 … n-1 to pk on every core, in order.
func sealAll(pk *crypto.PublicKey, n int, msg func(int) []byte) ([][]byte, error) {
	out := make([][]byte, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := w; i < n; i += len(errs) {
				// What crypto.PublicKey.SealBytes does, which older
				// versions (built to compare against) lack.
				var buf bytes.Buffer
				sw, err := pk.Seal(&buf)
				if err == nil {
					_, err = sw.Write(msg(i))
				}
				if err == nil {
					err = sw.Close()
				}
				if err != nil {
					errs[w] = err
					return
				}
				out[i] = buf.Bytes()
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// copyTree copies the regular files and directories under src to dst,
// which must not exist: each round's servers start from the data set as
// filled, never read.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o700)
		case d.Type().IsRegular():
			return copyFile(path, target)
		}
		return nil // badger keeps no links or devices
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
