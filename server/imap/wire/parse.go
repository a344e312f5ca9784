package wire

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// connState is the state of a connection (RFC 9051 §3).
type connState int

const (
	stateNotAuth connState = 1 << iota
	stateAuth
	stateSelected
	stateLogout

	anyState   = stateNotAuth | stateAuth | stateSelected
	authStates = stateAuth | stateSelected
)

func (s connState) String() string {
	switch s {
	case stateNotAuth:
		return "not authenticated"
	case stateAuth:
		return "authenticated"
	case stateSelected:
		return "selected"
	case stateLogout:
		return "logout"
	}
	return "unknown"
}

// parser reads the arguments of one command. It knows what the connection
// advertises (extension syntax is accepted only when its capability is)
// and whether mailbox names are UTF-8.
type parser struct {
	*reader
	caps    imap.CapSet // advertised
	utf8    bool        // IMAP4rev2 or UTF8=ACCEPT enabled
	qresync bool        // QRESYNC enabled
}

func (p *parser) has(c imap.Cap) bool { return p.caps.Has(c) }

// commandSpec says where a command is valid and how its arguments are read.
type commandSpec struct {
	states connState
	cap    imap.Cap // the syntax exists only when this is advertised
	uid    bool     // valid after UID
	// parse reads the arguments through the final CRLF; nil means the
	// command has none.
	parse func(p *parser, c *Command) error
}

// commands is the grammar of every command, by upper-case name. The type
// of Command.Args is given for each.
var commands map[string]*commandSpec

func init() {
	commands = map[string]*commandSpec{
		// Any state (RFC 9051 §6.1, ID RFC 2971).
		"CAPABILITY": {states: anyState},
		"NOOP":       {states: anyState},
		"LOGOUT":     {states: anyState},
		"ID":         {states: anyState, cap: imap.CapID, parse: parseID}, // *ID

		// Not authenticated (§6.2).
		"STARTTLS":     {states: stateNotAuth},
		"LOGIN":        {states: stateNotAuth, parse: parseLogin},        // *Login
		"AUTHENTICATE": {states: stateNotAuth, parse: parseAuthenticate}, // *Authenticate

		// Authenticated (§6.3).
		"ENABLE":         {states: stateAuth, parse: parseEnable},                                  // *Enable
		"SELECT":         {states: authStates, parse: parseSelect},                                 // *Select
		"EXAMINE":        {states: authStates, parse: parseSelect},                                 // *Select
		"CREATE":         {states: authStates, parse: parseCreate},                                 // *Create
		"DELETE":         {states: authStates, parse: parseMailboxArg},                             // *MailboxArg
		"RENAME":         {states: authStates, parse: parseRename},                                 // *Rename
		"SUBSCRIBE":      {states: authStates, parse: parseMailboxArg},                             // *MailboxArg
		"UNSUBSCRIBE":    {states: authStates, parse: parseMailboxArg},                             // *MailboxArg
		"LIST":           {states: authStates, parse: parseList},                                   // *List
		"LSUB":           {states: authStates, parse: parseLsub},                                   // *List
		"NAMESPACE":      {states: authStates},                                                     //
		"STATUS":         {states: authStates, parse: parseStatus},                                 // *Status
		"APPEND":         {states: authStates, parse: parseAppendStart},                            // *Append, then the messages
		"IDLE":           {states: authStates},                                                     //
		"UNAUTHENTICATE": {states: authStates, cap: imap.CapUnauthenticate},                        //
		"GETQUOTA":       {states: authStates, cap: imap.CapQuota, parse: parseGetQuota},           // *QuotaRoot
		"GETQUOTAROOT":   {states: authStates, cap: imap.CapQuota, parse: parseMailboxArg},         // *MailboxArg
		"SETQUOTA":       {states: authStates, cap: imap.CapQuota, parse: parseSetQuota},           // *SetQuota
		"NOTIFY":         {states: authStates, cap: imap.CapNotify, parse: parseNotify},            // *Notify
		"COMPRESS":       {states: authStates, cap: "COMPRESS=DEFLATE", parse: parseCompress},      // *Compress
		"CANCELUPDATE":   {states: stateSelected, cap: "CONTEXT=SEARCH", parse: parseCancelUpdate}, // *CancelUpdate

		// Selected (§6.4).
		"CHECK":    {states: stateSelected},
		"CLOSE":    {states: stateSelected},
		"UNSELECT": {states: stateSelected},
		"EXPUNGE":  {states: stateSelected, uid: true, parse: parseExpunge},                 // nil, or *Expunge for UID EXPUNGE
		"SEARCH":   {states: stateSelected, uid: true, parse: parseSearch},                  // *Search
		"FETCH":    {states: stateSelected, uid: true, parse: parseFetch},                   // *Fetch
		"STORE":    {states: stateSelected, uid: true, parse: parseStore},                   // *Store
		"COPY":     {states: stateSelected, uid: true, parse: parseCopy},                    // *Copy
		"MOVE":     {states: stateSelected, uid: true, parse: parseCopy},                    // *Copy
		"SORT":     {states: stateSelected, uid: true, cap: imap.CapSort, parse: parseSort}, // *Sort
		"THREAD":   {states: stateSelected, uid: true, cap: "THREAD", parse: parseThread},   // *Thread
	}
}

