package badgerstore

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/sealmail/sealmail/store"
)

// The listing cache keeps, in memory, the metas of recently listed
// mailboxes, so that Messages need not walk badger's iterators over the
// older versions every flag change leaves behind (doc.go, Listing cache).
// It holds what the metas hold on disk in the clear: UID, dates, MODSEQ,
// sealed size, blob ID and flags; never a summary or a blob.
//
// An entry is exact for one state of its mailbox, named by a listTag read
// from the mailbox record in the same transaction as the metas. Every
// write that changes a meta also changes the record's tag (a new message
// raises UIDNEXT and HIGHESTMODSEQ, a flag change HIGHESTMODSEQ, a
// removal lowers the message count), so a reader serves an entry only if
// its tag is the tag of the record in the reader's own snapshot: a reader
// whose snapshot is older or newer than the entry lists from badger.
// Readers put what they listed under their snapshot's tag. The writer,
// after each commit, brings every entry of a mailbox the commit changed
// from the state before it to the state after it, using the writes it
// logged (commitLog), or drops the entry when it cannot tell.

// mboxRef names a mailbox in the cache.
type mboxRef struct{ acct, mbox uint64 }

// listTag names one state of a mailbox's metas.
type listTag struct {
	modSeq   uint64
	uidNext  uint32
	messages uint32
}

func tagOf(m *store.Mailbox) listTag {
	return listTag{modSeq: m.HighestModSeq, uidNext: m.UIDNext, messages: m.Messages}
}

// listed is one cached meta.
type listed struct {
	uid uint32
	md  meta
}

type listEntry struct {
	ref  mboxRef
	tag  listTag
	msgs []listed // ascending UID
	elem *list.Element
}

// listCache is bounded by the number of metas it holds; the least
// recently used entries go first. A zero max disables it.
type listCache struct {
	mu      sync.Mutex
	max     int
	n       int // metas held
	entries map[mboxRef]*listEntry
	lru     list.List // of *listEntry, most recent first
}

func newListCache(max int) *listCache {
	return &listCache{max: max, entries: make(map[mboxRef]*listEntry)}
}

// fits reports whether a mailbox of n messages may be cached: one
// mailbox takes at most a quarter of the cache.
func (c *listCache) fits(n int) bool { return c.max > 0 && n <= c.max/4 }

// get returns the messages of ref with from <= UID <= to (to 0: no upper
// bound) if the cache holds ref at tag, and with withBlobs their blob IDs.
func (c *listCache) get(ref mboxRef, tag listTag, from, to uint32, withBlobs bool) ([]store.Message, []uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.atLocked(ref, tag)
	if e == nil {
		return nil, nil, false
	}
	lo, _ := slices.BinarySearchFunc(e.msgs, from, cmpUID)
	hi := len(e.msgs)
	if to != 0 && to != 1<<32-1 {
		hi, _ = slices.BinarySearchFunc(e.msgs, to+1, cmpUID)
	}
	hi = max(hi, lo)
	msgs, blobs := toMessages(e.msgs[lo:hi], withBlobs)
	return msgs, blobs, true
}

// blobs returns the blob IDs and sealed sizes of the messages uids of ref
// if the cache holds ref at tag (0 and 0 for a UID the mailbox does not
// hold), and whether it does.
func (c *listCache) blobs(ref mboxRef, tag listTag, uids []uint32) ([]uint64, []int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.atLocked(ref, tag)
	if e == nil {
		return nil, nil, false
	}
	ids := make([]uint64, len(uids))
	sizes := make([]int64, len(uids))
	for i, uid := range uids {
		if k, ok := slices.BinarySearchFunc(e.msgs, uid, cmpUID); ok {
			ids[i], sizes[i] = e.msgs[k].md.Blob, e.msgs[k].md.SealedSize
		}
	}
	return ids, sizes, true
}

// atLocked returns the entry of ref if the cache holds it at tag, as
// the most recently used; nil otherwise. The caller holds c.mu.
func (c *listCache) atLocked(ref mboxRef, tag listTag) *listEntry {
	if c.max <= 0 {
		return nil
	}
	e := c.entries[ref]
	if e == nil || e.tag != tag {
		return nil
	}
	c.lru.MoveToFront(e.elem)
	return e
}

