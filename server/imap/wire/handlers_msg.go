package wire

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/emersion/go-imap/v2"
)

// errNoResponse means the handler has written its tagged response itself
// (STARTTLS, COMPRESS: before switching the stream).
var errNoResponse = errors.New("imap wire: response already written")

var timeNow = time.Now

// cmdAppend runs APPEND: the Session's Appender receives each message as
// its literal streams in; MULTIAPPEND's messages are committed together.
func (c *Conn) cmdAppend(cmd *Command, p *parser) (res result, err error) {
	a := cmd.Args.(*Append)
	app, err := c.sess.Append(c.cmdCtx, a)
	if err != nil {
		return result{}, err
	}
	committed := false
	defer func() {
		if !committed {
			app.Abort()
		}
	}()
	ar := &appendReader{p: p, limit: c.lim.AppendLimit, maxMsgs: c.lim.AppendMessages, appender: app, ctx: c.cmdCtx,
		mapErr: func(err error) error {
			resp, internal := responseFor(err)
			if internal {
				c.log.Error("append", "err", err)
			}
			return &cmdError{resp: resp}
		}}
	for {
		m, err := ar.next()
		var ie *imap.Error // an Appender's refusal of a CATENATE URL
		if err != nil && !errors.As(err, &ie) {
			return result{}, asConnError(err)
		}
		if err != nil {
			return result{}, err
		}
		if m == nil {
			break
		}
		aerr := app.AddMessage(c.cmdCtx, m)
		// A broken stream (the client went away, a syntax error inside
		// CATENATE) is the cause, whatever the Appender made of it.
		if serr := bodyErr(m.Body); serr != nil {
			if errors.As(serr, &ie) {
				ar.finish(m, true)
				return result{}, serr
			}
			return result{}, asConnError(serr)
		}
		if ferr := ar.finish(m, aerr != nil); ferr != nil {
			return result{}, asConnError(ferr)
		}
		if aerr != nil {
			return result{}, aerr
		}
	}
	d, err := app.Commit(c.cmdCtx)
	committed = true
	if err != nil {
		return result{}, err
	}
	if d != nil && len(d.UIDs) > 0 {
		return okCode("APPENDUID "+strconv.FormatUint(uint64(d.UIDValidity), 10)+" "+d.UIDs.String(), "APPEND completed"), nil
	}
	return ok("APPEND completed"), nil
}

// cmdIdle runs IDLE (RFC 2177): updates are written as the Session
// signals them, with a keepalive, until DONE.
func (c *Conn) cmdIdle(cmd *Command, _ *parser) (result, error) {
	if err := c.writeOffStack("+ idling\r\n"); err != nil {
		return result{}, err
	}
	if err := c.poll(PollIdle); err != nil {
		return result{}, err
	}
	// IDLE ends after idleTimeout, however many updates and keepalives
	// were written meanwhile.
	c.setReadPhase(idleTimeout, time.Now().Add(idleTimeout))
	if err := c.waitUpdating(PollIdle, c.lim.IdleKeepalive); err != nil {
		return result{}, asConnError(err)
	}
	c.setReadPhase(c.stateLimits(c.getState()).ReadTimeout, time.Time{})
	line, err := c.r.readLine()
	if err != nil {
		return result{}, asConnError(err)
	}
	if !bytes.EqualFold(line, []byte("DONE")) {
		return result{}, bad("Expected DONE")
	}
	return ok("IDLE terminated"), nil
}

func (c *Conn) cmdExpunge(cmd *Command, _ *parser) (result, error) {
	var uids imap.UIDSet
	if e, ok := cmd.Args.(*Expunge); ok {
		uids = e.UIDs
	}
	if s, isMS := c.sess.(SessionExpungeModSeq); isMS {
		n, err := s.ExpungeModSeq(c.cmdCtx, &c.uw, uids)
		if err != nil || n == 0 {
			return ok(commandName(cmd) + " completed"), err
		}
		res := okCode("HIGHESTMODSEQ "+strconv.FormatUint(n, 10), commandName(cmd)+" completed")
		res.afterPoll = true
		return res, nil
	}
	if err := c.sess.Expunge(c.cmdCtx, &c.uw, uids); err != nil {
		return result{}, err
	}
	return ok(commandName(cmd) + " completed"), nil
}

