package imap

import (
	"context"
	"errors"
	"log/slog"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// Errors with fixed wording that handlers return directly.
var (
	errNoSuchMailbox = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeNonExistent,
		Text: "No such mailbox",
	}
	errTryCreate = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeTryCreate,
		Text: "No such mailbox",
	}
	errReadOnly = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeCannot,
		Text: "Mailbox is read-only (EXAMINE)",
	}
	errBadName = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeCannot,
		Text: "Invalid mailbox name",
	}
	errBadFlag = &imap.Error{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: "Invalid flag",
	}
	errUnavailable = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeUnavailable,
		Text: "Service temporarily unavailable",
	}
	errServerBug = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeServerBug,
		Text: "Internal error; the cause has been logged",
	}
	errNoSelected = &imap.Error{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: "No mailbox selected",
	}
)

// protoErr maps err to what the client may read: *imap.Error values pass
// through, store sentinels get their response codes, and anything else is
// logged with its cause while the client reads a generic NO [SERVERBUG].
// It is the only place that turns internal errors into protocol errors.
func protoErr(log *slog.Logger, op string, err error, attrs ...any) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	switch {
	case errors.As(err, &ie):
		return ie
	case errors.Is(err, store.ErrNotFound):
		return errNoSuchMailbox
	case errors.Is(err, store.ErrExists):
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeAlreadyExists,
			Text: "Mailbox already exists",
		}
	case errors.Is(err, store.ErrOverQuota):
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeOverQuota,
			Text: "Quota exceeded",
		}
	case errors.Is(err, store.ErrTooLarge):
		// One change does not fit in one store transaction even alone
		// (COPY, MOVE and STORE go in runs, batch.go). Nothing changed
		// (RFC 9051 §7.1: LIMIT).
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeLimit,
			Text: "Too many messages for one command; use smaller sets",
		}
	case errors.Is(err, store.ErrBadFlag):
		return errBadFlag
	case errors.Is(err, store.ErrBadName):
		return errBadName
	case errors.Is(err, context.Canceled), errors.Is(err, store.ErrClosed), errors.Is(err, crypto.ErrWiped):
		log.Info(op+" interrupted", append(attrs, "err", err)...)
		return errUnavailable
	}
	log.Error(op+" failed", append(attrs, "err", err)...)
	return errServerBug
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
