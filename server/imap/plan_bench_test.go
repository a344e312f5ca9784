package imap

import (
	"fmt"
	"testing"
)

// BenchmarkPlanMass measures what a session's Poll does, under the
// mailbox state's lock, after another session removed half of a
// 10,000-message mailbox and changed the flags of the other half: the
// view's plan of 5,000 EXPUNGE and 5,000 FETCH responses.
//
//	go test -run '^$' -bench PlanMass -benchmem ./server/imap/
func BenchmarkPlanMass(b *testing.B) {
	const n = 10000
	s := &session{}
	for _, size := range []int{1000, n} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				st := &mailboxState{}
				v := &view{st: st, uids: make([]uint32, size), expunged: map[uint32]struct{}{},
					flags: map[uint32]flagUpdate{}, recent: map[uint32]struct{}{}, keywords: map[string]struct{}{}}
				for i := range v.uids {
					u := uint32(i + 1)
					v.uids[i] = u
					if u%2 == 0 {
						v.expunged[u] = struct{}{}
					} else {
						v.flags[u] = flagUpdate{flags: []string{`\Seen`}, modseq: uint64(u)}
					}
				}
				b.StartTimer()
				p := s.plan(&selected{st: st, v: v}, pollAllow{expunge: true, flags: true})
				if len(p.expunges) != size/2 || len(p.fetches) != size/2 || len(v.uids) != size/2 {
					b.Fatalf("plan: %d expunges, %d fetches, %d left", len(p.expunges), len(p.fetches), len(v.uids))
				}
			}
		})
	}
}
