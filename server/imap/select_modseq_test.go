package imap

import (
	"context"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealmail/sealmail/store"
)

// afterMailbox is the server's store with a hook run once, right after
// the next Mailbox read (SELECT's HIGHESTMODSEQ, before its listing).
type afterMailbox struct {
	Store
	hook atomic.Pointer[func()]
}

func (s *afterMailbox) Mailbox(ctx context.Context, address, name string) (store.Mailbox, error) {
	mb, err := s.Store.Mailbox(ctx, address, name)
	if f := s.hook.Swap(nil); f != nil {
		(*f)()
	}
	return mb, err
}

// TestSelectModSeqDeliveredBetween: a delivery committed between
// SELECT's HIGHESTMODSEQ read and its listing is in the listing (EXISTS
// counts it), so the value the client may keep covers it: SELECT says
// its MODSEQ, and STATUS of the selected mailbox (keptModSeq) after the
// delivery is told says the store's HIGHESTMODSEQ, not the value read
// before it, which every later HIGHESTMODSEQ of the session kept until
// the message changed. A change the session has not been told of still
// holds the value below it.
func TestSelectModSeqDeliveredBetween(t *testing.T) {
	env, inbox, highest := untoldSetup(t)
	ctx := context.Background()
	hooked := &afterMailbox{Store: env.srv.st}
	env.srv.st = hooked
	var ds []store.Delivered
	deliver := func() {
		var err error
		ds, err = env.st.Deliver(ctx, []store.Delivery{{
			Account: alice, MailboxID: inbox, InternalDate: time.Now(), Blob: env.seal(alice, testMessage("between", "x")),
		}})
		if err != nil {
			t.Error(err)
		}
	}
	hooked.hook.Store(&deliver)
	c := env.rawLogin(alice, alicePW)
	before := highest()
	out := c.ok("SELECT INBOX (CONDSTORE)")
	if ds == nil {
		t.Fatal("no delivery between the read and the listing")
	}
	if m := regexp.MustCompile(`\* 7 EXISTS`).FindString(out); m == "" {
		t.Fatalf("SELECT does not list the delivery:\n%s", out)
	}
	sel := regexp.MustCompile(`OK \[HIGHESTMODSEQ (\d+)\]`).FindStringSubmatch(out)
	if sel == nil {
		t.Fatalf("no HIGHESTMODSEQ in\n%s", out)
	}
	if n, _ := strconv.ParseUint(sel[1], 10, 64); n != before+1 || highest() != before+1 {
		t.Errorf("SELECT: HIGHESTMODSEQ %d, want the listed delivery's %d (store: %d)", n, before+1, highest())
	}
	env.srv.Delivered(ds) // as SMTP tells it, after its commit
	env.srv.notify.wait()
	if got := statusModSeq(t, c.ok("STATUS INBOX (HIGHESTMODSEQ)"), "INBOX"); got != highest() {
		t.Errorf("STATUS after the delivery was told: HIGHESTMODSEQ %d, want the store's %d", got, highest())
	}

	// Never above a change the session has not heard of.
	res, err := env.st.StoreFlags(ctx, alice, inbox, store.FlagUpdate{UIDs: []uint32{7}, Op: store.FlagsAdd, Flags: []string{"$Untold"}})
	if err != nil || len(res.Changed) != 1 {
		t.Fatalf("StoreFlags: %v, %v", res, err)
	}
	if got := statusModSeq(t, c.ok("STATUS INBOX (HIGHESTMODSEQ)"), "INBOX"); got != res.Changed[0].ModSeq-1 {
		t.Errorf("STATUS with a change untold at %d: HIGHESTMODSEQ %d, want %d", res.Changed[0].ModSeq, got, res.Changed[0].ModSeq-1)
	}
	c.ok("LOGOUT")
}