// specFor returns the grammar of name (upper case) for a command with or
// without UID, or nil for an unknown command or one whose extension is not
// advertised.
func specFor(name string, uid bool, caps imap.CapSet) *commandSpec {
	s := commands[name]
	if s == nil || uid && !s.uid {
		return nil
	}
	switch s.cap {
	case "":
	case "THREAD":
		if !caps.Has("THREAD=REFERENCES") && !caps.Has("THREAD=ORDEREDSUBJECT") {
			return nil
		}
	default:
		if !caps.Has(s.cap) {
			return nil
		}
	}
	return s
}

// readTag reads a command's tag.
func (r *reader) readTag() (string, error) {
	t, err := r.chars(isTagChar, "tag")
	var ce *cmdError
	if errors.As(err, &ce) {
		return "", bad("Missing or invalid tag")
	}
	return t, err
}

// mailbox reads a mailbox name and decodes it.
func (p *parser) mailbox() (string, error) {
	raw, err := p.astring()
	if err != nil {
		return "", err
	}
	return decodeMailbox(raw, p.utf8)
}

func parseLogin(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	user, err := p.astring()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	pass, err := p.astringBytes()
	if err != nil {
		return err
	}
	c.Args = &Login{Username: user, Password: pass}
	return p.crlf()
}

func parseAuthenticate(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	mech, err := p.keyword()
	if err != nil {
		return err
	}
	a := &Authenticate{Mechanism: mech}
	c.Args = a
	if ok, err := p.maybe(' '); err != nil {
		return err
	} else if ok {
		// SASL-IR (RFC 4959): base64 or "=" for an empty response.
		s, err := p.chars(isBase64Char, "initial response")
		if err != nil {
			return err
		}
		ir, err := decodeSASL(s)
		if err != nil {
			return err
		}
		a.InitialResponse = ir
	}
	return p.crlf()
}

func isBase64Char(b byte) bool {
	return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '+' || b == '/' || b == '='
}

// decodeSASL decodes a SASL response line: base64, "=" being empty.
func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, bad("Invalid base64")
	}
	return b, nil
}

func parseEnable(p *parser, c *Command) error {
	e := &Enable{}
	c.Args = e
	for {
		if err := p.sp(); err != nil {
			return err
		}
		if err := p.arg(); err != nil {
			return err
		}
		a, err := p.keyword()
		if err != nil {
			return err
		}
		e.Caps = append(e.Caps, imap.Cap(a))
		if eol, err := p.atEOL(); err != nil {
			return err
		} else if eol {
			return p.crlf()
		}
	}
}

