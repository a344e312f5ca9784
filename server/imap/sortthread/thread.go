package sortthread

import (
	"cmp"
	"context"
	"slices"
)

// Node is one message of a THREAD result and its replies. Num 0 is a
// missing parent (a dummy), whose children are siblings under it; it
// only occurs at the top level.
type Node struct {
	Num      uint32
	Children []Node
}

// maxRefs bounds the references of one message that REFERENCES links:
// beyond it the first one and the last maxRefs-1 are kept, which is how
// RFC 5322 §3.6.4 advises a writer to trim a long References field.
const maxRefs = 256

// checkEvery is how many messages Thread handles between looks at its
// context.
const checkEvery = 256

// ThreadReferences threads msgs with RFC 5256's REFERENCES algorithm
// (§3): by Message-ID, References and In-Reply-To, then by base subject.
// It reads Num, Seq, Sent, Subject, MessageID, References and ReplyOrFwd.
// It stops with ctx's error when ctx ends.
func ThreadReferences(ctx context.Context, msgs []Message) ([]Node, error) {
	t := &threader{table: make(map[string]*container, len(msgs))}
	byseq := make([]*Message, len(msgs))
	for i := range msgs {
		byseq[i] = &msgs[i]
	}
	slices.SortFunc(byseq, func(a, b *Message) int { return cmp.Compare(a.Seq, b.Seq) })

	// Each message gets the container of its Message-ID; one without an
	// ID, or whose ID an earlier message has, gets one of its own.
	own := make([]*container, len(byseq))
	for i, m := range byseq {
		c := t.table[m.MessageID]
		if m.MessageID == "" || c != nil && c.msg != nil {
			c = t.newContainer()
		} else if c == nil {
			c = t.newContainer()
			t.table[m.MessageID] = c
		}
		c.msg = m
		own[i] = c
	}

	// (1) Link messages.
	for i, m := range byseq {
		if i%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		refs := m.References
		if len(refs) > maxRefs {
			refs = append(refs[:1:1], refs[len(refs)-(maxRefs-1):]...)
		}
		// (A) Each reference the parent of the next, where that breaks
		// no existing link and makes no loop.
		var prev *container
		for _, id := range refs {
			c := t.lookup(id)
			if prev != nil && c.parent == nil && c != prev && !isAncestor(c, prev) {
				link(prev, c)
			}
			prev = c
		}
		// (B) The last reference is the message's parent: its own
		// References are authoritative, so an earlier link goes.
		cur := own[i]
		if cur.parent != nil {
			unlink(cur)
		}
		if prev != nil && prev != cur && !isAncestor(cur, prev) {
			link(prev, cur)
		}
	}

	// (2) The root set: every container without a parent.
	var roots []*container
	for _, c := range t.all {
		if c.parent == nil {
			roots = append(roots, c)
		}
	}
	// (3) Prune dummies.
	roots = prune(roots, true)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// (4) Sort the root set by sent date, a dummy by its first child.
	for _, c := range roots {
		if c.msg == nil {
			sortSiblings(c.children)
		}
	}
	sortSiblings(roots)

	// (5) Merge threads with the same base subject.
	roots = mergeSubjects(roots)

	// (6) Sort every set of siblings, the deepest first.
	sortTree(roots)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nodes(roots), nil
}

// container is a node of the REFERENCES tree: a message, or a dummy for a
// message that is referenced but absent.
type container struct {
	msg      *Message // nil: dummy
	parent   *container
	children []*container
}

type threader struct {
	table map[string]*container // by message ID
	all   []*container          // in creation order
}

func (t *threader) newContainer() *container {
	c := &container{}
	t.all = append(t.all, c)
	return c
}

// lookup returns the container of a message ID, a new dummy if none.
func (t *threader) lookup(id string) *container {
	c := t.table[id]
	if c == nil {
		c = t.newContainer()
		t.table[id] = c
	}
	return c
}

// isAncestor reports whether a is c or one of c's ancestors: making c the
// parent of a would then make a loop.
func isAncestor(a, c *container) bool {
	for p := c; p != nil; p = p.parent {
		if p == a {
			return true
		}
	}
	return false
}

func link(parent, child *container) {
	child.parent = parent
	parent.children = append(parent.children, child)
}

func unlink(c *container) {
	p := c.parent
	if i := slices.Index(p.children, c); i >= 0 {
		p.children = slices.Delete(p.children, i, i+1)
	}
	c.parent = nil
}

// prune removes dummies from a level of the tree (RFC 5256 §3 step 3): a
// dummy without children goes; one with children gives them its place,
// except at the top level where only a single child is promoted.
func prune(level []*container, top bool) []*container {
	out := level[:0:0]
	for _, c := range level {
		c.children = prune(c.children, false)
		switch {
		case c.msg != nil:
			out = append(out, c)
		case len(c.children) == 0:
		case !top || len(c.children) == 1:
			for _, ch := range c.children {
				ch.parent = c.parent
			}
			out = append(out, c.children...)
		default:
			out = append(out, c)
		}
	}
	return out
}

