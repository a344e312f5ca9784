package imap

import (
	"context"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/store"
)

// List implements wire.Session: LIST (RFC 9051 §6.3.9), LSUB (RFC 3501
// §6.3.9), LIST-EXTENDED (RFC 5258: SUBSCRIBED, RECURSIVEMATCH,
// SPECIAL-USE selection; CHILDREN, SUBSCRIBED, SPECIAL-USE, STATUS
// return options) and the delimiter query LIST "" "".
func (s *session) List(ctx context.Context, w *wire.ListWriter, cmd *wire.List) error {
	a, err := s.state()
	if err != nil {
		return err
	}
	if len(cmd.Patterns) == 1 && cmd.Patterns[0] == "" && !cmd.Extended && !cmd.LSUB {
		// The hierarchy delimiter and root (RFC 9051 §6.3.9).
		return w.List(&wire.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim, Mailbox: ""})
	}
	mbs, err := s.srv.st.Mailboxes(ctx, a.account)
	if err != nil {
		return protoErr(a.log, "list", err)
	}
	subs, err := s.srv.st.Subscriptions(ctx, a.account)
	if err != nil {
		return protoErr(a.log, "list", err)
	}
	pats := make([]string, 0, len(cmd.Patterns))
	for _, p := range cmd.Patterns {
		pats = append(pats, joinPattern(cmd.Ref, p))
	}
	t := newTree(mbs, subs)
	var out []*wire.ListData
	if cmd.LSUB {
		out = t.lsub(pats)
	} else {
		out = t.list(pats, &cmd.Options)
	}
	for _, d := range out {
		if cmd.Options.ReturnStatus != nil && d.Status == nil {
			if e := t.byName[d.Mailbox]; e != nil && e.mb != nil {
				if d.Status, err = s.statusData(ctx, a, *e.mb, cmd.Options.ReturnStatus); err != nil {
					return err
				}
			}
		}
		if err := w.List(d); err != nil {
			return err
		}
	}
	return nil
}

// joinPattern interprets a pattern relative to a reference name (RFC 9051
// §6.3.9): the reference is a prefix, unless the pattern is absolute.
func joinPattern(ref, pat string) string {
	if ref == "" || strings.HasPrefix(pat, store.Delimiter) {
		return pat
	}
	return ref + pat
}

// matchPattern reports whether name matches an IMAP LIST pattern: '*'
// matches anything, '%' anything but the delimiter. "INBOX" matches in
// any case, as the name is. The cost is linear in len(name)×len(pat),
// whatever the wildcards.
func matchPattern(name, pat string) bool {
	if matchWild(name, pat) {
		return true
	}
	if strings.HasPrefix(name, store.Inbox) && len(pat) >= len(store.Inbox) && strings.EqualFold(pat[:len(store.Inbox)], store.Inbox) {
		return matchWild(name, store.Inbox+pat[len(store.Inbox):])
	}
	return false
}

func matchWild(name, pat string) bool {
	// cur[j]: pat[:j] matches name[:i].
	cur := make([]bool, len(pat)+1)
	next := make([]bool, len(pat)+1)
	cur[0] = true
	for j := 1; j <= len(pat); j++ {
		cur[j] = cur[j-1] && (pat[j-1] == '*' || pat[j-1] == '%')
	}
	for i := 1; i <= len(name); i++ {
		c := name[i-1]
		next[0] = false
		for j := 1; j <= len(pat); j++ {
			switch p := pat[j-1]; p {
			case '*':
				next[j] = next[j-1] || cur[j]
			case '%':
				next[j] = next[j-1] || (cur[j] && c != delim)
			default:
				next[j] = cur[j-1] && p == c
			}
		}
		cur, next = next, cur
	}
	return cur[len(pat)]
}

// matchesAny reports whether name matches one of pats.
func matchesAny(name string, pats []string) bool {
	for _, p := range pats {
		if matchPattern(name, p) {
			return true
		}
	}
	return false
}

// entry is one name LIST may report: a mailbox, a missing parent of one,
// or a subscribed name without a mailbox.
type entry struct {
	name       string
	mb         *store.Mailbox // nil if no mailbox has the name
	subscribed bool
	children   bool // some mailbox is below it
}

