package badgerstore

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// TestTablesAsWritten: what the store keeps in badger's tables rests on
// disk as written, so that a byte search of the data directory (the
// at-rest tests of cmd/sealmail and server/*) sees all of it. A mailbox
// name that compresses well (a repeated word, then a unique marker),
// flushed into a table by Close, must be found whole in a table file;
// with badger's default snappy compression it is not.
func TestTablesAsWritten(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	const addr = "alice@example.org"
	mkAccount(t, db, addr, []byte("secret"))
	marker := make([]byte, 8)
	if _, err := rand.Read(marker); err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("Private ", 16) + hex.EncodeToString(marker)
	if _, err := db.CreateMailbox(bg, addr, store.MailboxSpec{Name: name}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil { // flushes the memtable into a table
		t.Fatal(err)
	}
	var tables []string
	found := false
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(path, ".sst") {
			return err
		}
		tables = append(tables, filepath.Base(path))
		b, err := os.ReadFile(path)
		found = found || bytes.Contains(b, []byte(name))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("the mailbox name is in no table file as written (tables %q): the tables are compressed", tables)
	}
}
