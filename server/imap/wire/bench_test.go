package wire

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// BenchmarkParse measures the reader and grammar on typical commands.
func BenchmarkParse(b *testing.B) {
	var uidSet strings.Builder
	for i := 1; i < 4000; i += 2 {
		if uidSet.Len() > 0 {
			uidSet.WriteByte(',')
		}
		fmt.Fprintf(&uidSet, "%d", i)
	}
	for _, bc := range []struct{ name, cmd string }{
		{"noop", "a1 NOOP\r\n"},
		{"fetch", "a2 UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To Cc Subject Date Message-ID References)])\r\n"},
		{"search", "a3 UID SEARCH RETURN (ALL) OR (FROM \"alice\" SINCE 1-Jan-2026) NOT (SEEN DELETED) LARGER 1000\r\n"},
		{"uidset-2000", "a4 UID STORE " + uidSet.String() + " +FLAGS.SILENT (\\Seen)\r\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := strings.Repeat(bc.cmd, 64)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				p, _ := testParser(in, stateSelected)
				for range 64 {
					p.begin(p.lim)
					if _, err := p.readCommand(stateSelected); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkWriteFetch measures the encoding of FETCH responses with an
// envelope and flags, as a mail client's header sync asks for.
func BenchmarkWriteFetch(b *testing.B) {
	c := testConn(new(bytes.Buffer))
	c.enc.w = bufio.NewWriter(io.Discard)
	env := &Envelope{Date: "Tue, 3 Nov 2026 10:00:00 +0000", Subject: "Quarterly report: figures attached",
		From:      []Address{{Name: "Alice Example", Mailbox: "alice", Host: "example.org"}},
		To:        []Address{{Name: "Bob", Mailbox: "bob", Host: "example.org"}, {Mailbox: "carol", Host: "example.org"}},
		MessageID: "<abc.123@example.org>"}
	flags := []imap.Flag{imap.FlagSeen, "$Junk"}
	when := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		for i := range uint32(100) {
			f := c.uw.Fetch(i + 1)
			f.UID(imap.UID(i + 1))
			f.Flags(flags)
			f.InternalDate(when)
			f.RFC822Size(12345)
			f.Envelope(env)
			f.Close()
		}
	}
}

// BenchmarkFetchBodies measures body throughput through the whole
// dispatcher over 127.0.0.1: 100 messages of 1 MiB fetched in one
// command, read by a raw client.
func BenchmarkFetchBodies(b *testing.B) {
	be := newMemBackend()
	body := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 1<<20/18)
	for range 100 {
		be.deliver("INBOX", body)
	}
	addr, _ := startServer(b, be, func(o *Options) { o.Logger = nil })
	c := dial(b, addr)
	c.login()
	c.selectInbox()
	b.SetBytes(int64(100 * len(body)))
	b.ResetTimer()
	for b.Loop() {
		c.send("f FETCH 1:* BODY.PEEK[]")
		for {
			l := c.line()
			if strings.HasPrefix(l, "f ") {
				break
			}
			if n, _, ok := tailLiteral([]byte(l + "\r\n")); ok {
				c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.CopyN(io.Discard, c.br, n); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkRoundTrip measures one NOOP round trip over 127.0.0.1.
func BenchmarkRoundTrip(b *testing.B) {
	addr, _ := startServer(b, newMemBackend(), func(o *Options) { o.Logger = nil })
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	br.ReadString('\n')
	b.ReportAllocs()
	for b.Loop() {
		io.WriteString(nc, "n NOOP\r\n")
		if _, err := br.ReadString('\n'); err != nil {
			b.Fatal(err)
		}
	}
}
