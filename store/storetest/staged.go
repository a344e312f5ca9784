package storetest

import (
	"bytes"
	"io"
	"testing"

	"github.com/sealmail/sealmail/store"
)

// bigSize is larger than any sensible piece size (a few MiB), with an odd
// tail, so staged blobs span pieces and end in a partial one.
const bigSize = 3<<20 + 12345

// stage writes b for addr through a BlobWriter, in writes of step bytes,
// and finishes it.
func stage(t *testing.T, s store.Store, addr string, b []byte, step int) store.StagedBlob {
	t.Helper()
	w, err := s.StageBlob(ctxBg, addr)
	if err != nil {
		t.Fatalf("StageBlob(%s): %v", addr, err)
	}
	for off := 0; off < len(b); off += step {
		if _, err := w.Write(b[off:min(off+step, len(b))]); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	sb, err := w.Finish(ctxBg)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if sb.Size != int64(len(b)) || sb.Account != addr {
		t.Fatalf("Finish = %+v, want size %d for %s", sb, len(b), addr)
	}
	return sb
}

// readBlob reads a message through OpenBlob, in small reads, and checks
// the size it reports.
func readBlob(t *testing.T, s store.Store, addr string, mbox uint64, uid uint32) []byte {
	t.Helper()
	r, size, err := s.OpenBlob(ctxBg, addr, mbox, uid)
	if err != nil {
		t.Fatalf("OpenBlob(%s, %d, %d): %v", addr, mbox, uid, err)
	}
	defer r.Close()
	var out bytes.Buffer
	buf := make([]byte, 7777)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read blob: %v", err)
		}
	}
	if int64(out.Len()) != size {
		t.Fatalf("OpenBlob said %d bytes, read %d", size, out.Len())
	}
	return out.Bytes()
}

// testStaged: a staged blob is invisible until one Deliver links it, in
// the same transaction as inline copies; it reads back whole (Blob) and
// in pieces (OpenBlob); it links once only, and only for its account.
func testStaged(t *testing.T, s store.Store) {
	const addr, other = "big@example.org", "small@example.org"
	newAccount(t, s, addr)
	newAccount(t, s, other)
	big := blob(7, bigSize)
	w, err := s.StageBlob(ctxBg, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Discard()
	if _, err := w.Write(big[:bigSize/2]); err != nil {
		t.Fatal(err)
	}
	// Half written: nothing visible, nothing counted.
	if ms := messages(t, s, addr, store.Inbox, store.ListOptions{}); len(ms) != 0 || usedBytes(t, s, addr) != 0 {
		t.Fatalf("staging shows: %d messages, %d bytes used", len(ms), usedBytes(t, s, addr))
	}
	if _, err := w.Write(big[bigSize/2:]); err != nil {
		t.Fatal(err)
	}
	sb, err := w.Finish(ctxBg)
	if err != nil || sb.Size != bigSize {
		t.Fatalf("Finish = %+v, %v", sb, err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Finish succeeded")
	}
	if ms := messages(t, s, addr, store.Inbox, store.ListOptions{}); len(ms) != 0 || usedBytes(t, s, addr) != 0 {
		t.Fatalf("finished staging shows: %d messages", len(ms))
	}
	small := blob(8, 500)
	got, err := s.Deliver(ctxBg, []store.Delivery{
		{Account: other, Blob: small},
		{Account: addr, Staged: &sb, Flags: []string{`\Flagged`}, InternalDate: date0},
	})
	if err != nil {
		t.Fatalf("Deliver with a staged blob: %v", err)
	}
	if len(got) != 2 || got[1].Account != addr || got[1].UID != 1 {
		t.Fatalf("Deliver = %+v", got)
	}
	inbox := idOf(t, s, addr, store.Inbox)
	ms := messages(t, s, addr, store.Inbox, store.ListOptions{})
	if len(ms) != 1 || ms[0].SealedSize != bigSize || !ms[0].InternalDate.Equal(date0) || !equalStrings(ms[0].Flags, []string{`\Flagged`}) {
		t.Fatalf("messages %+v", ms)
	}
	if used := usedBytes(t, s, addr); used != bigSize {
		t.Errorf("used %d, want %d", used, bigSize)
	}
	checkCounters(t, s, addr, store.Inbox)
	if b, err := s.Blob(ctxBg, addr, inbox, 1); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("Blob of a staged message: %d bytes, %v", len(b), err)
	}
	if b := readBlob(t, s, addr, inbox, 1); !bytes.Equal(b, big) {
		t.Fatalf("OpenBlob of a staged message: %d bytes differ", len(b))
	}
	if b := readBlob(t, s, other, idOf(t, s, other, store.Inbox), 1); !bytes.Equal(b, small) {
		t.Fatalf("OpenBlob of an inline message differs")
	}
	// Linked once only; Discard after the link changes nothing.
	_, err = s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb}})
	wantErr(t, "second link", err, store.ErrNotFound)
	if err := w.Discard(); err != nil {
		t.Errorf("Discard after the link: %v", err)
	}
	if b, err := s.Blob(ctxBg, addr, inbox, 1); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("Discard after the link hurt the message: %v", err)
	}
	// Another account cannot link it; a failed call links nothing.
	sb2 := stage(t, s, addr, blob(9, 4000), 1000)
	_, err = s.Deliver(ctxBg, []store.Delivery{{Account: other, Staged: &sb2}})
	wantErr(t, "link for another account", err, store.ErrNotFound)
	_, err = s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb2}, {Account: "nobody@example.org", Blob: small}})
	wantErr(t, "link in a failing call", err, store.ErrNotFound)
	if ms := messages(t, s, addr, store.Inbox, store.ListOptions{}); len(ms) != 1 {
		t.Fatalf("a failed call linked a blob: %d messages", len(ms))
	}
	if _, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb2}}); err != nil {
		t.Fatalf("link after a failed call: %v", err)
	}
	if b := readBlob(t, s, addr, inbox, 2); !bytes.Equal(b, blob(9, 4000)) {
		t.Fatal("small staged blob differs")
	}
	// Discarded before the link: gone.
	w3, err := s.StageBlob(ctxBg, addr)
	if err != nil {
		t.Fatal(err)
	}
	w3.Write(blob(10, 2<<20))
	sb3, err := w3.Finish(ctxBg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w3.Discard(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb3}})
	wantErr(t, "link after Discard", err, store.ErrNotFound)
	// Unknown account; empty blob.
	_, err = s.StageBlob(ctxBg, "nobody@example.org")
	wantErr(t, "StageBlob for nobody", err, store.ErrNotFound)
	w4, err := s.StageBlob(ctxBg, addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w4.Finish(ctxBg); err == nil {
		t.Error("Finish of an empty blob succeeded")
	}
	w4.Discard()
	// A blob and a staged blob in one delivery is a caller's mistake.
	sb5 := stage(t, s, addr, blob(11, 100), 100)
	if _, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb5, Blob: small}}); err == nil {
		t.Error("Deliver took both a blob and a staged blob")
	}
}

