package smtp

import (
	"strings"
	"testing"
)

func TestScanListFields(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		want      listFields
	}{
		{"none", "Subject: hi\r\n\r\nList-Id: <in the body>\r\n", listFields{}},
		{"list-id", "Subject: hi\r\nlist-ID:  Team <team.example.org>\r\n\r\nbody\r\n", listFields{listID: "Team <team.example.org>"}},
		{"folded", "List-Unsubscribe:\r\n <mailto:u@example.org>,\r\n\t<https://example.org/u>\r\n\r\n", listFields{listUnsubscribe: "<mailto:u@example.org>,\t<https://example.org/u>"}},
		{"precedence", "Received: from a\r\n by b\r\nPrecedence: bulk\r\nX: y\r\n\r\n", listFields{precedence: "bulk"}},
		{"bare LF", "Precedence: list\nSubject: x\n\nPrecedence: junk\n", listFields{precedence: "list"}},
		{"no body", "List-Id: <x>", listFields{listID: "<x>"}},
		{"long line", "X-Long: " + strings.Repeat("a", 10000) + "\r\nList-Id: <y>\r\n\r\n", listFields{listID: "<y>"}},
		{"not a field", "garbage without colon\r\nList-Id: <z>\r\n\r\n", listFields{listID: "<z>"}},
	} {
		if got := scanListFields(strings.NewReader(tc.msg)); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// Fields beyond maxClassHeader do not count, however long the header.
	big := strings.Repeat("X-Pad: "+strings.Repeat("p", 70)+"\r\n", maxClassHeader/79+10) + "List-Id: <late>\r\n\r\n"
	if got := scanListFields(strings.NewReader(big)); got.listID != "" {
		t.Errorf("a field past %d bytes counted: %+v", maxClassHeader, got)
	}
}

func FuzzScanListFields(f *testing.F) {
	f.Add([]byte("List-Id: <a>\r\nPrecedence: bulk\r\n\r\nbody"))
	f.Add([]byte("List-Unsubscribe:\r\n <x>\r\n\r\n"))
	f.Add([]byte(":\r\n \r\n\t\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := scanListFields(strings.NewReader(string(b)))
		for _, v := range []string{got.listID, got.listUnsubscribe, got.precedence} {
			if len(v) > maxClassField+maxClassHeader {
				t.Fatalf("field of %d bytes", len(v))
			}
		}
	})
}

// TestDeliveryClass: the class each copy gets at delivery, before
// sealing, reaches the store: list mail is newsletter, other mail
// default.
func TestDeliveryClass(t *testing.T) {
	e := newEnv(t, nil)
	const alice = "alice@example.org"
	for _, msg := range []string{
		"Subject: plain\r\n\r\nhello\r\n",
		"Subject: news\r\nList-Unsubscribe: <mailto:unsub@lists.test>\r\n\r\nhello\r\n",
		"Subject: bulk\r\nPrecedence: bulk\r\n\r\nhello\r\n",
		"Subject: list\r\nList-Id: <board.example.org>\r\n\r\nhello\r\n",
	} {
		if err := sendGo(t, e.addr, "sender@remote.test", []string{alice}, msg); err != nil {
			t.Fatal(err)
		}
	}
	inbox := e.inboxID(alice)
	rs, err := e.db.RetainedByUID(t.Context(), alice, inbox, []uint32{1, 2, 3, 4})
	if err != nil || len(rs) != 4 {
		t.Fatalf("RetainedByUID = %+v, %v", rs, err)
	}
	for i, want := range []string{"default", "newsletter", "newsletter", "newsletter"} {
		if got := rs[i].Retention.Origin; got != want {
			t.Errorf("message %d: class %q, want %q", i+1, got, want)
		}
	}
}

// TestSubmissionClass: mail a user of this server sends is never classed
// as list mail, even with list headers (over MX such a message is
// newsletter: TestDeliveryClass).
func TestSubmissionClass(t *testing.T) {
	se := newSubEnv(t, subSetup{})
	const bob = "bob@example.org"
	msg := "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: minutes\r\nList-Id: <board.example.org>\r\nPrecedence: list\r\n\r\nhello\r\n"
	c := se.login(t, "alice@example.org", testPassword)
	if err := send(c, "alice@example.org", []string{bob}, msg); err != nil {
		t.Fatalf("submission: %v", err)
	}
	rs, err := se.db.RetainedByUID(t.Context(), bob, se.inboxID(bob), []uint32{1})
	if err != nil || len(rs) != 1 {
		t.Fatalf("RetainedByUID = %+v, %v", rs, err)
	}
	if got := rs[0].Retention.Origin; got != "default" {
		t.Errorf("submitted copy: class %q, want default", got)
	}
}
