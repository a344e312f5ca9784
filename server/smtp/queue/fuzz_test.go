package queue

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzClient plays an arbitrary server against the delivery client:
// greeting, EHLO and a pipelined transaction read whatever the server
// sends. Never a panic, never a hang, and what the client takes for
// replies is well-formed and bounded.
func FuzzClient(f *testing.F) {
	for _, s := range []string{
		"220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250-SIZE 100\r\n250 DSN\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n250 2.0.0 queued\r\n",
		"220 mx\r\n250 mx\r\n250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n",
		"220-mx\r\n220 hello\r\n500 what\r\n250 mx\r\n451 4.7.1 greylisted\r\n",
		"554 5.7.1 go away\r\n",
		"220 mx\r\n250-mx\r\n250-" + strings.Repeat("X", 3000) + "\r\n",
		"220 mx\r\n" + strings.Repeat("250-x\r\n", 200),
		"220 mx\r\n250 mx\r\n250 ok\r\n250 ok\r\n354 go\r\n",
		"220 mx\n250 mx\n2",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cl, srv := net.Pipe()
		defer cl.Close()
		go func() {
			defer srv.Close()
			go io.Copy(io.Discard, srv) // what the client sends
			srv.Write(in)
		}()
		cl.SetDeadline(time.Now().Add(10 * time.Second))
		c := newClient(&boundedConn{Conn: cl})
		check := func(r *reply) {
			if r == nil {
				return
			}
			if len(r.lines) == 0 || len(r.lines) > replyMaxLines || r.code < 200 || r.code > 599 {
				t.Fatalf("reply %+v", r)
			}
			for _, l := range r.lines {
				if len(l) > replyMaxLine+2 {
					t.Fatalf("line of %d bytes", len(l))
				}
			}
		}
		r, err := c.greet()
		check(r)
		if err != nil {
			return
		}
		r, err = c.hello("mail.example.org")
		check(r)
		if err != nil {
			return
		}
		tx := transaction{mail: "MAIL FROM:<a@example.org>", rcpts: []string{"RCPT TO:<b@example.net>", "RCPT TO:<c@example.net>"}}
		res := c.send(tx, bytes.NewReader([]byte("Subject: x\r\n\r\n.hi\r\n")))
		check(res.mail)
		check(res.data)
		check(res.final)
		for _, r := range res.rcpts {
			check(r)
		}
	})
}