// toMessages returns src as the caller's own messages (its own slices,
// one backing array for all the flags, each message's part capped so
// that an append copies), and with withBlobs their blob IDs.
func toMessages(src []listed, withBlobs bool) ([]store.Message, []uint64) {
	nflags := 0
	for i := range src {
		nflags += len(src[i].md.Flags)
	}
	flags := make([]string, 0, nflags)
	out := make([]store.Message, len(src))
	var blobs []uint64
	if withBlobs {
		blobs = make([]uint64, len(src))
	}
	for i := range src {
		md := &src[i].md
		k := len(flags)
		flags = append(flags, md.Flags...)
		out[i] = store.Message{
			UID: src[i].uid, InternalDate: md.Date, Flags: flags[k:len(flags):len(flags)], ModSeq: md.ModSeq,
			SealedSize: md.SealedSize, SaveDate: md.Saved, EmailID: md.emailID(),
		}
		if withBlobs {
			blobs[i] = md.Blob
		}
	}
	return out, blobs
}

func cmpUID(l listed, uid uint32) int {
	switch {
	case l.uid < uid:
		return -1
	case l.uid > uid:
		return 1
	}
	return 0
}

// put caches msgs (ascending UIDs, owned by the cache from now on) as the
// metas of ref at tag, replacing what it held for ref unless that is of a
// later state.
func (c *listCache) put(ref mboxRef, tag listTag, msgs []listed) {
	if !c.fits(len(msgs)) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[ref]; e != nil {
		// HIGHESTMODSEQ never falls: a lower one is a reader's older
		// snapshot, which must not push out the newer state.
		if e.tag == tag || e.tag.modSeq > tag.modSeq {
			c.lru.MoveToFront(e.elem)
			return
		}
		c.removeLocked(e)
	}
	e := &listEntry{ref: ref, tag: tag, msgs: msgs}
	e.elem = c.lru.PushFront(e)
	c.entries[ref] = e
	c.n += len(msgs)
	c.evictLocked()
}

func (c *listCache) evictLocked() {
	for c.n > c.max {
		c.removeLocked(c.lru.Back().Value.(*listEntry))
	}
}

func (c *listCache) removeLocked(e *listEntry) {
	c.lru.Remove(e.elem)
	delete(c.entries, e.ref)
	c.n -= len(e.msgs)
}

