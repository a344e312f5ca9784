package badgerstore

import (
	"context"
	"io"
	"testing"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/storetest"
)

func openTest(t *testing.T, dir string) store.Store {
	t.Helper()
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, openTest)
}

func TestBackup(t *testing.T) {
	storetest.RunBackup(t, openTest, func(ctx context.Context, dir string, r io.Reader) (store.BackupInfo, error) {
		return Restore(ctx, dir, r, Options{})
	})
}