// testStagedQuota: a staged blob counts against the quota when it is
// linked, and a refused link leaves it staged for another try.
func testStagedQuota(t *testing.T, s store.Store) {
	const addr = "sq@example.org"
	newAccount(t, s, addr)
	if err := s.SetQuota(ctxBg, addr, bigSize-1); err != nil {
		t.Fatal(err)
	}
	sb := stage(t, s, addr, blob(1, bigSize), 64<<10)
	_, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb}})
	wantErr(t, "staged over quota", err, store.ErrOverQuota)
	if used := usedBytes(t, s, addr); used != 0 {
		t.Errorf("used %d after a refused link", used)
	}
	if err := s.SetQuota(ctxBg, addr, bigSize); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb}}); err != nil {
		t.Fatalf("link after the quota was raised: %v", err)
	}
	if used := usedBytes(t, s, addr); used != bigSize {
		t.Errorf("used %d, want %d", used, bigSize)
	}
}

// testStagedLifecycle: copies, moves, expunges and deletions handle
// staged blobs like inline ones.
func testStagedLifecycle(t *testing.T, s store.Store) {
	const addr = "sl@example.org"
	newAccount(t, s, addr)
	big := blob(3, bigSize)
	sb := stage(t, s, addr, big, 1<<20)
	if _, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb}}); err != nil {
		t.Fatal(err)
	}
	inbox, archive := idOf(t, s, addr, store.Inbox), idOf(t, s, addr, "Archive")
	if err := s.SetSummaries(ctxBg, addr, inbox, []store.SummaryUpdate{{UID: 1, Summary: []byte("sum"), SessionKey: []byte("key")}}); err != nil {
		t.Fatal(err)
	}
	res, err := s.CopyMessages(ctxBg, addr, inbox, archive, []uint32{1})
	if err != nil || len(res.Pairs) != 1 {
		t.Fatalf("copy: %+v %v", res, err)
	}
	if used := usedBytes(t, s, addr); used != 2*bigSize {
		t.Errorf("used %d after copy, want %d", used, 2*bigSize)
	}
	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if b := readBlob(t, s, addr, archive, res.Pairs[0].Dst); !bytes.Equal(b, big) {
		t.Fatal("copy of a staged message differs after the original was expunged")
	}
	ms := messages(t, s, addr, "Archive", store.ListOptions{WithSummary: true})
	if len(ms) != 1 || string(ms[0].Summary) != "sum" || ms[0].SealedSize != bigSize {
		t.Fatalf("copied message %+v", ms)
	}
	if _, err := s.MoveMessages(ctxBg, addr, archive, inbox, []uint32{res.Pairs[0].Dst}); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Blob(ctxBg, addr, inbox, 2); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("moved staged message: %v", err)
	}
	if used := usedBytes(t, s, addr); used != bigSize {
		t.Errorf("used %d, want %d", used, bigSize)
	}
	// A reader that outlives its message fails, it does not return
	// another message's bytes.
	r, _, err := s.OpenBlob(ctxBg, addr, inbox, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctxBg, addr, inbox, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, r); err == nil && n != bigSize {
		t.Errorf("reader of an expunged message read %d bytes without an error", n)
	}
	r.Close()
	if used := usedBytes(t, s, addr); used != 0 {
		t.Errorf("used %d after expunging everything", used)
	}
	// A staged message in a deleted mailbox, and a staged blob of a
	// deleted account.
	lists, err := s.CreateMailbox(ctxBg, addr, store.MailboxSpec{Name: "Lists"})
	if err != nil {
		t.Fatal(err)
	}
	sb2 := stage(t, s, addr, blob(4, 2<<20), 1<<20)
	if _, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, MailboxID: lists.ID, Staged: &sb2}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctxBg, addr, lists.ID); err != nil {
		t.Fatal(err)
	}
	w, err := s.StageBlob(ctxBg, addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(blob(5, 2<<20)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteAccount(ctxBg, addr); err != nil {
		t.Fatal(err)
	}
	// The writer of a deleted account cannot finish, or its blob cannot
	// be linked.
	if sb3, err := w.Finish(ctxBg); err == nil {
		_, err = s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &sb3}})
		wantErr(t, "link for a deleted account", err, store.ErrNotFound)
	}
	w.Discard()
}

