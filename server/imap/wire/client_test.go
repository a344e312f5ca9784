package wire

import (
	"crypto/tls"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/sealmail/sealmail/server/internal/testutil"
)

// testTLS returns a server config with a self-signed certificate for
// 127.0.0.1.
func testTLS(testing.TB) *tls.Config {
	cert, _ := testutil.Cert("127.0.0.1")
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// TestGoIMAPClient drives the dispatcher with go-imap v2's client over
// STARTTLS: what a Go program using the library's client sees.
func TestGoIMAPClient(t *testing.T) {
	b := newMemBackend()
	b.deliver("INBOX", msg1)
	b.deliver("INBOX", msg2, imap.FlagSeen)
	addr, _ := startServer(t, b, func(o *Options) {
		o.InsecureAuth = false
		o.TLSConfig = testTLS(t)
		o.ServerID = &imap.IDData{Name: "sealmail"}
	})
	var mu sync.Mutex
	var exists []uint32
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{
		TLSConfig: &tls.Config{InsecureSkipVerify: true},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					mu.Lock()
					exists = append(exists, *d.NumMessages)
					mu.Unlock()
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Caps().Has(imap.AuthCap("PLAIN")) || c.Caps().Has(imap.CapLoginDisabled) {
		t.Errorf("caps over TLS: %v", c.Caps())
	}
	id, err := c.ID(&imap.IDData{Name: "go-imap test"}).Wait()
	if err != nil || id.Name != "sealmail" {
		t.Errorf("ID: %+v %v", id, err)
	}
	if err := c.Login("user", "pass").Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	for _, cp := range []imap.Cap{imap.CapIMAP4rev2, imap.CapMove, imap.CapCondStore, imap.CapQuota, imap.CapSort, imap.CapMultiAppend} {
		if !c.Caps().Has(cp) {
			t.Errorf("missing capability %s after login", cp)
		}
	}
	if _, err := c.Enable(imap.CapIMAP4rev2).Wait(); err != nil {
		t.Fatalf("enable: %v", err)
	}

	// APPEND streams.
	body := "From: <carol@example.org>\r\nSubject: appended\r\n\r\nbody\r\n"
	ac := c.Append("INBOX", int64(len(body)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
	io.WriteString(ac, body)
	ac.Close()
	ad, err := ac.Wait()
	if err != nil || ad.UID != 3 {
		t.Errorf("append: %+v %v", ad, err)
	}

	sd, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	if sd.NumMessages != 3 || sd.UIDValidity != 1 || sd.HighestModSeq == 0 || sd.List == nil {
		t.Errorf("select data: %+v", sd)
	}

	msgs, err := c.Fetch(imap.SeqSetNum(1, 3), &imap.FetchOptions{
		UID: true, Flags: true, RFC822Size: true, Envelope: true, ModSeq: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 3 || msgs[1].Envelope.Subject != "appended" {
		t.Fatalf("fetch: %+v", msgs)
	}
	if got := string(msgs[0].FindBodySection(&imap.FetchItemBodySection{})); got != msg1 {
		t.Errorf("body %q", got)
	}
	if msgs[1].ModSeq == 0 || msgs[0].RFC822Size != int64(len(msg1)) {
		t.Errorf("modseq %d size %d", msgs[1].ModSeq, msgs[0].RFC822Size)
	}

	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Errorf("store: %v", err)
	}
	sr, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagDeleted}}, &imap.SearchOptions{ReturnCount: true, ReturnAll: true}).Wait()
	if err != nil || sr.Count != 1 || len(sr.AllUIDs()) != 1 || sr.AllUIDs()[0] != 1 {
		t.Errorf("search: %+v %v", sr, err)
	}
	srt, err := c.Sort(&imapclient.SortOptions{SearchCriteria: &imap.SearchCriteria{}, SortCriteria: []imapclient.SortCriterion{{Key: imapclient.SortKeySize}}}).Wait()
	if err != nil || len(srt) != 3 {
		t.Errorf("sort: %v %v", srt, err)
	}
	md, err := c.Move(imap.SeqSetNum(2), "INBOX").Wait()
	if err != nil || md.UIDValidity != 1 {
		t.Errorf("move into the same mailbox: %+v %v", md, err)
	}
	if _, err := c.Expunge().Collect(); err != nil {
		t.Errorf("expunge: %v", err)
	}

	// IDLE: a delivery to the mailbox arrives as EXISTS.
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	b.deliver("INBOX", msg1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(exists)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no EXISTS during IDLE")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Errorf("idle: %v", err)
	}

	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, Size: true}).Wait()
	if err != nil || st.NumMessages == nil || st.Size == nil {
		t.Errorf("status: %+v %v", st, err)
	}
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil || len(boxes) != 1 || boxes[0].Mailbox != "INBOX" || boxes[0].Delim != '/' {
		t.Errorf("list: %+v %v", boxes, err)
	}
	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 {
		t.Errorf("namespace: %+v %v", ns, err)
	}
	q, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil || len(q) != 1 {
		t.Errorf("quota: %+v %v", q, err)
	}
	// go-imap's client escapes "&" as "&-" even in UTF-8 mode; a name
	// without "&" shows the UTF-8 path.
	if err := c.Create("Entwürfe/Tom+Jerry", nil).Wait(); err != nil {
		t.Errorf("create: %v", err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Errorf("unselect: %v", err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("logout: %v", err)
	}
	b.mu.Lock()
	_, ok := b.mailboxes["Entwürfe/Tom+Jerry"]
	b.mu.Unlock()
	if !ok {
		t.Error("UTF-8 mailbox name did not arrive")
	}
}

// TestGoIMAPClientIMAP4rev1 checks a client that enables nothing: SEARCH
// responses, big literals, and names. go-imap's client sends raw UTF-8
// names whenever the server advertises IMAP4rev2, enabled or not (with
// "&" escaped as "&-"): being UTF-8 they cannot be meant as modified
// UTF-7, so they are taken as UTF-8; responses encode names in modified
// UTF-7, which the client decodes.
func TestGoIMAPClientIMAP4rev1(t *testing.T) {
	b := newMemBackend()
	b.deliver("INBOX", msg1)
	addr, _ := startServer(t, b, nil)
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("user", "pass").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Grüße & Co", nil).Wait(); err != nil {
		t.Fatalf("raw UTF-8 name without ENABLE: %v", err)
	}
	if boxes, err := c.List("", "Gr*", nil).Collect(); err != nil || len(boxes) != 1 || boxes[0].Mailbox != "Grüße & Co" {
		t.Errorf("list before ENABLE: %+v %v", boxes, err)
	}
	if _, err := c.Enable(imap.CapUTF8Accept).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Entwürfe", nil).Wait(); err != nil {
		t.Fatalf("create: %v", err)
	}
	boxes, err := c.List("", "Entw*", nil).Collect()
	if err != nil || len(boxes) != 1 || boxes[0].Mailbox != "Entwürfe" {
		t.Errorf("list: %+v %v", boxes, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sr, err := c.Search(&imap.SearchCriteria{Body: []string{"WORLD"}}, nil).Wait()
	if err != nil || len(sr.AllSeqNums()) != 1 {
		t.Errorf("search: %+v %v", sr, err)
	}
	// A message larger than a bufio buffer, fetched in one literal.
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef", 1<<14)
	ac := c.Append("INBOX", int64(len(big)), nil)
	io.WriteString(ac, big)
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil || len(msgs) != 1 || string(msgs[0].FindBodySection(&imap.FetchItemBodySection{})) != big {
		t.Errorf("big fetch: %v", err)
	}
}