// ID field bounds (RFC 2971 §3.3).
const (
	maxIDFields   = 30
	maxIDKeyLen   = 30
	maxIDValueLen = 1024
)

func parseID(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	id := &ID{}
	c.Args = id
	if b, err := p.peek(); err != nil {
		return err
	} else if b != '(' {
		if _, ok, err := p.nstring(); err != nil {
			return err
		} else if ok {
			return bad("Syntax error: ID takes a list or NIL")
		}
		return p.crlf()
	}
	id.Params = []IDParam{}
	var key string
	n := 0
	err := p.list(false, func() error {
		n++
		if n%2 == 1 {
			k, err := p.str()
			if err != nil {
				return err
			}
			if len(k) > maxIDKeyLen || n/2 >= maxIDFields {
				return badCode(imap.ResponseCodeLimit, "ID field too long or too many")
			}
			key = k
			return nil
		}
		v, ok, err := p.nstring()
		if err != nil {
			return err
		}
		if len(v) > maxIDValueLen {
			return badCode(imap.ResponseCodeLimit, "ID value too long")
		}
		id.Params = append(id.Params, IDParam{Key: key, Value: v, Nil: !ok})
		return nil
	})
	if err != nil {
		return err
	}
	if n%2 == 1 {
		return bad("Syntax error: ID field without value")
	}
	return p.crlf()
}

func parseMailboxArg(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	name, err := p.mailbox()
	if err != nil {
		return err
	}
	c.Args = &MailboxArg{Mailbox: name}
	return p.crlf()
}

func parseGetQuota(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	root, err := p.astring()
	if err != nil {
		return err
	}
	c.Args = &QuotaRoot{Root: root}
	return p.crlf()
}

func parseSetQuota(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	root, err := p.astring()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	sq := &SetQuota{Root: root}
	c.Args = sq
	var res string
	n := 0
	err = p.list(true, func() error {
		n++
		if n%2 == 1 {
			a, err := p.keyword()
			res = a
			return err
		}
		v, err := p.number64()
		if err != nil {
			return err
		}
		sq.Limits = append(sq.Limits, QuotaLimit{Resource: imap.QuotaResourceType(res), Limit: v})
		return nil
	})
	if err != nil {
		return err
	}
	if n%2 == 1 {
		return bad("Syntax error: quota resource without limit")
	}
	return p.crlf()
}

func parseRename(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	from, err := p.mailbox()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	to, err := p.mailbox()
	if err != nil {
		return err
	}
	c.Args = &Rename{Mailbox: from, NewName: to}
	return p.crlf()
}

func parseCreate(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	name, err := p.mailbox()
	if err != nil {
		return err
	}
	cr := &Create{Mailbox: name}
	c.Args = cr
	if ok, err := p.maybe(' '); err != nil {
		return err
	} else if ok {
		// create-params (RFC 4466 §2.2): only USE (RFC 6154 §3).
		if !p.has(imap.CapCreateSpecialUse) {
			return bad("Syntax error: unexpected CREATE parameters")
		}
		err := p.list(false, func() error {
			k, err := p.keyword()
			if err != nil {
				return err
			}
			if k != "USE" {
				return bad("Unknown CREATE parameter " + k)
			}
			if err := p.sp(); err != nil {
				return err
			}
			return p.list(true, func() error {
				if err := p.expect('\\', "special-use attribute"); err != nil {
					return err
				}
				a, err := p.atom()
				if err != nil {
					return err
				}
				cr.SpecialUse = append(cr.SpecialUse, canonicalMailboxAttr("\\"+a))
				return nil
			})
		})
		if err != nil {
			return err
		}
	}
	return p.crlf()
}

