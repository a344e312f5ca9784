package badgerstore

import (
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sealmail/sealmail/store"
)

var _ store.SizeReporter = (*DB)(nil)

// sizesMaxAge is how long Sizes reuses a walk of the directory, so that
// frequent callers (a metrics scrape every few seconds) stay cheap.
const sizesMaxAge = 10 * time.Second

// sizeCache holds the last walk of the store's directory.
type sizeCache struct {
	mu    sync.Mutex
	at    time.Time        // guarded by mu
	sizes map[string]int64 // guarded by mu
}

// Sizes implements store.SizeReporter: the disk space the store's files
// take, by part: "lsm" (sorted tables, .sst), "vlog" (value log), "wal"
// (memtable logs, .mem), "blobs" (large blobs' files) and "other". It counts allocated blocks, not
// apparent sizes: badger maps the value-log file it writes at twice its
// configured size, and that file is sparse until written.
func (db *DB) Sizes() map[string]int64 {
	c := &db.sizes
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sizes == nil || time.Since(c.at) > sizesMaxAge {
		c.sizes, c.at = dirSizes(db.bdb.Opts().Dir), time.Now()
	}
	out := make(map[string]int64, len(c.sizes))
	for k, v := range c.sizes {
		out[k] = v
	}
	return out
}

// dirSizes sums the allocated bytes of dir's files by part.
func dirSizes(dir string) map[string]int64 {
	sizes := map[string]int64{"lsm": 0, "vlog": 0, "wal": 0, "blobs": 0, "other": 0}
	blobs := blobDir(dir) + string(filepath.Separator)
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a file compaction removed meanwhile: skip it
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		n := fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n = min(n, st.Blocks*512)
		}
		switch ext := filepath.Ext(path); {
		case strings.HasPrefix(path, blobs):
			sizes["blobs"] += n
		case ext == ".sst":
			sizes["lsm"] += n
		case ext == ".vlog":
			sizes["vlog"] += n
		case ext == ".mem":
			sizes["wal"] += n
		default:
			sizes["other"] += n
		}
		return nil
	})
	return sizes
}