// len returns the number of mailboxes cached (tests).
func (c *listCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// commitLog records what one write transaction did to mailboxes and
// metas, for the listing cache: the tag each mailbox record had in
// committed state before the transaction (pre), the record written last
// (post; nil: deleted), the metas written or deleted, and the accounts
// and mailboxes whose purge began. Only writes that join the transaction
// are logged: in batch mode, an operation's overlay when it is merged.
type commitLog struct {
	pre    map[mboxRef]listTag
	post   map[mboxRef]*listTag
	metas  map[mboxRef]map[uint32][]byte // nil value: deleted
	purged []mboxRef                     // mbox 0: the whole account
	// accounts are the addresses whose account records were deleted
	// (idCache).
	accounts []string
	// need is what the commit must sync (durable.go).
	need syncNeed
}

func newCommitLog() *commitLog {
	return &commitLog{
		pre:   make(map[mboxRef]listTag),
		post:  make(map[mboxRef]*listTag),
		metas: make(map[mboxRef]map[uint32][]byte),
	}
}

// sawMailbox records the tag of a mailbox record read from committed
// state: the first read of a record not written yet in the transaction.
func (l *commitLog) sawMailbox(ref mboxRef, m *store.Mailbox) {
	if _, ok := l.pre[ref]; ok {
		return
	}
	if _, ok := l.post[ref]; ok {
		return
	}
	l.pre[ref] = tagOf(m)
}

// note records one write that joins the transaction.
func (l *commitLog) note(key, val []byte, del bool) {
	l.need = max(l.need, needOf(val))
	if len(key) == 0 {
		return
	}
	switch key[0] {
	case pAccount:
		if del {
			l.accounts = append(l.accounts, string(key[1:]))
		}
	case pMeta:
		if len(key) != 21 {
			return
		}
		ref := mboxRef{binary.BigEndian.Uint64(key[1:9]), binary.BigEndian.Uint64(key[9:17])}
		ms := l.metas[ref]
		if ms == nil {
			ms = make(map[uint32][]byte)
			l.metas[ref] = ms
		}
		if del {
			val = nil
		}
		ms[binary.BigEndian.Uint32(key[17:21])] = val
	case pMailbox:
		if len(key) != 17 {
			return
		}
		ref := mboxRef{binary.BigEndian.Uint64(key[1:9]), binary.BigEndian.Uint64(key[9:17])}
		if del {
			l.post[ref] = nil
			return
		}
		m, err := decodeMailbox(ref.mbox, val)
		if err != nil {
			l.post[ref] = nil // unreadable: the entry goes
			return
		}
		tag := tagOf(&m.Mailbox)
		l.post[ref] = &tag
	case pPurge:
		if len(key) != 17 || del {
			return
		}
		l.purged = append(l.purged, mboxRef{binary.BigEndian.Uint64(key[1:9]), binary.BigEndian.Uint64(key[9:17])})
	}
}

// committed brings the cache to the state after l's transaction, which
// committed.
func (c *listCache) committed(l *commitLog) {
	if c.max <= 0 || len(l.post) == 0 && len(l.metas) == 0 && len(l.purged) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range l.purged {
		c.dropLocked(p)
	}
	for ref, post := range l.post {
		e := c.entries[ref]
		if e == nil {
			continue
		}
		pre, seen := l.pre[ref]
		switch {
		case post == nil || !seen:
			c.removeLocked(e)
		case e.tag == *post:
			// A reader already listed the new state.
		case e.tag != pre:
			c.removeLocked(e)
		default:
			if !c.applyLocked(e, l.metas[ref]) {
				c.removeLocked(e)
				continue
			}
			e.tag = *post
		}
	}
	for ref := range l.metas {
		if _, ok := l.post[ref]; !ok {
			// Metas changed and the record not rewritten: no tag
			// tells the states apart, so nothing cached may stay.
			if e := c.entries[ref]; e != nil {
				c.removeLocked(e)
			}
		}
	}
	c.evictLocked()
}

// failed is committed for a transaction whose commit failed: whatever it
// touched goes, since what reached the disk is not known.
func (c *listCache) failed(l *commitLog) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range l.purged {
		c.dropLocked(p)
	}
	for ref := range l.post {
		c.dropLocked(ref)
	}
	for ref := range l.metas {
		c.dropLocked(ref)
	}
}

// dropLocked removes the entry of p, or with p.mbox 0 every entry of
// the account.
func (c *listCache) dropLocked(p mboxRef) {
	if p.mbox != 0 {
		if e := c.entries[p]; e != nil {
			c.removeLocked(e)
		}
		return
	}
	for ref, e := range c.entries {
		if ref.acct == p.acct {
			c.removeLocked(e)
		}
	}
}

