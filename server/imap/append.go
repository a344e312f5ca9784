package imap

import (
	"bytes"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/store"
)

// Append implements imapserver.Session. The message is sealed with the
// account's public key before it reaches the store; its summary and session
// key are stored right away, while the plaintext is still at hand.
func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	account, keys, log, err := s.state()
	if err != nil {
		return nil, err
	}
	name, err := canonicalName(mailbox)
	if err != nil {
		return nil, err
	}
	ctx := s.ctx()
	mb, err := s.srv.st.Mailbox(ctx, account, name)
	if err != nil {
		if isNotFound(err) {
			return nil, errTryCreate
		}
		return nil, protoErr(log, "append", err, "mailbox", name)
	}
	var flags []string
	for _, f := range options.Flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		c, err := store.CanonicalFlag(string(f))
		if err != nil {
			return nil, errBadFlag
		}
		flags = append(flags, c)
	}
	if r.Size() > int64(s.srv.appendLimit) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "Message too large"}
	}
	plain := make([]byte, r.Size())
	defer wipeBytes(plain)
	if _, err := io.ReadFull(r, plain); err != nil {
		return nil, protoErr(log, "append", err)
	}
	if len(plain) == 0 {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Empty message"}
	}

	acct, err := s.srv.st.PublicAccount(ctx, account)
	if err != nil {
		return nil, protoErr(log, "append", err)
	}
	pk, err := parsePublicKey(acct.PublicKey)
	if err != nil {
		return nil, protoErr(log, "append", err)
	}
	var sealed bytes.Buffer
	sealed.Grow(len(plain) + 1024)
	wc, err := pk.Seal(&sealed)
	if err != nil {
		return nil, protoErr(log, "append", err)
	}
	if _, err := wc.Write(plain); err != nil {
		return nil, protoErr(log, "append", err)
	}
	if err := wc.Close(); err != nil {
		return nil, protoErr(log, "append", err)
	}

	date := options.Time
	if date.IsZero() {
		date = time.Now()
	}
	ds, err := s.srv.st.Deliver(ctx, []store.Delivery{{
		Account: account, MailboxID: mb.ID, InternalDate: date, Flags: flags, Blob: sealed.Bytes(),
	}})
	if isNotFound(err) {
		return nil, errTryCreate // deleted while the message was read
	}
	if err != nil {
		return nil, protoErr(log, "append", err, "mailbox", name)
	}
	d := ds[0]

	// Summary now, from the plaintext we hold; the session key needs one
	// private-key operation on what we just sealed.
	_, sk, err := keys.Open(bytes.NewReader(sealed.Bytes()))
	if err == nil {
		var sealedSum []byte
		_, sealedSum, err = sealSummary(keys, plain, summaryAD(account))
		if err == nil {
			err = s.srv.st.SetSummaries(ctx, account, d.MailboxID, []store.SummaryUpdate{{UID: d.UID, Summary: sealedSum, SessionKey: sk}})
		}
	}
	if err != nil {
		// Not fatal: the first FETCH builds the summary.
		log.Warn("storing summary of appended message", "mailbox", name, "uid", d.UID, "err", err)
	}
	s.srv.syncMailbox(account, d.MailboxID)
	return &imap.AppendData{UID: imap.UID(d.UID), UIDValidity: d.UIDValidity}, nil
}
