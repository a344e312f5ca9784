package badgerstore

import (
	"os"
	"syscall"
)

// datasync writes f's data (and the size, if it changed) to the disk, as
// badger's msync did, without the inode's times.
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
