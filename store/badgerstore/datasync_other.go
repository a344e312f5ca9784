//go:build !linux

package badgerstore

import "os"

// datasync writes f's data to the disk.
func datasync(f *os.File) error { return f.Sync() }
