package wire

import (
	"github.com/emersion/go-imap/v2"
)

func parseLsub(p *parser, c *Command) error {
	l := &List{LSUB: true}
	c.Args = l
	if err := p.sp(); err != nil {
		return err
	}
	ref, err := p.astring()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	pat, err := p.listMailbox()
	if err != nil {
		return err
	}
	p.setPatterns(l, ref, []string{pat})
	return p.crlf()
}

// parseList reads LIST with the LIST-EXTENDED grammar (RFC 5258 §6):
// LIST [SP "(" select-opts ")"] SP ref SP (pattern / "(" patterns ")")
// [SP "RETURN" SP "(" return-opts ")"].
func parseList(p *parser, c *Command) error {
	l := &List{}
	c.Args = l
	if err := p.sp(); err != nil {
		return err
	}
	if b, err := p.peek(); err != nil {
		return err
	} else if b == '(' {
		if !p.has(imap.CapListExtended) {
			return bad("Syntax error: LIST selection options need LIST-EXTENDED")
		}
		l.Extended = true
		base := false
		err := p.list(true, func() error {
			k, err := p.keyword()
			if err != nil {
				return err
			}
			switch {
			case k == "SUBSCRIBED":
				l.Options.SelectSubscribed, base = true, true
			case k == "REMOTE":
				l.Options.SelectRemote = true
			case k == "RECURSIVEMATCH":
				l.Options.SelectRecursiveMatch = true
			case k == "SPECIAL-USE" && p.has(imap.CapSpecialUse):
				l.Options.SelectSpecialUse, base = true, true
			default:
				return bad("Unknown LIST selection option " + k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if l.Options.SelectRecursiveMatch && !base {
			return bad("RECURSIVEMATCH needs another selection option (RFC 5258 §3)")
		}
		if err := p.sp(); err != nil {
			return err
		}
	}
	ref, err := p.astring()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	var pats []string
	if b, err := p.peek(); err != nil {
		return err
	} else if b == '(' {
		if !p.has(imap.CapListExtended) {
			return bad("Syntax error: several LIST patterns need LIST-EXTENDED")
		}
		l.Extended = true
		err := p.list(false, func() error {
			pat, err := p.listMailbox()
			pats = append(pats, pat)
			return err
		})
		if err != nil {
			return err
		}
	} else {
		pat, err := p.listMailbox()
		if err != nil {
			return err
		}
		pats = []string{pat}
	}
	if ok, err := p.maybe(' '); err != nil {
		return err
	} else if ok {
		if !p.has(imap.CapListExtended) {
			return bad("Syntax error: LIST return options need LIST-EXTENDED")
		}
		k, err := p.keyword()
		if err != nil {
			return err
		}
		if k != "RETURN" {
			return bad("Syntax error: expected RETURN")
		}
		if err := p.sp(); err != nil {
			return err
		}
		l.Extended = true
		err = p.list(true, func() error {
			k, err := p.keyword()
			if err != nil {
				return err
			}
			switch {
			case k == "SUBSCRIBED":
				l.Options.ReturnSubscribed = true
			case k == "CHILDREN":
				l.Options.ReturnChildren = true
			case k == "SPECIAL-USE" && p.has(imap.CapSpecialUse):
				l.Options.ReturnSpecialUse = true
			case k == "STATUS" && p.has(imap.CapListStatus):
				if err := p.sp(); err != nil {
					return err
				}
				it := &StatusItems{}
				l.Options.ReturnStatus = it
				return p.statusItems(it)
			default:
				return bad("Unknown LIST return option " + k)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	p.setPatterns(l, ref, pats)
	return p.crlf()
}

// setPatterns decodes the reference and patterns into l. Names that are
// not valid in the client's encoding cannot match any mailbox and are
// dropped.
func (p *parser) setPatterns(l *List, ref string, pats []string) {
	r, ok := decodePattern(ref, p.utf8)
	if !ok {
		l.Patterns = []string{}
		return
	}
	l.Ref = r
	l.Patterns = make([]string, 0, len(pats))
	for _, pat := range pats {
		if d, ok := decodePattern(pat, p.utf8); ok {
			l.Patterns = append(l.Patterns, d)
		}
	}
}

// notifyEvents are RFC 5465 §5's events, by upper-case name.
var notifyEvents = map[string]string{
	"MESSAGENEW":            "MessageNew",
	"MESSAGEEXPUNGE":        "MessageExpunge",
	"FLAGCHANGE":            "FlagChange",
	"ANNOTATIONCHANGE":      "AnnotationChange",
	"MAILBOXNAME":           "MailboxName",
	"SUBSCRIPTIONCHANGE":    "SubscriptionChange",
	"MAILBOXMETADATACHANGE": "MailboxMetadataChange",
	"SERVERMETADATACHANGE":  "ServerMetadataChange",
}

// parseNotify reads NOTIFY (RFC 5465 §8): NONE, or SET [status-indicator]
// event-groups. The status indicator is accepted as "(STATUS)" and, as
// Dovecot and imaptest write it, as a bare STATUS.
func parseNotify(p *parser, c *Command) error {
	n := &Notify{}
	c.Args = n
	if err := p.sp(); err != nil {
		return err
	}
	k, err := p.keyword()
	if err != nil {
		return err
	}
	switch k {
	case "NONE":
		n.None = true
		return p.crlf()
	case "SET":
	default:
		return bad("Syntax error: expected NOTIFY SET or NONE")
	}
	if err := p.sp(); err != nil {
		return err
	}
	if paren := p.peekPrefix("(STATUS)"); paren || p.peekPrefix("STATUS ") {
		skip := len("STATUS")
		if paren {
			skip += 2
		}
		if _, err := p.br.Discard(skip); err != nil {
			return err
		}
		p.line += skip
		p.cmd += int64(skip)
		n.Status = true
		if err := p.sp(); err != nil {
			return err
		}
	}
	for {
		if err := p.arg(); err != nil {
			return err
		}
		g, err := p.notifyGroup()
		if err != nil {
			return err
		}
		n.Groups = append(n.Groups, g)
		if ok, err := p.maybe(' '); err != nil {
			return err
		} else if !ok {
			break
		}
	}
	return p.crlf()
}

// notifyGroup reads "(" filter-mailboxes SP events ")".
func (p *parser) notifyGroup() (NotifyGroup, error) {
	var g NotifyGroup
	if err := p.expect('(', "("); err != nil {
		return g, err
	}
	if err := p.enter(); err != nil {
		return g, err
	}
	defer p.leave()
	k, err := p.keyword()
	if err != nil {
		return g, err
	}
	g.Filter = NotifyFilter(k)
	switch g.Filter {
	case NotifySelected, NotifySelectedDelayed, NotifyInboxes, NotifyPersonal, NotifySubscribed:
	case NotifySubtree, NotifyMailboxes:
		if err := p.sp(); err != nil {
			return g, err
		}
		one := func() error {
			name, err := p.mailbox()
			g.Mailboxes = append(g.Mailboxes, name)
			return err
		}
		if b, err := p.peek(); err != nil {
			return g, err
		} else if b == '(' {
			if err := p.list(false, one); err != nil {
				return g, err
			}
		} else if err := one(); err != nil {
			return g, err
		}
	default:
		return g, bad("Unknown NOTIFY filter " + k)
	}
	if err := p.sp(); err != nil {
		return g, err
	}
	if b, err := p.peek(); err != nil {
		return g, err
	} else if b != '(' {
		k, err := p.keyword()
		if err != nil {
			return g, err
		}
		if k != "NONE" {
			return g, bad("Syntax error: expected events or NONE")
		}
	} else {
		err := p.list(false, func() error {
			k, err := p.keyword()
			if err != nil {
				return err
			}
			// Unknown events (event-ext) are passed on: the Session
			// answers NO [BADEVENT (…)] with what it supports.
			name, ok := notifyEvents[k]
			if !ok {
				name = k
			}
			ev := NotifyEvent{Name: name}
			if name == "MessageNew" {
				if p.peekPrefix(" (") {
					if _, err := p.readByte(); err != nil {
						return err
					}
					it := &FetchItems{}
					if err := p.list(false, func() error { return p.fetchAtt(it) }); err != nil {
						return err
					}
					ev.Fetch = it
				}
			}
			g.Events = append(g.Events, ev)
			return nil
		})
		if err != nil {
			return g, err
		}
	}
	if err := p.expect(')', ")"); err != nil {
		return g, err
	}
	return g, nil
}
