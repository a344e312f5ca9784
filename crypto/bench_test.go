package crypto

import (
	"bytes"
	"io"
	"syscall"
	"testing"
	"time"
)

// Benchmarks report what one account's operations cost on this machine;
// tests never assert on speed.

var benchSizes = []struct {
	name string
	n    int
}{{"10KB", 10 << 10}, {"1MB", 1 << 20}}

func BenchmarkSeal(b *testing.B) {
	for _, kt := range []KeyType{KeyEd25519, KeyRSA3072, KeyV6Ed25519} {
		a := testAccount(b, kt)
		for _, s := range benchSizes {
			b.Run(kt.String()+"/"+s.name, func(b *testing.B) {
				msg := randomBytes(b, s.n)
				var buf bytes.Buffer
				b.SetBytes(int64(s.n))
				b.ReportAllocs()
				for b.Loop() {
					buf.Reset()
					w, err := a.pub.Seal(&buf)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := w.Write(msg); err != nil {
						b.Fatal(err)
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOpen measures the first open of a message (public-key work) and
// later opens with the stored session key (symmetric work only).
func BenchmarkOpen(b *testing.B) {
	for _, kt := range []KeyType{KeyEd25519, KeyRSA3072, KeyV6Ed25519} {
		a := testAccount(b, kt)
		for _, s := range benchSizes {
			msg := randomBytes(b, s.n)
			sealed := seal(b, a.pub, msg)
			_, sk, err := a.kr.Open(bytes.NewReader(sealed))
			if err != nil {
				b.Fatal(err)
			}
			b.Run(kt.String()+"/publickey/"+s.name, func(b *testing.B) {
				b.SetBytes(int64(s.n))
				b.ReportAllocs()
				for b.Loop() {
					p, _, err := a.kr.Open(bytes.NewReader(sealed))
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, p); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(kt.String()+"/sessionkey/"+s.name, func(b *testing.B) {
				b.SetBytes(int64(s.n))
				b.ReportAllocs()
				for b.Loop() {
					p, err := a.kr.OpenWithSessionKey(bytes.NewReader(sealed), sk)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkUnlockDefaultKDF is one successful password unlock with the
// production parameters: what a LOGIN costs.
func BenchmarkUnlockDefaultKDF(b *testing.B) {
	pw := []byte("bench password")
	sec, err := NewAccount("bench@example.org", pw, AccountOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		kr, err := Unlock([][]byte{sec.Slot}, pw, sec.WrappedKey)
		if err != nil {
			b.Fatal(err)
		}
		kr.Wipe()
	}
}

// BenchmarkBurnUnlock should match BenchmarkUnlockDefaultKDF.
func BenchmarkBurnUnlock(b *testing.B) {
	for b.Loop() {
		BurnUnlock([]byte("bench password"), DefaultKDF())
	}
}

// BenchmarkArgon2 shows the argon2id cost per time parameter at 64 MiB and
// 2 lanes, the basis for DefaultKDF().Time. Besides wall time it reports
// the process CPU time per operation (cpu-ms/op), which is less disturbed
// by other load on a shared machine: on an idle 2-core machine the wall
// time of a 2-lane run is about half of it.
func BenchmarkArgon2(b *testing.B) {
	salt := make([]byte, slotSaltLen)
	for _, tm := range []uint32{1, 3, 5, 6, 7, 8} {
		p := KDFParams{Time: tm, MemoryKiB: 64 * 1024, Threads: 2}
		b.Run("t="+itoa(int(tm)), func(b *testing.B) {
			start := cpuTime(b)
			for b.Loop() {
				zero(p.derive([]byte("pw"), salt))
			}
			b.ReportMetric(float64((cpuTime(b)-start).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime returns the user+system CPU time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkNewAccount(b *testing.B) {
	for _, kt := range keyTypes {
		b.Run(kt.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := NewAccount("bench@example.org", []byte("pw"), AccountOptions{KeyType: kt}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkIndex(b *testing.B) {
	a := testAccount(b, KeyEd25519)
	plain := randomBytes(b, 2<<10)
	ad := []byte("INBOX\x00uid 42")
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		s, err := a.kr.SealIndex(plain, ad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.kr.OpenIndex(s, ad); err != nil {
			b.Fatal(err)
		}
	}
}