// canonicalMailboxAttr gives a known attribute its canonical case.
func canonicalMailboxAttr(a string) imap.MailboxAttr {
	for _, k := range []imap.MailboxAttr{
		imap.MailboxAttrAll, imap.MailboxAttrArchive, imap.MailboxAttrDrafts, imap.MailboxAttrFlagged,
		imap.MailboxAttrJunk, imap.MailboxAttrSent, imap.MailboxAttrTrash, imap.MailboxAttrImportant,
	} {
		if strings.EqualFold(string(k), a) {
			return k
		}
	}
	return imap.MailboxAttr(a)
}

func parseSelect(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	name, err := p.mailbox()
	if err != nil {
		return err
	}
	s := &Select{Mailbox: name, ReadOnly: c.Name == "EXAMINE"}
	c.Args = s
	if ok, err := p.maybe(' '); err != nil {
		return err
	} else if ok {
		err := p.list(false, func() error {
			k, err := p.keyword()
			if err != nil {
				return err
			}
			switch {
			case k == "CONDSTORE" && p.has(imap.CapCondStore):
				s.CondStore = true
				return nil
			case k == "QRESYNC" && p.has(imap.CapQResync):
				if !p.qresync {
					return bad("QRESYNC must be enabled first (RFC 7162 §3.2.3)")
				}
				if err := p.sp(); err != nil {
					return err
				}
				q, err := p.qresyncParam()
				s.QResync = q
				return err
			}
			return bad("Unknown SELECT parameter " + k)
		})
		if err != nil {
			return err
		}
	}
	return p.crlf()
}

// qresyncParam reads "(" uidvalidity SP mod-sequence-value [SP known-uids]
// [SP seq-match-data] ")".
func (p *parser) qresyncParam() (*QResync, error) {
	q := &QResync{}
	if err := p.expect('(', "("); err != nil {
		return nil, err
	}
	var err error
	if q.UIDValidity, err = p.nzNumber(); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if q.ModSeq, err = p.number64(); err != nil {
		return nil, err
	}
	if ok, err := p.maybe(' '); err != nil {
		return nil, err
	} else if ok {
		b, err := p.peek()
		if err != nil {
			return nil, err
		}
		if b != '(' {
			set, err := p.numSet(true, false)
			if err != nil {
				return nil, err
			}
			q.KnownUIDs = set.(imap.UIDSet)
			if ok, err := p.maybe(' '); err != nil {
				return nil, err
			} else if !ok {
				goto end
			}
		}
		if err := p.expect('(', "("); err != nil {
			return nil, err
		}
		seqs, err := p.numSet(false, false)
		if err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
		uids, err := p.numSet(true, false)
		if err != nil {
			return nil, err
		}
		q.SeqMatchSeqs, q.SeqMatchUIDs = seqs.(imap.SeqSet), uids.(imap.UIDSet)
		if err := p.expect(')', ")"); err != nil {
			return nil, err
		}
	}
end:
	if err := p.expect(')', ")"); err != nil {
		return nil, err
	}
	return q, nil
}

func parseStatus(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	name, err := p.mailbox()
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	st := &Status{Mailbox: name}
	c.Args = st
	if err := p.statusItems(&st.Items); err != nil {
		return err
	}
	return p.crlf()
}

// statusItems reads "(" status-att *(SP status-att) ")".
func (p *parser) statusItems(it *StatusItems) error {
	return p.list(false, func() error {
		k, err := p.keyword()
		if err != nil {
			return err
		}
		switch {
		case k == "MESSAGES":
			it.Messages = true
		case k == "RECENT":
			it.Recent = true
		case k == "UIDNEXT":
			it.UIDNext = true
		case k == "UIDVALIDITY":
			it.UIDValidity = true
		case k == "UNSEEN":
			it.Unseen = true
		case k == "DELETED":
			it.Deleted = true
		case k == "SIZE":
			it.Size = true
		case k == "APPENDLIMIT": // always advertised
			it.AppendLimit = true
		case k == "DELETED-STORAGE" && p.has(imap.CapQuota):
			it.DeletedStorage = true
		case k == "HIGHESTMODSEQ" && p.has(imap.CapCondStore):
			it.HighestModSeq = true
		case k == "MAILBOXID" && p.has(imap.CapObjectID):
			it.MailboxID = true
		default:
			return bad("Unknown STATUS item " + k)
		}
		return nil
	})
}

