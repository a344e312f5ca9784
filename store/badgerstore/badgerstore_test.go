package badgerstore

import (
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
