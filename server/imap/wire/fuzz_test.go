package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// fuzzSeeds is real traffic: what clients send, malformed variants, and
// the attacks of issue 9.
var fuzzSeeds = []string{
	"a CAPABILITY\r\nb LOGIN user pass\r\nc SELECT INBOX\r\nd FETCH 1:* (FLAGS UID BODY.PEEK[HEADER.FIELDS (From Subject)])\r\ne LOGOUT\r\n",
	"a LOGIN {4}\r\nuser {4+}\r\npass\r\nb ENABLE QRESYNC IMAP4rev2\r\nc SELECT INBOX (QRESYNC (1 2 1:5))\r\nd UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
	"a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\nb APPEND INBOX (\\Seen) \" 7-Mar-2026 08:09:10 -0530\" {5+}\r\nHello\r\nc APPEND INBOX CATENATE (TEXT {2+}\r\nab URL \"/INBOX;UIDVALIDITY=1/;UID=1\")\r\n",
	"a LOGIN user pass\r\nb SELECT INBOX\r\nc SEARCH RETURN (MIN MAX COUNT SAVE) OR (FROM x SINCE 1-Jan-2026) NOT UID 1:* MODSEQ 5\r\nd FETCH $ (ENVELOPE BODYSTRUCTURE BINARY[1]<0.10>)\r\n",
	"a LOGIN user pass\r\nb LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"*\" %) RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\nc STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)\r\n",
	"a LOGIN user pass\r\nb SELECT INBOX\r\nc UID SORT RETURN (ALL) (REVERSE SIZE) UTF-8 ALL\r\nd THREAD ORDEREDSUBJECT UTF-8 ALL\r\ne STORE 1 (UNCHANGEDSINCE 3) +FLAGS.SILENT (\\Deleted)\r\nf UID EXPUNGE 1\r\n",
	"a LOGIN user pass\r\nb NOTIFY SET STATUS (selected (MessageNew (uid) MessageExpunge)) (personal (MailboxName))\r\nc IDLE\r\nDONE\r\nd NOTIFY NONE\r\n",
	"a LOGIN user pass\r\nb CREATE \"Tom &- Jerry\" (USE (\\Drafts))\r\nc RENAME \"Tom &- Jerry\" &Jjo-\r\nd DELETE &Jjo-\r\ne GETQUOTAROOT INBOX\r\nf ID NIL\r\n",
	"a SEARCH" + strings.Repeat(" TEXT {4096+}\r\n"+strings.Repeat("x", 64), 5) + "\r\nb NOOP\r\n",
	"a LOGIN user pass\r\nb APPEND INBOX {50+}\r\nX-Tracking: DELETE INBOX\r\nX-Campaign: RENAME INBOX x\r\nc NOOP\r\n",
	"a LOGIN user pass\r\nb SELECT INBOX\r\nc FETCH 4294967296 (UID)\r\nd SEARCH ((((((((((ALL))))))))))\r\ne CREATE {3}\r\na\x00b\r\n",
	"* garbage\r\n\r\n+ x\r\na FOO {3}\r\na b\r\n\"quoted\r\n",
	"a LOGIN user pass\r\nb COMPRESS DEFLATE\r\n",
}

// FuzzReader feeds anything to the command reader: it must never panic,
// never buffer more than the state's limits, and always make progress.
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, authed bool) {
		st := stateNotAuth
		if authed {
			st = stateSelected
		}
		p, _ := testParser(string(data), st)
		p.utf8 = len(data)%2 == 0
		p.qresync = len(data)%3 == 0
		for range 1000 {
			p.begin(p.lim)
			cmd, err := p.readCommand(st)
			if p.cmd > p.lim.CommandBytes {
				t.Fatalf("command read %d bytes, limit %d", p.cmd, p.lim.CommandBytes)
			}
			if err == nil && cmd.Name == "APPEND" {
				ar := &appendReader{p: p, limit: 1 << 20, maxMsgs: 10, appender: &memAppender{s: &memSession{b: newMemBackend()}}}
				for {
					m, aerr := ar.next()
					if aerr != nil || m == nil {
						err = aerr
						break
					}
					io.Copy(io.Discard, m.Body)
					if ferr := ar.finish(m, false); ferr != nil {
						err = ferr
						break
					}
				}
			}
			var ce *cmdError
			var ie *imap.Error // from the Appender (BADURL)
			if errors.As(err, &ce) || errors.As(err, &ie) {
				if ce != nil && ce.resp.Code == "SERVERBUG" {
					t.Fatalf("parse error answered SERVERBUG: %v", err)
				}
				if !p.ended {
					if serr := p.skipCommand(); serr != nil {
						err = serr
					} else {
						err = nil
					}
				} else {
					err = nil
				}
			}
			if err != nil {
				var be *byeError
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &be) {
					t.Fatalf("unexpected error kind %T: %v", err, err)
				}
				return
			}
			if p.discarded > p.lim.DiscardBytes {
				t.Fatalf("discarded %d bytes, budget %d", p.discarded, p.lim.DiscardBytes)
			}
		}
	})
}

// fuzzConn is a client that sends input and records the server's output.
type fuzzConn struct {
	in  *bytes.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *fuzzConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out.Len() > 1<<20 {
		return 0, errors.New("too much output")
	}
	return c.out.Write(p)
}
func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzDispatcher runs whole connections of fuzzed client bytes through
// the dispatcher and the in-memory Session: no panic, no SERVERBUG, and
// every response is a well-formed line.
func FuzzDispatcher(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := newMemBackend()
		b.deliver("INBOX", msg1)
		b.deliver("INBOX", msg2)
		srv, err := New(Options{NewSession: b.newSession, InsecureAuth: true, Caps: allCaps,
			Limits: Limits{IdleKeepalive: -1}})
		if err != nil {
			t.Fatal(err)
		}
		fc := &fuzzConn{in: bytes.NewReader(data)}
		done := make(chan struct{})
		go func() {
			srv.ServeConn(fc)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection did not end when its input did")
		}
		fc.mu.Lock()
		out := fc.out.String()
		fc.mu.Unlock()
		if strings.Contains(out, "SERVERBUG") {
			t.Fatalf("SERVERBUG in output:\n%s", out)
		}
		checkResponses(t, out)
	})
}

// checkResponses checks that out is a sequence of response lines: each
// begins with "*", "+" or a tag and ends with CRLF (literals skipped).
func checkResponses(t *testing.T, out string) {
	br := bufio.NewReader(strings.NewReader(out))
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF {
			if line != "" && !strings.Contains(out, "DEFLATE active") {
				t.Fatalf("unterminated response %q", line)
			}
			return
		}
		if strings.Contains(out, "DEFLATE active") && strings.HasSuffix(line, "DEFLATE active\r\n") {
			return // compressed from here on
		}
		if !strings.HasSuffix(line, "\r\n") || len(line) < 3 {
			t.Fatalf("bad response line %q", line)
		}
		// Skip literal data announced at the end of the line.
		if n, _, ok := tailLiteral([]byte(line)); ok {
			if _, err := br.Discard(int(n)); err != nil {
				t.Fatalf("literal cut short after %q", line)
			}
		}
	}
}