func parseExpunge(p *parser, c *Command) error {
	if !c.UID {
		return p.crlf()
	}
	if err := p.sp(); err != nil {
		return err
	}
	set, err := p.numSet(true, true)
	if err != nil {
		return err
	}
	c.Args = &Expunge{UIDs: set.(imap.UIDSet)}
	return p.crlf()
}

func parseCopy(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	set, err := p.numSet(c.UID, true)
	if err != nil {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	name, err := p.mailbox()
	if err != nil {
		return err
	}
	c.Args = &Copy{UID: c.UID, Set: set, Mailbox: name}
	return p.crlf()
}

func parseStore(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	set, err := p.numSet(c.UID, true)
	if err != nil {
		return err
	}
	s := &Store{UID: c.UID, Set: set}
	c.Args = s
	if err := p.sp(); err != nil {
		return err
	}
	if b, err := p.peek(); err != nil {
		return err
	} else if b == '(' {
		// store-modifiers (RFC 4466 §2.5): only UNCHANGEDSINCE.
		if !p.has(imap.CapCondStore) {
			return bad("Syntax error: unexpected STORE modifiers")
		}
		err := p.list(false, func() error {
			k, err := p.keyword()
			if err != nil {
				return err
			}
			if k != "UNCHANGEDSINCE" {
				return bad("Unknown STORE modifier " + k)
			}
			if err := p.sp(); err != nil {
				return err
			}
			s.UnchangedSince, err = p.number64()
			s.HasUnchangedSince = true
			return err
		})
		if err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
	}
	op := imap.StoreFlagsSet
	if ok, err := p.maybe('+'); err != nil {
		return err
	} else if ok {
		op = imap.StoreFlagsAdd
	} else if ok, err := p.maybe('-'); err != nil {
		return err
	} else if ok {
		op = imap.StoreFlagsDel
	}
	k, err := p.keyword()
	if err != nil {
		return err
	}
	switch k {
	case "FLAGS":
	case "FLAGS.SILENT":
		s.Flags.Silent = true
	default:
		return bad("Syntax error: expected FLAGS")
	}
	s.Flags.Op = op
	if err := p.sp(); err != nil {
		return err
	}
	if b, err := p.peek(); err != nil {
		return err
	} else if b == '(' {
		if s.Flags.Flags, err = p.flagList(); err != nil {
			return err
		}
	} else {
		s.Flags.Flags = []imap.Flag{}
		for {
			if err := p.arg(); err != nil {
				return err
			}
			f, err := p.flag(false)
			if err != nil {
				return err
			}
			s.Flags.Flags = append(s.Flags.Flags, f)
			if ok, err := p.maybe(' '); err != nil {
				return err
			} else if !ok {
				break
			}
		}
	}
	return p.crlf()
}

func parseCompress(p *parser, c *Command) error {
	if err := p.sp(); err != nil {
		return err
	}
	m, err := p.keyword()
	if err != nil {
		return err
	}
	c.Args = &Compress{Mechanism: m}
	return p.crlf()
}

func parseCancelUpdate(p *parser, c *Command) error {
	cu := &CancelUpdate{}
	c.Args = cu
	for {
		if err := p.sp(); err != nil {
			return err
		}
		if err := p.arg(); err != nil {
			return err
		}
		t, err := p.str()
		if err != nil {
			return err
		}
		cu.Tags = append(cu.Tags, t)
		if eol, err := p.atEOL(); err != nil {
			return err
		} else if eol {
			return p.crlf()
		}
	}
}
