package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// openStore opens the badger store in <data_dir>/store. A store held by
// another process is a clear error, not badger's lock message.
func openStore(c *Config, log *slog.Logger) (*badgerstore.DB, error) {
	return openStoreWith(c, log, nil)
}

// openStoreWith is openStore telling onCommit (may be nil) each commit's
// latency, for metrics.
func openStoreWith(c *Config, log *slog.Logger, onCommit func(time.Duration, int)) (*badgerstore.DB, error) {
	db, err := badgerstore.Open(c.storeDir(), badgerstore.Options{
		Logger:       log,
		DefaultQuota: int64(c.Limits.Quota),
		OnCommit:     onCommit,
		// A sealed message is a little larger than the message.
		MaxValueBytes: int64(c.Limits.MessageBytes) + int64(c.Limits.MessageBytes)/64,
	})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("another sealmail holds %s (a command still running, or `sealmail serve` starting or stopping); try again", c.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}