// tree is an account's names for one LIST.
type tree struct {
	byName map[string]*entry
	names  []string // sorted
}

func newTree(mbs []store.Mailbox, subs []string) *tree {
	t := &tree{byName: make(map[string]*entry, len(mbs)+len(subs))}
	get := func(n string) *entry {
		e := t.byName[n]
		if e == nil {
			e = &entry{name: n}
			t.byName[n] = e
			t.names = append(t.names, n)
		}
		return e
	}
	for i := range mbs {
		e := get(mbs[i].Name)
		e.mb = &mbs[i]
		for _, p := range parents(mbs[i].Name) {
			get(p).children = true
		}
	}
	for _, n := range subs {
		get(n).subscribed = true
	}
	slices.Sort(t.names)
	return t
}

// descendants calls f for each name below n, in order.
func (t *tree) descendants(n string, f func(*entry)) {
	prefix := n + store.Delimiter
	i, _ := slices.BinarySearch(t.names, prefix)
	for ; i < len(t.names) && strings.HasPrefix(t.names[i], prefix); i++ {
		f(t.byName[t.names[i]])
	}
}

// list answers LIST and LIST-EXTENDED.
func (t *tree) list(pats []string, o *wire.ListOptions) []*wire.ListData {
	var out []*wire.ListData
	for _, n := range t.names {
		e := t.byName[n]
		if !matchesAny(n, pats) {
			continue
		}
		d := &wire.ListData{Mailbox: n, Delim: delim}
		if o.SelectSubscribed {
			if o.SelectRecursiveMatch {
				// RFC 5258 §3.5: a name whose subscribed descendant does
				// not match a pattern (so is not listed itself) is listed
				// with CHILDINFO.
				t.descendants(n, func(c *entry) {
					if c.subscribed && !matchesAny(c.name, pats) {
						d.ChildInfo = true
					}
				})
			}
			if !e.subscribed && !d.ChildInfo {
				continue
			}
		} else if e.mb == nil && !e.children {
			continue // a subscribed name without a mailbox: not in plain LIST
		}
		if o.SelectSpecialUse && (e.mb == nil || e.mb.SpecialUse == "") {
			continue
		}
		switch {
		case e.mb == nil && !e.children:
			d.Attrs = append(d.Attrs, imap.MailboxAttrNonExistent)
		case e.mb == nil:
			d.Attrs = append(d.Attrs, imap.MailboxAttrNoSelect)
			if o.SelectSubscribed || o.ReturnSubscribed {
				d.Attrs = append(d.Attrs, imap.MailboxAttrNonExistent)
			}
		}
		if e.children {
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasChildren)
		} else if e.mb != nil {
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if e.subscribed && (o.SelectSubscribed || o.ReturnSubscribed) {
			d.Attrs = append(d.Attrs, imap.MailboxAttrSubscribed)
		}
		if e.mb != nil && e.mb.SpecialUse != "" {
			d.Attrs = append(d.Attrs, imap.MailboxAttr(e.mb.SpecialUse))
		}
		out = append(out, d)
	}
	return out
}

// lsub answers LSUB (RFC 3501 §6.3.9): subscribed names that match; and
// where a subscribed name does not match but a name above it does (a
// '%' pattern), that name, with \Noselect unless it is subscribed itself.
func (t *tree) lsub(pats []string) []*wire.ListData {
	seen := map[string]bool{}
	var out []*wire.ListData
	for _, n := range t.names {
		e := t.byName[n]
		if !e.subscribed {
			continue
		}
		if matchesAny(n, pats) {
			if !seen[n] {
				seen[n] = true
				out = append(out, &wire.ListData{Mailbox: n, Delim: delim, Attrs: []imap.MailboxAttr{}})
			}
			continue
		}
		for _, p := range parents(n) {
			if seen[p] || !matchesAny(p, pats) {
				continue
			}
			seen[p] = true
			d := &wire.ListData{Mailbox: p, Delim: delim, Attrs: []imap.MailboxAttr{}}
			if pe := t.byName[p]; pe == nil || !pe.subscribed {
				d.Attrs = append(d.Attrs, imap.MailboxAttrNoSelect)
			}
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *wire.ListData) int { return strings.Compare(a.Mailbox, b.Mailbox) })
	return out
}
