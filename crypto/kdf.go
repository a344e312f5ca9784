package crypto

import (
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Bounds on the argon2id parameters a slot may carry. They are checked
// before any work is done, so a corrupted or hostile slot cannot make one
// unlock attempt burn more than about MaxKDFMemoryKiB of memory and
// maxKDFWork KiB-passes of time.
const (
	MaxKDFTime      = 64      // passes
	MaxKDFMemoryKiB = 1 << 20 // 1 GiB
	MaxKDFThreads   = 16      // lanes
	maxKDFWork      = 1 << 23 // Time*MemoryKiB: e.g. 8 passes over 1 GiB, 128 over 64 MiB
	kdfKeyLen       = 32      // 32: AES-256
)

// Validate reports whether p is usable: every field non-zero and within the
// bounds above (argon2 itself needs at least 8 KiB per lane).
func (p KDFParams) Validate() error {
	switch {
	case p.Time == 0 || p.Time > MaxKDFTime:
		return fmt.Errorf("crypto: kdf time %d out of range 1..%d", p.Time, MaxKDFTime)
	case p.Threads == 0 || p.Threads > MaxKDFThreads:
		return fmt.Errorf("crypto: kdf threads %d out of range 1..%d", p.Threads, MaxKDFThreads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxKDFMemoryKiB:
		return fmt.Errorf("crypto: kdf memory %d KiB out of range %d..%d", p.MemoryKiB, 8*uint32(p.Threads), MaxKDFMemoryKiB)
	case uint64(p.Time)*uint64(p.MemoryKiB) > maxKDFWork:
		return fmt.Errorf("crypto: kdf work %d passes x %d KiB too large", p.Time, p.MemoryKiB)
	}
	return nil
}

// derive stretches secret with argon2id under p and salt. p must be valid.
func (p KDFParams) derive(secret, salt []byte) []byte {
	return argon2.IDKey(secret, salt, p.Time, p.MemoryKiB, p.Threads, kdfKeyLen)
}

// orDefault returns DefaultKDF() for the zero value, p otherwise.
func (p KDFParams) orDefault() KDFParams {
	if p == (KDFParams{}) {
		return DefaultKDF()
	}
	return p
}
