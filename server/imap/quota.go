package imap

import (
	"context"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/wire"
)

// QUOTA (RFC 9208). An account has one quota, the store's: its limit in
// force (store.Account.QuotaLimit: the account's setting, or the store's
// default from limits.quota) over the sealed bytes it uses
// (UsedBytes), every mailbox counted. IMAP shows it as one quota root,
// "" (the whole account), with the one resource STORAGE, in KiB: usage
// rounded up, the limit rounded down, so a client never believes it has
// room the store would refuse. Sealed bytes are what the quota counts
// (sealing adds some overhead to each message), so usage is a little
// above the sum of RFC822.SIZE. An account without a limit has no quota
// root: GETQUOTAROOT names none and GETQUOTA "" is NO [NONEXISTENT].
// SETQUOTA is refused (NO [NOPERM]): the quota is the operator's
// (sealmail account quota), not the user's. APPEND, COPY and MOVE beyond
// it fail NO [OVERQUOTA] (errors.go). STATUS SIZE is the wire layer's
// base set (mailbox.go).

// quotaCaps are the capabilities of this file.
var quotaCaps = []imap.Cap{imap.CapQuota, "QUOTA=RES-STORAGE"}

// quotaRoot is the name of the account's only quota root.
const quotaRoot = ""

var (
	errNoQuotaRoot = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeNonExistent,
		Text: "No such quota root",
	}
	errSetQuota = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeNoPerm,
		Text: "Quotas are set by the administrator",
	}
)

var _ wire.SessionQuota = (*session)(nil)

// accountQuota returns the account's quota, or nil if it has no limit.
func (s *session) accountQuota(ctx context.Context, a authState) (*wire.QuotaData, error) {
	acct, err := s.srv.st.PublicAccount(ctx, a.account)
	if err != nil {
		return nil, protoErr(a.log, "quota", err)
	}
	if acct.QuotaLimit <= 0 {
		return nil, nil
	}
	return &wire.QuotaData{Root: quotaRoot, Resources: []wire.QuotaResource{{
		Name:  imap.QuotaResourceStorage,
		Usage: (max(acct.UsedBytes, 0) + 1023) / 1024,
		Limit: acct.QuotaLimit / 1024,
	}}}, nil
}

// GetQuota answers GETQUOTA (RFC 9208 §4.2).
func (s *session) GetQuota(ctx context.Context, root string) (*wire.QuotaData, error) {
	a, err := s.state()
	if err != nil {
		return nil, err
	}
	if root != quotaRoot {
		return nil, errNoQuotaRoot
	}
	q, err := s.accountQuota(ctx, a)
	if err != nil {
		return nil, err
	}
	if q == nil {
		return nil, errNoQuotaRoot
	}
	return q, nil
}

// GetQuotaRoot answers GETQUOTAROOT (RFC 9208 §4.3): every mailbox of the
// account is under the one root.
func (s *session) GetQuotaRoot(ctx context.Context, mailbox string) ([]string, []wire.QuotaData, error) {
	a, err := s.state()
	if err != nil {
		return nil, nil, err
	}
	name, err := canonicalName(mailbox)
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.srv.st.Mailbox(ctx, a.account, name); err != nil {
		return nil, nil, protoErr(a.log, "getquotaroot", err, "mailbox", name)
	}
	q, err := s.accountQuota(ctx, a)
	if err != nil || q == nil {
		return nil, nil, err
	}
	return []string{quotaRoot}, []wire.QuotaData{*q}, nil
}

// SetQuota refuses SETQUOTA: the quota is the operator's.
func (s *session) SetQuota(context.Context, *wire.SetQuota) (*wire.QuotaData, error) {
	if _, err := s.state(); err != nil {
		return nil, err
	}
	return nil, errSetQuota
}
