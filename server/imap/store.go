package imap

import (
	"context"

	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// Store is what the IMAP server needs of the store: one account's
// mailboxes, subscriptions and messages, addressed by mailbox ID (see
// package store), and the public account record that APPEND seals to.
// It lacks account creation, deletion and administration, and every
// unlock secret: logins go through the account service. It includes
// mailbox.Store (a server that makes its own mailbox.Service reads
// through it). Every store.Store satisfies it.
type Store interface {
	mailbox.Store
	// PublicAccount returns the account's public key, for APPEND.
	PublicAccount(ctx context.Context, address string) (store.PublicAccount, error)

	CreateMailbox(ctx context.Context, address string, m store.MailboxSpec) (store.Mailbox, error)
	Mailbox(ctx context.Context, address, name string) (store.Mailbox, error)
	MailboxByID(ctx context.Context, address string, id uint64) (store.Mailbox, error)
	Mailboxes(ctx context.Context, address string) ([]store.Mailbox, error)
	DeleteMailbox(ctx context.Context, address string, id uint64) error
	RenameMailbox(ctx context.Context, address string, id uint64, newName string) error
	SetSubscribed(ctx context.Context, address, name string, subscribed bool) error
	Subscriptions(ctx context.Context, address string) ([]string, error)

	Deliver(ctx context.Context, ds []store.Delivery) ([]store.Delivered, error)
	StageBlob(ctx context.Context, address string) (store.BlobWriter, error)
	StoreFlags(ctx context.Context, address string, mailbox uint64, u store.FlagUpdate) (store.FlagResult, error)
	Expunge(ctx context.Context, address string, mailbox uint64, uids []uint32) (store.ExpungeResult, error)
	CopyMessages(ctx context.Context, address string, src, dst uint64, uids []uint32) (store.CopyResult, error)
	MoveMessages(ctx context.Context, address string, src, dst uint64, uids []uint32) (store.CopyResult, error)
	// Vanished answers QRESYNC (qresync.go).
	Vanished(ctx context.Context, address string, mailbox uint64, since uint64) (store.VanishedSince, error)
}

var _ Store = store.Store(nil)
