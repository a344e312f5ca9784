package imap

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// DefaultMaxAppends bounds the APPEND commands in progress at once for
// one account (issue 9 item 7: sessions that announce big messages and
// then trickle them hold what they have sent). One more waits up to
// appendWait for a slot, then is refused.
const DefaultMaxAppends = 8

// appendWait is how long an APPEND waits for a slot of its account.
const appendWait = 15 * time.Second

// summaryKeep is the largest plaintext APPEND keeps, besides sealing it,
// to store the message's summary at once; larger messages get theirs at
// their first FETCH (one private-key operation).
const summaryKeep = mailbox.DefaultInMemoryMax

// Errors of APPEND.
var (
	errTooBig = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "Message too large"}
	errEmpty  = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Empty message"}
	errQuota  = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota, Text: "Quota exceeded"}
	errBusy   = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many APPEND commands in progress for this account"}
)

// appendGate counts the APPENDs in progress per account.
type appendGate struct {
	max  int           // immutable
	wait time.Duration // immutable: appendWait (tests shorten it)
	mu   sync.Mutex
	n    map[string]int // guarded by mu
	wake chan struct{}  // guarded by mu; closed when a slot frees
}

// enter takes a slot of account, waiting up to g.wait (or ctx).
func (g *appendGate) enter(ctx context.Context, account string) bool {
	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	for {
		g.mu.Lock()
		if g.n == nil {
			g.n = map[string]int{}
			g.wake = make(chan struct{})
		}
		if g.n[account] < g.max {
			g.n[account]++
			g.mu.Unlock()
			return true
		}
		wake := g.wake
		g.mu.Unlock()
		select {
		case <-wake:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (g *appendGate) leave(account string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n[account]--; g.n[account] <= 0 {
		delete(g.n, account)
	}
	close(g.wake)
	g.wake = make(chan struct{})
}

// Append implements wire.Session: it begins an APPEND to mailbox, before
// the client sends any message data.
func (s *session) Append(ctx context.Context, cmd *wire.Append) (wire.Appender, error) {
	a, err := s.state()
	if err != nil {
		return nil, err
	}
	name, err := canonicalName(cmd.Mailbox)
	if err != nil {
		return nil, err
	}
	mb, err := s.srv.st.Mailbox(ctx, a.account, name)
	if err != nil {
		if isNotFound(err) {
			return nil, errTryCreate
		}
		return nil, protoErr(a.log, "append", err, "mailbox", name)
	}
	acct, err := s.srv.st.PublicAccount(ctx, a.account)
	if err != nil {
		return nil, protoErr(a.log, "append", err)
	}
	pk, err := s.publicKey(acct.PublicKey)
	if err != nil {
		return nil, protoErr(a.log, "append", err)
	}
	if !s.srv.appends.enter(ctx, a.account) {
		return nil, errBusy
	}
	return &appender{s: s, a: a, mb: mb, pk: pk, acct: acct}, nil
}

// appender receives the messages of one APPEND (several with
// MULTIAPPEND, RFC 3502), seals each as it streams in, and delivers them
// all in one store transaction at Commit.
type appender struct {
	s    *session
	a    authState
	mb   store.Mailbox
	pk   sealer
	acct store.PublicAccount
	msgs []*appendMsg
	size int64 // sealed bytes received
	done bool
}

type appendMsg struct {
	flags  []string
	date   time.Time
	sealed sealedSink
	plain  []byte // kept for the summary when small; nil otherwise
}

// inlineMax is the largest sealed message APPEND keeps in memory until
// Commit; a larger one is written to the store in pieces as it is sealed
// (store.StageBlob), so that no APPEND holds a whole large message.
const inlineMax = 1 << 20

// sealedSink takes a sealed message as it is made: in memory up to
// inlineMax, then staged in the store.
type sealedSink struct {
	ctx     context.Context
	st      Store
	account string
	buf     bytes.Buffer
	bw      store.BlobWriter // nil while in memory
}

func (k *sealedSink) Write(p []byte) (int, error) {
	if k.bw == nil {
		if k.buf.Len()+len(p) <= inlineMax {
			return k.buf.Write(p)
		}
		bw, err := k.st.StageBlob(k.ctx, k.account)
		if err != nil {
			return 0, err
		}
		k.bw = bw
		if _, err := bw.Write(k.buf.Bytes()); err != nil {
			return 0, err
		}
		k.buf = bytes.Buffer{}
	}
	return k.bw.Write(p)
}

// delivery fills d with the sealed message: its bytes, or the staged blob.
func (k *sealedSink) delivery(ctx context.Context, d *store.Delivery) error {
	if k.bw == nil {
		d.Blob = k.buf.Bytes()
		return nil
	}
	sb, err := k.bw.Finish(ctx)
	if err != nil {
		return err
	}
	d.Staged = &sb
	return nil
}

// inline returns the sealed bytes if they were kept in memory.
func (k *sealedSink) inline() []byte {
	if k.bw != nil {
		return nil
	}
	return k.buf.Bytes()
}

// discard removes a staged blob that no Deliver linked.
func (k *sealedSink) discard() {
	if k.bw != nil {
		k.bw.Discard()
	}
}

var (
	_ wire.Appender      = (*appender)(nil)
	_ wire.AppendChecker = (*appender)(nil)
)

// CheckMessage implements wire.AppendChecker: flags, size and quota are
// checked before the client is told to send the message.
func (ap *appender) CheckMessage(ctx context.Context, m *wire.AppendMessage) error {
	if _, err := appendFlags(m.Flags); err != nil {
		return err
	}
	if m.Size == 0 {
		return errEmpty
	}
	if m.Size > ap.s.srv.appendLimit || ap.size+m.Size > 2*ap.s.srv.appendLimit {
		return errTooBig
	}
	if q := ap.acct.QuotaLimit; q > 0 && ap.acct.UsedBytes+ap.size+m.Size > q {
		return errQuota
	}
	return nil
}

func appendFlags(in []imap.Flag) ([]string, error) {
	var flags []string
	for _, f := range in {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		c, err := store.CanonicalFlag(string(f))
		if err != nil {
			return nil, errBadFlag
		}
		flags = append(flags, c)
	}
	return flags, nil
}

// AddMessage implements wire.Appender: the message is sealed as it
// arrives; the sealed bytes are kept in memory if small, else written to
// the store in pieces; a small message's plaintext is kept until Commit,
// for its summary.
func (ap *appender) AddMessage(ctx context.Context, m *wire.AppendMessage) error {
	flags, err := appendFlags(m.Flags)
	if err != nil {
		return err
	}
	am := &appendMsg{flags: flags, date: m.Date}
	am.sealed = sealedSink{ctx: ctx, st: ap.s.srv.st, account: ap.a.account}
	ap.msgs = append(ap.msgs, am)
	wc, err := ap.pk.Seal(&am.sealed)
	if err != nil {
		return protoErr(ap.a.log, "append", err)
	}
	keep := &keepWriter{limit: summaryKeep}
	buf := make([]byte, 32<<10)
	defer wipeBytes(buf)
	// A binary message (literal8, RFC 3516) is held until it is known to
	// be small, to re-encode its binary parts as base64 before sealing
	// (mailbox.ConvertBinary): BODY[] must not carry NUL. A larger one is
	// stored as sent (its NULs read as 0x80 in BODY[]).
	var held []byte
	holding := m.Binary
	defer func() { wipeBytes(held) }()
	write := func(p []byte) error {
		if _, err := wc.Write(p); err != nil {
			return protoErr(ap.a.log, "append", err)
		}
		keep.Write(p)
		return nil
	}
	var n int64
	for {
		k, rerr := m.Body.Read(buf)
		if k > 0 {
			n += int64(k)
			if n > ap.s.srv.appendLimit {
				return errTooBig
			}
			switch {
			case holding && len(held)+k <= summaryKeep:
				held = append(held, buf[:k]...)
			case holding:
				holding = false
				if err := write(held); err != nil {
					return err
				}
				fallthrough
			default:
				if err := write(buf[:k]); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if n == 0 {
		return errEmpty
	}
	if holding {
		conv, changed := mailbox.ConvertBinary(held)
		if err := write(conv); err != nil {
			return err
		}
		if changed {
			wipeBytes(conv)
		}
	}
	if err := wc.Close(); err != nil {
		return protoErr(ap.a.log, "append", err)
	}
	am.plain = keep.bytes()
	ap.size += n
	return nil
}

// keepWriter keeps what is written up to limit; past it, nothing.
type keepWriter struct {
	limit int64
	b     []byte
	over  bool
}

func (k *keepWriter) Write(p []byte) {
	if k.over {
		return
	}
	if int64(len(k.b)+len(p)) > k.limit {
		wipeBytes(k.b)
		k.b, k.over = nil, true
		return
	}
	k.b = append(k.b, p...)
}

func (k *keepWriter) bytes() []byte {
	if k.over {
		return nil
	}
	return k.b
}

// Commit implements wire.Appender: every message in one durable store
// transaction, then their summaries.
func (ap *appender) Commit(ctx context.Context) (*wire.AppendData, error) {
	defer ap.finish()
	if len(ap.msgs) == 0 {
		return nil, nil
	}
	now := time.Now()
	ds := make([]store.Delivery, len(ap.msgs))
	for i, m := range ap.msgs {
		date := m.date
		if date.IsZero() {
			date = now
		}
		ds[i] = store.Delivery{Account: ap.a.account, MailboxID: ap.mb.ID, InternalDate: date, Flags: m.flags}
		if err := m.sealed.delivery(ctx, &ds[i]); err != nil {
			return nil, protoErr(ap.a.log, "append", err, "mailbox", ap.mb.Name)
		}
	}
	out, err := ap.s.srv.st.Deliver(ctx, ds)
	if isNotFound(err) {
		return nil, errTryCreate // deleted while the message was read
	}
	if err != nil {
		return nil, protoErr(ap.a.log, "append", err, "mailbox", ap.mb.Name)
	}
	d := &wire.AppendData{UIDValidity: out[0].UIDValidity}
	for i, o := range out {
		d.UIDs.AddNum(imap.UID(o.UID))
		if p, sealed := ap.msgs[i].plain, ap.msgs[i].sealed.inline(); p != nil && sealed != nil {
			ap.msgs[i].plain = nil // added wipes it
			ap.s.srv.added(ctx, ap.s, ap.a.rd, o.MailboxID, o.UID, sealed, p)
		}
	}
	k := stateKey{ap.a.account, out[0].MailboxID}
	ap.s.srv.recent.noteNew(k, out[0].UID)
	ap.s.srv.syncMailbox(ctx, ap.a.account, out[0].MailboxID)
	return d, nil
}

// Abort implements wire.Appender.
func (ap *appender) Abort() { ap.finish() }

// finish wipes what is kept and leaves the account's gate, once.
func (ap *appender) finish() {
	if ap.done {
		return
	}
	ap.done = true
	for _, m := range ap.msgs {
		wipeBytes(m.plain)
		m.plain = nil
		m.sealed.discard() // nothing, once delivered
	}
	ap.msgs = nil
	ap.s.srv.appends.leave(ap.a.account)
}

// maxAddedInFlight bounds the summaries of APPENDed messages that the
// server stores in the background at once (each holds its message, at
// most summaryKeep bytes of plaintext and inlineMax sealed).
const maxAddedInFlight = 32

// added stores the summary and session key of a message an APPEND just
// delivered (mailbox.Reader.Added) and wipes plain. It does so in the
// background, so that the APPEND's tagged OK does not wait for a second
// commit: the summary is derived data, which the first read of the
// message builds itself if it is missing (and SetSummaries skips a
// message expunged in between), so nothing the client was told depends
// on it. When maxAddedInFlight are running already it works in the
// caller. The background work ends with the server's context. sess
// counts the work, so that the login's keyring, which it uses, is wiped
// only after it (session.wipeKeys); once the wipe has begun, no summary
// is started.
func (s *Server) added(ctx context.Context, sess *session, rd *mailbox.Reader, mbox uint64, uid uint32, sealed, plain []byte) {
	if !sess.beginSummary() {
		wipeBytes(plain)
		return
	}
	select {
	case s.addedSem <- struct{}{}:
		s.addedWG.Go(func() {
			defer sess.summaries.Done()
			defer func() { <-s.addedSem }()
			defer wipeBytes(plain)
			if h := s.addedHook; h != nil {
				h()
			}
			rd.Added(s.ctx, mbox, uid, sealed, plain)
		})
	default:
		defer sess.summaries.Done()
		defer wipeBytes(plain)
		rd.Added(ctx, mbox, uid, sealed, plain)
	}
}
