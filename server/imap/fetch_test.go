package imap

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/mailbox"
)

// TestFetchManyBodies fetches the bodies of several messages in one
// command, so that they are decrypted ahead of the writer, including one
// too large to be decrypted ahead (streamed instead), and checks every
// section byte for byte.
func TestFetchManyBodies(t *testing.T) {
	env := newEnv(t, envOptions{opt: Options{Workers: 2}})
	env.addUser(alice, alicePW)
	var msgs [][]byte
	for i := range 12 {
		body := strings.Repeat("line "+itoa(i)+" of the body\r\n", 20*(i+1))
		if i == 5 {
			body = strings.Repeat("a large message line that is streamed\r\n", mailbox.DefaultInMemoryMax/38+100)
		}
		msg := testMessage("many"+itoa(i), body)
		msgs = append(msgs, msg)
		env.deliver(alice, "", msg)
	}
	if int64(len(msgs[5])) <= mailbox.DefaultInMemoryMax {
		t.Fatalf("large message is only %d bytes", len(msgs[5]))
	}
	c := env.dial(alice, alicePW)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	text := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true}
	part := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 100, Size: 50}}
	bin := &imap.FetchItemBinarySection{Part: []int{1}, Peek: true}
	// Twice: cold (summaries built in this FETCH) and warm.
	for round := range 2 {
		got, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID:           true,
			BodySection:   []*imap.FetchItemBodySection{whole, text, part},
			BinarySection: []*imap.FetchItemBinarySection{bin},
		}).Collect()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(got) != len(msgs) {
			t.Fatalf("round %d: %d messages", round, len(got))
		}
		for i, m := range got {
			want := msgs[m.SeqNum-1]
			split := bytes.Index(want, []byte("\r\n\r\n")) + 4
			if !bytes.Equal(m.FindBodySection(whole), want) {
				t.Errorf("round %d message %d: BODY[] differs", round, i+1)
			}
			if !bytes.Equal(m.FindBodySection(text), want[split:]) {
				t.Errorf("round %d message %d: BODY[TEXT] differs", round, i+1)
			}
			if !bytes.Equal(m.FindBodySection(part), want[100:150]) {
				t.Errorf("round %d message %d: BODY[]<100.50> = %q", round, i+1, m.FindBodySection(part))
			}
			if !bytes.Equal(m.FindBinarySection(bin), want[split:]) {
				t.Errorf("round %d message %d: BINARY[1] differs", round, i+1)
			}
		}
	}
	// PEEK everywhere: nothing became \Seen.
	flags, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range flags {
		if hasFlag(m.Flags, imap.FlagSeen) {
			t.Errorf("message %d is \\Seen after PEEK", m.SeqNum)
		}
	}
	// A non-PEEK fetch of everything sets \Seen on all and says so.
	got, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range got {
		if !hasFlag(m.Flags, imap.FlagSeen) {
			t.Errorf("message %d: FLAGS without \\Seen after BODY[TEXT]: %v", m.SeqNum, m.Flags)
		}
	}
}
