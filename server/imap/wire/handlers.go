package wire

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

// Handlers of the commands valid in any state, before authentication, and
// of mailboxes. Message commands are in handlers_msg.go.

func (c *Conn) cmdCapability(cmd *Command, _ *parser) (result, error) {
	c.enc.raw("* CAPABILITY ")
	c.enc.raw(strings.Join(c.capabilityList(), " "))
	c.enc.crlf()
	return ok("CAPABILITY completed"), nil
}

func (c *Conn) cmdNoop(cmd *Command, _ *parser) (result, error) {
	return ok(cmd.Name + " completed"), nil
}

func (c *Conn) cmdLogout(cmd *Command, _ *parser) (result, error) {
	c.enc.raw("* BYE Logging out\r\n")
	c.writeStatus(cmd.Tag, ok("LOGOUT completed"))
	c.flush()
	c.setState(stateLogout)
	return result{}, errSessionEnded
}

// cmdID answers ID (RFC 2971) with Options.ServerID and logs the client's
// name and version.
func (c *Conn) cmdID(cmd *Command, _ *parser) (result, error) {
	if id := cmd.Args.(*ID); id.Params != nil {
		var attrs []any
		for _, p := range id.Params {
			switch strings.ToLower(p.Key) {
			case "name", "version", "os", "vendor":
				if !p.Nil {
					attrs = append(attrs, "client_"+strings.ToLower(p.Key), logSafe(p.Value, 64))
				}
			}
		}
		if len(attrs) > 0 {
			c.log.Info("client ID", attrs...)
		}
	}
	e := &c.enc
	e.raw("* ID ")
	sid := c.srv.opt.ServerID
	fields := []string{}
	if sid != nil {
		for _, kv := range [][2]string{
			{"name", sid.Name}, {"version", sid.Version}, {"os", sid.OS}, {"os-version", sid.OSVersion},
			{"vendor", sid.Vendor}, {"support-url", sid.SupportURL}, {"address", sid.Address},
			{"date", sid.Date}, {"command", sid.Command}, {"arguments", sid.Arguments},
			{"environment", sid.Environment},
		} {
			if kv[1] != "" {
				fields = append(fields, kv[0], kv[1])
			}
		}
	}
	if len(fields) == 0 {
		e.raw("NIL")
	} else {
		e.byte('(')
		for i, f := range fields {
			if i > 0 {
				e.sp()
			}
			e.string(f)
		}
		e.byte(')')
	}
	e.crlf()
	return ok("ID completed"), nil
}

