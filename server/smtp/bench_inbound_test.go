package smtp

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/filter"
	"github.com/sealmail/sealmail/server/smtp/inbound"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/resolver/dnstest"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// BenchmarkIngestChecks is BenchmarkIngest with every inbound check on,
// against a local DNS server with a warm cache, next to the same run with
// the checks off: SPF, two DNS block lists, a country zone, DKIM (the
// messages are unsigned), DMARC (p=none), the allow and deny lists, the
// classifier with a trained organisation model and the recipient's own
// (she has logged in), the Authentication-Results field and the sealed
// trace written through its batching writer. Compare checks=off with
// checks=on in one run (the machine's speed drifts).
func BenchmarkIngestChecks(b *testing.B) {
	for _, conc := range []int{1, 32} {
		b.Run(fmt.Sprintf("conc=%d/checks=off", conc), func(b *testing.B) { benchIngest(b, conc, 10<<10) })
		b.Run(fmt.Sprintf("conc=%d/checks=on", conc), func(b *testing.B) {
			benchIngestWith(b, conc, 10<<10, benchChecks(b))
		})
	}
}

func benchChecks(b *testing.B) func(*Options, *badgerstore.DB) {
	return func(o *Options, db *badgerstore.DB) {
		ds := dnstest.Start(b,
			`remote.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
			`_dmarc.remote.test. 300 IN TXT "v=DMARC1; p=none"`,
			"1.0.0.127.zz.countries.test. 300 IN A 127.0.1.20",
		)
		res, err := resolver.New(resolver.Options{Server: ds.Addr})
		if err != nil {
			b.Fatal(err)
		}
		fs, err := filter.New(filter.Options{Store: db})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		var spam, ham []string
		for i := range 50 {
			spam = append(spam, fmt.Sprintf("Subject: cheap pills %d\r\n\r\nbuy cheap pills discount pharmacy %d\r\n", i, i))
			ham = append(ham, fmt.Sprintf("Subject: bench %d\r\n\r\n%s\r\n", i, strings.Repeat("0123456789", 7)))
		}
		seq := func(ms []string) iter.Seq2[io.Reader, error] {
			return func(yield func(io.Reader, error) bool) {
				for _, m := range ms {
					if !yield(strings.NewReader(m), nil) {
						return
					}
				}
			}
		}
		fs.LearnOrg(ctx, true, seq(spam))
		fs.LearnOrg(ctx, false, seq(ham))
		acct, _ := db.Account(ctx, "alice@example.org")
		kr, err := crypto.Unlock([][]byte{acct.Slots[0].Data}, []byte(testPassword), acct.WrappedKey)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fs.Learn(ctx, "alice@example.org", kr, true, seq(spam[:5])); err != nil {
			b.Fatal(err)
		}
		kr.Wipe()
		key := make([]byte, trace.KeySize)
		codec, _ := trace.NewCodec(key)
		w := trace.NewWriter(trace.WriterOptions{Codec: codec, Store: db, Kinds: []store.TraceKind{store.TraceInbound}})
		b.Cleanup(w.Close)
		c, err := inbound.New(inbound.Options{
			Hostname: o.Hostname, Domains: o.Domains, Resolver: res, Store: db, Classifier: fs, Tracer: w,
			IPZones:     []inbound.Zone{{Name: "zen.test", Weight: 10}, {Name: "bl.test", Weight: 5}},
			CountryZone: "zz.countries.test",
			Timeout:     time.Minute,
		})
		if err != nil {
			b.Fatal(err)
		}
		o.Inbound = c
	}
}