// usesModSeq reports whether a search program has a MODSEQ key.
func usesModSeq(k *SearchKey) bool {
	if k.Op == SearchModSeq {
		return true
	}
	for i := range k.Keys {
		if usesModSeq(&k.Keys[i]) {
			return true
		}
	}
	return false
}

func (c *Conn) cmdSearch(cmd *Command, _ *parser) (result, error) {
	s := cmd.Args.(*Search)
	if usesModSeq(&s.Key) {
		if err := c.condStoreEnabling(); err != nil {
			return result{}, err
		}
	}
	d, err := c.sess.Search(c.cmdCtx, s)
	if err != nil {
		return result{}, err
	}
	c.writeSearch("SEARCH", s.Tag, s.UID, &s.Return, d, false)
	return ok(commandName(cmd) + " completed"), nil
}

func (c *Conn) cmdSort(cmd *Command, _ *parser) (result, error) {
	s := cmd.Args.(*Sort)
	if usesModSeq(&s.Key) {
		if err := c.condStoreEnabling(); err != nil {
			return result{}, err
		}
	}
	d, err := c.sess.(SessionSort).Sort(c.cmdCtx, s)
	if err != nil {
		return result{}, err
	}
	c.writeSearch("SORT", s.Tag, s.UID, &s.Return, d, true)
	return ok(commandName(cmd) + " completed"), nil
}

// writeSearch writes the result of SEARCH or SORT: "* SEARCH n…" /
// "* SORT n…" for IMAP4rev1 clients without RETURN, else ESEARCH (RFC
// 4731, RFC 5267) with the options asked for, nothing for SAVE alone.
func (c *Conn) writeSearch(name, tag string, uid bool, ret *SearchReturn, d *SearchData, sorted bool) {
	e := &c.enc
	// IMAP4rev2 answers SEARCH with ESEARCH (RFC 9051 §6.4.4); SORT keeps
	// its SORT response unless RETURN asks for ESORT.
	if !ret.ESearch && (sorted || !c.Enabled(imap.CapIMAP4rev2)) {
		e.raw("* " + name)
		for _, n := range d.Nums {
			e.sp()
			e.number(n)
		}
		if d.ModSeq != 0 && len(d.Nums) > 0 {
			e.raw(" (MODSEQ ")
			e.number64(d.ModSeq)
			e.byte(')')
		}
		e.crlf()
		return
	}
	r := *ret
	if !r.ESearch {
		r.All = true
	}
	if !r.Min && !r.Max && !r.All && !r.Count && r.Partial == nil {
		return // SAVE (or UPDATE) alone: no ESEARCH (RFC 5182 §2.4)
	}
	e.raw("* ESEARCH (TAG ")
	e.quoted(safeTag(tag))
	e.byte(')')
	if uid {
		e.raw(" UID")
	}
	nums := d.Nums
	if len(nums) > 0 {
		lo, hi := nums[0], nums[len(nums)-1]
		if !sorted {
			for _, n := range nums {
				lo, hi = min(lo, n), max(hi, n)
			}
		}
		if r.Min {
			e.raw(" MIN ")
			e.number(lo)
		}
		if r.Max {
			e.raw(" MAX ")
			e.number(hi)
		}
	}
	if r.Count {
		e.raw(" COUNT ")
		e.number(uint32(len(nums)))
	}
	if r.All && len(nums) > 0 {
		e.raw(" ALL ")
		if sorted {
			e.numList(nums)
		} else {
			e.numList(sortedUnique(nums))
		}
	}
	if r.Partial != nil {
		e.raw(" PARTIAL (")
		e.int64(r.Partial.First)
		e.byte(':')
		e.int64(r.Partial.Last)
		e.sp()
		part := partialSlice(nums, r.Partial)
		if len(part) == 0 {
			e.raw("NIL")
		} else if sorted {
			e.numList(part)
		} else {
			e.numList(sortedUnique(part))
		}
		e.byte(')')
	}
	if d.ModSeq != 0 && len(nums) > 0 {
		e.raw(" MODSEQ ")
		e.number64(d.ModSeq)
	}
	e.crlf()
}