// logSafe bounds a client-supplied string for the log.
func logSafe(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

func (c *Conn) cmdStartTLS(cmd *Command, _ *parser) (result, error) {
	if c.TLS() != nil {
		return result{}, bad("TLS is already active")
	}
	if c.srv.opt.TLSConfig == nil {
		return result{}, no("", "STARTTLS is not available")
	}
	c.writeStatus(cmd.Tag, ok("Begin TLS negotiation now"))
	if err := c.flush(); err != nil {
		return result{}, err
	}
	if err := c.startTLS(); err != nil {
		c.log.Info("STARTTLS handshake failed", "err", err)
		return result{}, errSessionEnded
	}
	// The tagged response is already sent: nothing more to write.
	return result{}, errNoResponse
}

var errPrivacy = no(imap.ResponseCodePrivacyRequired, "Authentication requires TLS")

func (c *Conn) cmdLogin(cmd *Command, _ *parser) (result, error) {
	a := cmd.Args.(*Login)
	defer wipe(a.Password)
	if !c.canAuth() {
		return result{}, errPrivacy
	}
	return c.login(a.Username, a.Password)
}

// login runs the Session's Login and enters the authenticated state.
func (c *Conn) login(user string, pass []byte) (result, error) {
	if err := c.sess.Login(c.cmdCtx, user, pass); err != nil {
		return result{}, err
	}
	c.setState(stateAuth)
	return okCode("CAPABILITY "+strings.Join(c.capabilityList(), " "), "Logged in"), nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// cmdAuthenticate runs AUTHENTICATE PLAIN (RFC 4616), with SASL-IR.
func (c *Conn) cmdAuthenticate(cmd *Command, _ *parser) (result, error) {
	a := cmd.Args.(*Authenticate)
	defer wipe(a.InitialResponse)
	if a.Mechanism != "PLAIN" {
		return result{}, no("", "Unsupported authentication mechanism")
	}
	if !c.canAuth() {
		return result{}, errPrivacy
	}
	resp := a.InitialResponse
	if resp == nil {
		c.enc.raw("+ \r\n")
		if err := c.flush(); err != nil {
			return result{}, err
		}
		line, err := c.r.readLine()
		defer wipe(line)
		if err != nil {
			return result{}, asConnError(err)
		}
		if bytes.Equal(line, []byte("*")) {
			return result{}, bad("Authentication cancelled")
		}
		if resp, err = decodeSASL(string(line)); err != nil {
			return result{}, err
		}
		defer wipe(resp)
	}
	// message = [authzid] NUL authcid NUL passwd
	parts := bytes.SplitN(resp, []byte{0}, 3)
	if len(parts) != 3 {
		return result{}, bad("Invalid PLAIN response")
	}
	authz, user, pass := string(parts[0]), string(parts[1]), parts[2]
	if authz != "" && authz != user {
		return result{}, no(imap.ResponseCodeAuthorizationFailed, "Cannot act as another user")
	}
	return c.login(user, pass)
}

// enableable are the extensions ENABLE turns on.
var enableable = map[imap.Cap]bool{
	imap.CapCondStore:  true,
	imap.CapQResync:    true,
	imap.CapIMAP4rev2:  true,
	imap.CapUTF8Accept: true,
}

// condStoreEnabling enables CONDSTORE for a command that has no
// UpdateWriter of its own (RFC 7162 §3.1) and, while a mailbox is
// selected, lets a SessionCondStore write the selected mailbox's
// HIGHESTMODSEQ before the command runs.
func (c *Conn) condStoreEnabling() error {
	c.enable(imap.CapCondStore)
	cs, ok := c.sess.(SessionCondStore)
	if !ok || c.getState() != stateSelected {
		return nil
	}
	return cs.CondStoreEnabling(c.cmdCtx, &c.uw)
}

// cmdEnable runs ENABLE (RFC 5161): it enables what is advertised and
// enableable, ignores the rest, and lists what it enabled.
func (c *Conn) cmdEnable(cmd *Command, _ *parser) (result, error) {
	var done []imap.Cap
	for _, cp := range cmd.Args.(*Enable).Caps {
		for e := range enableable {
			if strings.EqualFold(string(e), string(cp)) {
				cp = e
			}
		}
		if !enableable[cp] || !c.caps.Has(cp) {
			continue
		}
		if cp == imap.CapQResync {
			c.enable(imap.CapCondStore)
		}
		c.enable(cp)
		dup := false
		for _, d := range done {
			dup = dup || d == cp
		}
		if !dup {
			done = append(done, cp)
		}
	}
	c.enc.raw("* ENABLED")
	for _, cp := range done {
		c.enc.sp()
		c.enc.raw(string(cp))
	}
	c.enc.crlf()
	return ok("ENABLE completed"), nil
}

func (c *Conn) cmdUnauthenticate(cmd *Command, _ *parser) (result, error) {
	if err := c.sess.Unauthenticate(c.cmdCtx); err != nil {
		return result{}, err
	}
	c.setState(stateNotAuth)
	c.mu.Lock()
	c.enabled = imap.CapSet{}
	c.mu.Unlock()
	c.enc.utf8 = false
	c.notifyActive = false
	c.loginDeadline = timeNow().Add(c.lim.LoginTimeout)
	return ok("UNAUTHENTICATE completed"), nil
}

func (c *Conn) cmdCompress(cmd *Command, _ *parser) (result, error) {
	c.mu.Lock()
	active := c.compress
	c.mu.Unlock()
	if active {
		return result{}, no("COMPRESSIONACTIVE", "Compression is already active")
	}
	if cmd.Args.(*Compress).Mechanism != "DEFLATE" {
		return result{}, bad("Unknown compression mechanism")
	}
	c.writeStatus(cmd.Tag, ok("DEFLATE active"))
	if err := c.flush(); err != nil {
		return result{}, err
	}
	if err := c.startCompress(); err != nil {
		return result{}, err
	}
	return result{}, errNoResponse
}

// cmdSelect runs SELECT and EXAMINE (RFC 9051 §6.3.2, CONDSTORE/QRESYNC
// RFC 7162).
func (c *Conn) cmdSelect(cmd *Command, _ *parser) (result, error) {
	s := cmd.Args.(*Select)
	if s.CondStore {
		c.enable(imap.CapCondStore)
	}
	if c.getState() == stateSelected {
		// RFC 7162 §3.2.11, RFC 9051 §7.1: the old mailbox is closed
		// before any response about the new one.
		c.enc.raw("* OK [CLOSED] Previous mailbox closed\r\n")
		c.setState(stateAuth)
	}
	d, err := c.sess.Select(c.cmdCtx, s)
	if err != nil {
		return result{}, err
	}
	rev2 := c.Enabled(imap.CapIMAP4rev2)
	e := &c.enc
	e.raw("* FLAGS ")
	e.flags(d.Flags)
	e.crlf()
	e.raw("* ")
	e.number(d.Exists)
	e.raw(" EXISTS\r\n")
	if !rev2 {
		e.raw("* ")
		e.number(d.Recent)
		e.raw(" RECENT\r\n")
		if d.FirstUnseen > 0 {
			e.raw("* OK [UNSEEN ")
			e.number(d.FirstUnseen)
			e.raw("] First unseen\r\n")
		}
	}
	if rev2 && d.List != nil {
		c.writeList(d.List, false)
	}
	e.raw("* OK [PERMANENTFLAGS ")
	e.flags(d.PermanentFlags)
	e.raw("] Flags permitted\r\n")
	e.raw("* OK [UIDNEXT ")
	e.number(uint32(d.UIDNext))
	e.raw("] Predicted next UID\r\n")
	e.raw("* OK [UIDVALIDITY ")
	e.number(d.UIDValidity)
	e.raw("] UIDs valid\r\n")
	if c.caps.Has(imap.CapCondStore) {
		if d.HighestModSeq == 0 {
			e.raw("* OK [NOMODSEQ] No mod-sequences\r\n")
		} else {
			e.raw("* OK [HIGHESTMODSEQ ")
			e.number64(d.HighestModSeq)
			e.raw("] Highest\r\n")
		}
	}
	if c.caps.Has(imap.CapObjectID) && d.MailboxID != "" {
		e.raw("* OK [MAILBOXID (")
		e.raw(cleanObjectID(d.MailboxID))
		e.raw(")] Ok\r\n")
	}
	c.setState(stateSelected)
	if s.QResync != nil {
		if err := c.sess.(SessionQResync).Resync(c.cmdCtx, &c.uw, s); err != nil {
			// The mailbox is selected; the client must resynchronise
			// some other way.
			return result{}, err
		}
		if err := c.uw.end(); err != nil {
			return result{}, err
		}
	}
	code := "READ-WRITE"
	if d.ReadOnly {
		code = "READ-ONLY"
	}
	return okCode(code, cmd.Name+" completed"), nil
}

func (c *Conn) cmdCreate(cmd *Command, _ *parser) (result, error) {
	d, err := c.sess.Create(c.cmdCtx, cmd.Args.(*Create))
	if err != nil {
		return result{}, err
	}
	if d != nil && d.MailboxID != "" && c.caps.Has(imap.CapObjectID) {
		return okCode("MAILBOXID ("+cleanObjectID(d.MailboxID)+")", "CREATE completed"), nil
	}
	return ok("CREATE completed"), nil
}

func (c *Conn) cmdDelete(cmd *Command, _ *parser) (result, error) {
	if err := c.sess.Delete(c.cmdCtx, cmd.Args.(*MailboxArg).Mailbox); err != nil {
		return result{}, err
	}
	return ok("DELETE completed"), nil
}

func (c *Conn) cmdRename(cmd *Command, _ *parser) (result, error) {
	if err := c.sess.Rename(c.cmdCtx, cmd.Args.(*Rename)); err != nil {
		return result{}, err
	}
	return ok("RENAME completed"), nil
}

func (c *Conn) cmdSubscribe(cmd *Command, _ *parser) (result, error) {
	if err := c.sess.Subscribe(c.cmdCtx, cmd.Args.(*MailboxArg).Mailbox, cmd.Name == "SUBSCRIBE"); err != nil {
		return result{}, err
	}
	return ok(cmd.Name + " completed"), nil
}

func (c *Conn) cmdList(cmd *Command, _ *parser) (result, error) {
	l := cmd.Args.(*List)
	if l.Options.ReturnStatus != nil && l.Options.ReturnStatus.HighestModSeq {
		if err := c.condStoreEnabling(); err != nil {
			return result{}, err
		}
	}
	if len(l.Patterns) > 0 {
		w := &ListWriter{c: c, cmd: l, uw: &c.uw}
		if err := c.sess.List(c.cmdCtx, w, l); err != nil {
			return result{}, err
		}
	}
	return ok(cmd.Name + " completed"), nil
}

func (c *Conn) cmdNamespace(cmd *Command, _ *parser) (result, error) {
	ns, err := c.sess.Namespace(c.cmdCtx)
	if err != nil {
		return result{}, err
	}
	e := &c.enc
	e.raw("* NAMESPACE ")
	for i, l := range [][]imap.NamespaceDescriptor{ns.Personal, ns.Other, ns.Shared} {
		if i > 0 {
			e.sp()
		}
		if len(l) == 0 {
			e.raw("NIL")
			continue
		}
		e.byte('(')
		for _, d := range l {
			e.byte('(')
			e.mailbox(d.Prefix)
			e.sp()
			if d.Delim == 0 {
				e.raw("NIL")
			} else {
				e.quoted(string(d.Delim))
			}
			e.byte(')')
		}
		e.byte(')')
	}
	e.crlf()
	return ok("NAMESPACE completed"), nil
}

func (c *Conn) cmdStatus(cmd *Command, _ *parser) (result, error) {
	s := cmd.Args.(*Status)
	if s.Items.HighestModSeq {
		if err := c.condStoreEnabling(); err != nil {
			return result{}, err
		}
	}
	d, err := c.sess.Status(c.cmdCtx, s)
	if err != nil {
		return result{}, err
	}
	if d.Mailbox == "" {
		d.Mailbox = s.Mailbox
	}
	c.writeStatusData(d, &s.Items)
	return ok("STATUS completed"), nil
}

func (c *Conn) cmdGetQuota(cmd *Command, _ *parser) (result, error) {
	q, err := c.sess.(SessionQuota).GetQuota(c.cmdCtx, cmd.Args.(*QuotaRoot).Root)
	if err != nil {
		return result{}, err
	}
	c.writeQuota(q)
	return ok("GETQUOTA completed"), nil
}

func (c *Conn) cmdGetQuotaRoot(cmd *Command, _ *parser) (result, error) {
	name := cmd.Args.(*MailboxArg).Mailbox
	roots, quotas, err := c.sess.(SessionQuota).GetQuotaRoot(c.cmdCtx, name)
	if err != nil {
		return result{}, err
	}
	e := &c.enc
	e.raw("* QUOTAROOT ")
	e.mailbox(name)
	for _, r := range roots {
		e.sp()
		e.astring(r)
	}
	e.crlf()
	for i := range quotas {
		c.writeQuota(&quotas[i])
	}
	return ok("GETQUOTAROOT completed"), nil
}

func (c *Conn) cmdSetQuota(cmd *Command, _ *parser) (result, error) {
	q, err := c.sess.(SessionQuota).SetQuota(c.cmdCtx, cmd.Args.(*SetQuota))
	if err != nil {
		return result{}, err
	}
	if q != nil {
		c.writeQuota(q)
	}
	return ok("SETQUOTA completed"), nil
}

// writeQuota writes "* QUOTA root (resource usage limit …)" (RFC 9208
// §5.1); usage and limit are in KiB for STORAGE, as the RFC says.
func (c *Conn) writeQuota(q *QuotaData) {
	e := &c.enc
	e.raw("* QUOTA ")
	e.astring(q.Root)
	e.raw(" (")
	for i, r := range q.Resources {
		if i > 0 {
			e.sp()
		}
		e.raw(strings.ToUpper(string(r.Name)))
		e.sp()
		e.int64(r.Usage)
		e.sp()
		e.int64(r.Limit)
	}
	e.raw(")\r\n")
}

func (c *Conn) cmdNotify(cmd *Command, _ *parser) (result, error) {
	n := cmd.Args.(*Notify)
	if err := c.sess.(SessionNotify).Notify(c.cmdCtx, &c.uw, n); err != nil {
		return result{}, err
	}
	c.notifyActive = !n.None
	return ok("NOTIFY completed"), nil
}

func (c *Conn) cmdCancelUpdate(cmd *Command, _ *parser) (result, error) {
	if err := c.sess.(SessionSearchContext).CancelUpdate(c.cmdCtx, cmd.Args.(*CancelUpdate).Tags); err != nil {
		return result{}, err
	}
	return ok("CANCELUPDATE completed"), nil
}

func (c *Conn) cmdClose(cmd *Command, _ *parser) (result, error) {
	err := c.sess.Unselect(c.cmdCtx, cmd.Name == "CLOSE")
	// The mailbox is left whatever happened.
	c.setState(stateAuth)
	if err != nil {
		return result{}, err
	}
	return ok(cmd.Name + " completed"), nil
}
