// Package benchmsg generates the messages of sealmail's reading
// benchmarks: the in-process ones of server/imap and server/pop3 (through
// server/internal/testutil) and the out-of-process harness of
// cmd/sealbench, which must measure the same data set. It imports nothing
// of the project.
package benchmsg

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Message returns message i of a benchmark's mailbox: a text/plain
// message to the address to, of about size bytes of random words,
// deterministic in i. If word is not empty, every 100th message (i%100
// == 0) contains it once, in its second half, for SEARCH to find.
func Message(i int, to string, size int, word string) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	var sb strings.Builder
	sb.Grow(size + 512)
	fmt.Fprintf(&sb, "From: Sender %d <sender%d@example.net>\r\n", i%97, i%97)
	fmt.Fprintf(&sb, "To: Bench User <%s>\r\n", to)
	fmt.Fprintf(&sb, "Subject: Benchmark message number %d\r\n", i)
	fmt.Fprintf(&sb, "Date: %s\r\n", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z))
	fmt.Fprintf(&sb, "Message-ID: <bench-%d@example.net>\r\n", i)
	sb.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	line := 0
	for sb.Len() < size {
		n := 3 + r.IntN(6)
		w := make([]byte, n)
		for k := range w {
			w[k] = byte('a' + r.IntN(26))
		}
		sb.Write(w)
		if line += n + 1; line > 70 {
			sb.WriteString("\r\n")
			line = 0
		} else {
			sb.WriteByte(' ')
		}
		if word != "" && i%100 == 0 && sb.Len() > size/2 && !strings.Contains(sb.String(), word) {
			sb.WriteString(word + " ")
		}
	}
	sb.WriteString("\r\n")
	return []byte(sb.String())
}