// sortedUnique returns nums ascending without duplicates (a copy if it
// must reorder).
func sortedUnique(nums []uint32) []uint32 {
	ascending := true
	for i := 1; i < len(nums); i++ {
		if nums[i] <= nums[i-1] {
			ascending = false
			break
		}
	}
	if ascending {
		return nums
	}
	out := append([]uint32(nil), nums...)
	slices.Sort(out)
	j := 0
	for i, n := range out {
		if i == 0 || n != out[j-1] {
			out[j] = n
			j++
		}
	}
	return out[:j]
}

// partialSlice returns the results at positions p.First..p.Last (from 1;
// negative from the end).
func partialSlice(nums []uint32, p *Partial) []uint32 {
	n := int64(len(nums))
	first, last := p.First, p.Last
	if first < 0 {
		first, last = n+last+1, n+first+1
	}
	first = max(first, 1)
	last = min(last, n)
	if first > last {
		return nil
	}
	return nums[first-1 : last]
}

func (c *Conn) cmdThread(cmd *Command, _ *parser) (result, error) {
	t := cmd.Args.(*Thread)
	if usesModSeq(&t.Key) {
		if err := c.condStoreEnabling(); err != nil {
			return result{}, err
		}
	}
	nodes, err := c.sess.(SessionThread).Thread(c.cmdCtx, t)
	if err != nil {
		return result{}, err
	}
	e := &c.enc
	e.raw("* THREAD")
	if len(nodes) > 0 {
		e.sp()
	}
	for i := range nodes {
		writeThread(e, &nodes[i], true)
	}
	e.crlf()
	return ok(commandName(cmd) + " completed"), nil
}

// writeThread writes one thread (RFC 5256 §4): a chain of single replies
// is written flat, "(1 2 3)"; several replies each get their parentheses,
// "(1 (2)(3))". A missing parent (Num 0) writes only its children.
func writeThread(e *encoder, n *ThreadNode, top bool) {
	if top {
		e.byte('(')
	}
	for {
		if n.Num != 0 {
			e.number(n.Num)
		}
		if len(n.Children) == 1 && n.Num != 0 {
			e.sp()
			n = &n.Children[0]
			continue
		}
		if len(n.Children) > 0 {
			if n.Num != 0 {
				e.sp()
			}
			for i := range n.Children {
				writeThread(e, &n.Children[i], true)
			}
		}
		break
	}
	if top {
		e.byte(')')
	}
}

func (c *Conn) cmdFetch(cmd *Command, _ *parser) (result, error) {
	f := cmd.Args.(*Fetch)
	if f.Items.ModSeq || f.ChangedSince != 0 {
		c.enable(imap.CapCondStore)
	}
	if err := c.sess.Fetch(c.cmdCtx, &c.uw, f); err != nil {
		return result{}, err
	}
	return ok(commandName(cmd) + " completed"), nil
}

func (c *Conn) cmdStore(cmd *Command, _ *parser) (result, error) {
	s := cmd.Args.(*Store)
	if s.HasUnchangedSince {
		c.enable(imap.CapCondStore)
	}
	d, err := c.sess.Store(c.cmdCtx, &c.uw, s)
	if err != nil {
		return result{}, err
	}
	if d != nil && d.Modified != nil && d.Modified.String() != "" {
		return okCode("MODIFIED "+d.Modified.String(), "Conditional STORE failed for some messages"), nil
	}
	return ok(commandName(cmd) + " completed"), nil
}

func (c *Conn) cmdCopy(cmd *Command, _ *parser) (result, error) {
	d, err := c.sess.Copy(c.cmdCtx, cmd.Args.(*Copy))
	if err != nil {
		return result{}, err
	}
	if d != nil && len(d.SourceUIDs) > 0 {
		return okCode(copyUIDCode(d), commandName(cmd)+" completed"), nil
	}
	return ok(commandName(cmd) + " completed"), nil
}

func (c *Conn) cmdMove(cmd *Command, _ *parser) (result, error) {
	if err := c.sess.Move(c.cmdCtx, &c.uw, cmd.Args.(*Copy)); err != nil {
		return result{}, err
	}
	return ok(commandName(cmd) + " completed"), nil
}
