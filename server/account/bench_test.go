package account

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
)

// BenchmarkLogin is one successful Service.Login with the production
// argon2id cost, with the unlock cache off (every login runs argon2id) and
// on (every login after the first is a hit). Besides wall time it reports
// the process CPU time per login (cpu-ms/op), which other load on a
// shared machine disturbs less. Run both side by side:
//
//	go test -run '^$' -bench Login -benchtime 50x ./server/account/
func BenchmarkLogin(b *testing.B) {
	for _, tc := range []struct {
		name  string
		cache time.Duration
	}{{"miss", 0}, {"hit", 15 * time.Minute}} {
		b.Run(tc.name, func(b *testing.B) {
			s, _ := newService(b, Options{KDF: crypto.DefaultKDF(), UnlockCache: tc.cache})
			mustCreate(b, s, alice, alicePW)
			mustLogin(b, s, "192.0.2.1:1", alice, alicePW).Close() // fills the cache
			ctx := context.Background()
			req := LoginRequest{Remote: "192.0.2.1:1", Username: alice}
			start := cpuTime(b)
			for b.Loop() {
				req.Secret = []byte(alicePW)
				sess, err := s.Login(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				sess.Close()
			}
			b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
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