// applyLocked applies the logged meta writes ch to e. It returns false if
// a value cannot be decoded.
func (c *listCache) applyLocked(e *listEntry, ch map[uint32][]byte) bool {
	if len(ch) == 0 {
		return true
	}
	uids := make([]uint32, 0, len(ch))
	for uid := range ch {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	intern := make(map[string]string)
	for _, ls := range e.msgs {
		for _, f := range ls.md.Flags {
			intern[f] = f
		}
		if len(intern) > 8 {
			break
		}
	}
	if c.applyInPlace(e, uids, ch, intern) {
		return true
	}
	// Merge the sorted changes into the sorted entry.
	out := make([]listed, 0, len(e.msgs)+len(uids))
	i := 0
	for _, uid := range uids {
		for i < len(e.msgs) && e.msgs[i].uid < uid {
			out = append(out, e.msgs[i])
			i++
		}
		if i < len(e.msgs) && e.msgs[i].uid == uid {
			i++ // replaced or deleted
		}
		v := ch[uid]
		if v == nil {
			continue
		}
		md, err := decodeMeta(v, intern)
		if err != nil {
			return false
		}
		out = append(out, listed{uid: uid, md: md})
	}
	out = append(out, e.msgs[i:]...)
	if !c.fits(len(out)) {
		return false
	}
	c.n += len(out) - len(e.msgs)
	e.msgs = out
	return true
}

// applyInPlace applies ch to e without copying the entry when every change
// rewrites or removes a cached meta or adds one above the highest UID
// (flag changes, removals and new messages: the common writes). It
// returns false, having changed nothing, when it cannot, or when a value
// cannot be decoded.
func (c *listCache) applyInPlace(e *listEntry, uids []uint32, ch map[uint32][]byte, intern map[string]string) bool {
	last := uint32(0)
	if n := len(e.msgs); n > 0 {
		last = e.msgs[n-1].uid
	}
	pos := make([]int, len(uids))
	mds := make([]meta, len(uids))
	var rm []int // positions of removed metas, ascending as uids are
	added := 0
	for k, uid := range uids {
		v := ch[uid]
		if v == nil {
			i, ok := slices.BinarySearchFunc(e.msgs, uid, cmpUID)
			if !ok {
				return false
			}
			pos[k] = -2
			rm = append(rm, i)
			continue
		}
		md, err := decodeMeta(v, intern)
		if err != nil {
			return false
		}
		mds[k] = md
		if uid > last {
			pos[k] = -1
			added++
			continue
		}
		i, ok := slices.BinarySearchFunc(e.msgs, uid, cmpUID)
		if !ok {
			return false
		}
		pos[k] = i
	}
	if !c.fits(len(e.msgs) - len(rm) + added) {
		return false
	}
	for k := range uids {
		if pos[k] >= 0 {
			e.msgs[pos[k]].md = mds[k]
		}
	}
	if len(rm) > 0 {
		// One pass closes the gaps, from the first.
		w, j := rm[0], 0
		for r := rm[0]; r < len(e.msgs); r++ {
			if j < len(rm) && rm[j] == r {
				j++
				continue
			}
			e.msgs[w] = e.msgs[r]
			w++
		}
		clear(e.msgs[w:]) // their flags are garbage now
		e.msgs = e.msgs[:w]
		if cap(e.msgs) > 2*len(e.msgs)+64 {
			e.msgs = slices.Clone(e.msgs) // most of it removed: give the rest back
		}
	}
	for k, uid := range uids {
		if pos[k] == -1 {
			e.msgs = append(e.msgs, listed{uid: uid, md: mds[k]})
		}
	}
	c.n += added - len(rm)
	return true
}

// verifyLists compares every cached entry that names its mailbox's
// current state with the metas on disk and reports each difference to
// db.checkLists. The writer calls it after each commit when the hook is
// set (tests), so that state is the one the commit left.
func (db *DB) verifyLists() {
	type snap struct {
		ref  mboxRef
		tag  listTag
		msgs []listed
	}
	c := db.lists
	c.mu.Lock()
	snaps := make([]snap, 0, len(c.entries))
	for ref, e := range c.entries {
		snaps = append(snaps, snap{ref, e.tag, slices.Clone(e.msgs)})
	}
	c.mu.Unlock()
	// Not db.read: the caller whose op the writer runs holds closeMu, and
	// a Close waiting for it would block a second hold.
	txn := db.bdb.NewTransaction(false)
	defer txn.Discard()
	err := func(t *tx) error {
		for _, s := range snaps {
			rec, err := loadMailboxRec(t, s.ref.acct, s.ref.mbox)
			if errors.Is(err, errNoKey) {
				continue // deleted: never served again
			}
			if err != nil {
				return err
			}
			if tagOf(&rec.Mailbox) != s.tag {
				continue // an older state: never served again
			}
			disk, err := listMetas(context.Background(), t, s.ref.acct, &rec.Mailbox, store.ListOptions{})
			if err != nil {
				return err
			}
			if err := sameListing(s.msgs, disk); err != nil {
				return fmt.Errorf("listing cache: mailbox #%d at %+v: %w", s.ref.mbox, s.tag, err)
			}
		}
		return nil
	}(&tx{txn: txn})
	if err != nil {
		db.checkLists(err)
	}
}

// sameListing returns an error saying how got differs from want.
func sameListing(got, want []listed) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d messages cached, %d on disk", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		if g.uid != w.uid || g.md.ModSeq != w.md.ModSeq || g.md.SealedSize != w.md.SealedSize ||
			g.md.Blob != w.md.Blob || g.md.Email != w.md.Email || !g.md.Date.Equal(w.md.Date) ||
			!g.md.Saved.Equal(w.md.Saved) || !slices.Equal(g.md.Flags, w.md.Flags) {
			return fmt.Errorf("message %d: cached %+v, on disk UID %d %+v", g.uid, g.md, w.uid, w.md)
		}
	}
	return nil
}