// first returns the message that stands for c in a comparison: c's, or a
// dummy's first child's.
func first(c *container) *Message {
	for c.msg == nil {
		if len(c.children) == 0 {
			return nil
		}
		c = c.children[0]
	}
	return c.msg
}

// compareSent orders by sent date, then sequence number (RFC 5256 §2.2).
func compareSent(a, b *Message) int {
	if a == nil || b == nil {
		switch {
		case a == b:
			return 0
		case a == nil:
			return 1
		}
		return -1
	}
	if r := a.Sent.Compare(b.Sent); r != 0 {
		return r
	}
	return cmp.Compare(a.Seq, b.Seq)
}

func sortSiblings(level []*container) {
	slices.SortStableFunc(level, func(a, b *container) int { return compareSent(first(a), first(b)) })
}

// sortTree sorts every level under level's containers, then level itself.
func sortTree(level []*container) {
	for _, c := range level {
		sortTree(c.children)
	}
	sortSiblings(level)
}

// mergeSubjects is step 5 of REFERENCES: roots with the same base subject
// become one thread. roots is in sent-date order.
func mergeSubjects(roots []*container) []*container {
	subject := func(c *container) string {
		if m := first(c); m != nil {
			return m.Subject
		}
		return ""
	}
	reply := func(c *container) bool { return c.msg != nil && c.msg.ReplyOrFwd }

	// (B) One root per subject: a dummy before a message, a message that
	// is not a reply or forward before one that is.
	table := make(map[string]*container)
	for _, c := range roots {
		s := subject(c)
		if s == "" {
			continue
		}
		old := table[s]
		if old == nil || old.msg != nil && (c.msg == nil || reply(old) && !reply(c)) {
			table[s] = c
		}
	}

	// (C) Merge every other root with the same subject into the table's.
	// Positions need no care: step 6 sorts the top level again.
	out := slices.Clone(roots)
	gone := make(map[*container]bool)
	for _, c := range roots {
		s := subject(c)
		if s == "" {
			continue
		}
		t := table[s]
		if t == c {
			continue
		}
		switch {
		case t.msg == nil && c.msg == nil:
			for _, ch := range c.children {
				link(t, ch)
			}
			c.children = nil
			gone[c] = true
		case t.msg == nil:
			link(t, c)
			gone[c] = true
		case c.msg == nil:
			// Unreachable as the table prefers dummies; kept total:
			// the dummy becomes the thread's top.
			link(c, t)
			gone[t] = true
			table[s] = c
		case reply(c) && !reply(t):
			link(t, c)
			gone[c] = true
		default:
			d := &container{}
			link(d, t)
			link(d, c)
			gone[t], gone[c] = true, true
			out = append(out, d)
			table[s] = d
		}
	}
	kept := out[:0]
	for _, c := range out {
		if !gone[c] {
			kept = append(kept, c)
		}
	}
	return kept
}

// nodes converts a tree of containers to Nodes.
func nodes(level []*container) []Node {
	if len(level) == 0 {
		return nil
	}
	out := make([]Node, len(level))
	for i, c := range level {
		if c.msg != nil {
			out[i].Num = c.msg.Num
		}
		out[i].Children = nodes(c.children)
	}
	return out
}

// ThreadOrderedSubject threads msgs with RFC 5256's ORDEREDSUBJECT
// algorithm (§3): messages with the same base subject form a thread, the
// earliest its root and the others its children in sent-date order;
// threads are ordered by their root's sent date. It reads Num, Seq, Sent
// and Subject.
func ThreadOrderedSubject(msgs []Message) []Node {
	order := make([]*Message, len(msgs))
	for i := range msgs {
		order[i] = &msgs[i]
	}
	slices.SortFunc(order, func(a, b *Message) int {
		if r := cmp.Compare(a.Subject, b.Subject); r != 0 {
			return r
		}
		return compareSent(a, b)
	})
	type thread struct {
		root *Message
		node Node
	}
	var threads []thread
	for i := 0; i < len(order); {
		j := i + 1
		for j < len(order) && order[j].Subject == order[i].Subject {
			j++
		}
		t := thread{root: order[i], node: Node{Num: order[i].Num}}
		for _, m := range order[i+1 : j] {
			t.node.Children = append(t.node.Children, Node{Num: m.Num})
		}
		threads = append(threads, t)
		i = j
	}
	slices.SortFunc(threads, func(a, b thread) int { return compareSent(a.root, b.root) })
	out := make([]Node, len(threads))
	for i := range threads {
		out[i] = threads[i].node
	}
	return out
}