// testStagedReopen: a blob staged but never linked when the store closes
// (a crash between pieces, or between the last piece and the link) is
// gone after the store reopens, and its reference links nothing.
func testStagedReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	const addr = "crash@example.org"
	newAccount(t, s, addr)
	finished := stage(t, s, addr, blob(1, bigSize), 1<<20)
	w, err := s.StageBlob(ctxBg, addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(blob(2, bigSize)); err != nil { // pieces written, no Finish
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	_, err = s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &finished}})
	wantErr(t, "link after reopen", err, store.ErrNotFound)
	if ms := messages(t, s, addr, store.Inbox, store.ListOptions{}); len(ms) != 0 {
		t.Fatalf("%d messages after reopen", len(ms))
	}
	if used := usedBytes(t, s, addr); used != 0 {
		t.Fatalf("used %d after reopen", used)
	}
	// The store works on.
	again := stage(t, s, addr, blob(3, bigSize), 1<<20)
	if _, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Staged: &again}}); err != nil {
		t.Fatal(err)
	}
	if b := readBlob(t, s, addr, idOf(t, s, addr, store.Inbox), 1); !bytes.Equal(b, blob(3, bigSize)) {
		t.Fatal("blob staged after reopen differs")
	}
}

// testQuotaSettings: QuotaNone and QuotaDefault are settings, QuotaLimit
// is the limit in force. The suite's stores have no default quota.
func testQuotaSettings(t *testing.T, s store.Store) {
	const addr = "qs@example.org"
	newAccount(t, s, addr)
	check := func(setting, limit int64) {
		t.Helper()
		a := account(t, s, addr)
		p, err := s.PublicAccount(ctxBg, addr)
		if err != nil {
			t.Fatal(err)
		}
		if a.QuotaBytes != setting || a.QuotaLimit != limit || p.QuotaBytes != setting || p.QuotaLimit != limit {
			t.Errorf("quota setting %d/%d, limit %d/%d; want %d, %d", a.QuotaBytes, p.QuotaBytes, a.QuotaLimit, p.QuotaLimit, setting, limit)
		}
	}
	check(store.QuotaDefault, 0)
	if err := s.SetQuota(ctxBg, addr, 300); err != nil {
		t.Fatal(err)
	}
	check(300, 300)
	deliverN(t, s, addr, "", 1, 300)
	_, err := s.Deliver(ctxBg, []store.Delivery{{Account: addr, Blob: blob(1, 1)}})
	wantErr(t, "over quota", err, store.ErrOverQuota)
	if err := s.SetQuota(ctxBg, addr, store.QuotaNone); err != nil {
		t.Fatal(err)
	}
	check(store.QuotaNone, 0)
	deliverN(t, s, addr, "", 1, 1000)
	if err := s.SetQuota(ctxBg, addr, -2); err == nil {
		t.Error("SetQuota(-2) succeeded")
	}
	check(store.QuotaNone, 0)
}
