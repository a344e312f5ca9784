package listener

import (
	"net"
	"testing"
)

// BenchmarkAccept measures one TCP connection on loopback, dial to close,
// through a bare listener and through the guard (caps, deadline, wrapper).
func BenchmarkAccept(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		name := "bare"
		if guarded {
			name = "guarded"
		}
		b.Run(name, func(b *testing.B) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var ln net.Listener = raw
			if guarded {
				ln = New(raw, Options{Limiter: NewLimiter(LimiterOptions{Connections: 1 << 20, PerClient: 1 << 20})})
			}
			defer ln.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			addr := raw.Addr().String()
			b.ResetTimer()
			for range b.N {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				c.Read(make([]byte, 1)) // until the server has closed it
				c.Close()
			}
			b.StopTimer()
			ln.Close()
			<-done
		})
	}
}
