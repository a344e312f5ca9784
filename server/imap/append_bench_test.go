package imap

import (
	"testing"
)

// BenchmarkAppendSmall measures one session's APPENDs of a small message
// (imaptest's mix appends small messages in long sessions): sealing,
// the store's commit and the command around them. cpu-ns/op is the CPU of
// the whole process (server and client) per APPEND.
func BenchmarkAppendSmall(b *testing.B) {
	env := newEnv(b)
	env.addUser(alice, alicePW)
	c := env.dial(alice, alicePW)
	msg := testMessage("small", "A short message, as imaptest appends them.")
	var cpu cpuMeter
	b.ResetTimer()
	cpu.Start()
	for range b.N {
		a := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := a.Write(msg); err != nil {
			b.Fatal(err)
		}
		if err := a.Close(); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	cpu.Stop()
	cpu.Report(b)
}
