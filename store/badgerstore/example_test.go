package badgerstore_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/sealmail/sealmail/store"
	"github.com/sealmail/sealmail/store/badgerstore"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "sealmail-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := badgerstore.Open(dir, badgerstore.Options{}) // nil Logger: discard
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	// Key material is opaque to the store; package crypto makes it.
	err = db.CreateAccount(ctx, store.Account{
		Address:   "alice@example.org",
		PublicKey: []byte("binary OpenPGP public key"),
		Slots:     []store.Slot{{Kind: store.SlotPassword, Data: []byte("sealed slot")}},
	}, store.DefaultMailboxes)
	if err != nil {
		log.Fatal(err)
	}
	got, err := db.Deliver(ctx, []store.Delivery{
		{Account: "alice@example.org", Flags: []string{`\seen`}, Blob: []byte("sealed message")},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("delivered as UID", got[0].UID, "to", got[0].Mailbox)

	// Mailboxes are addressed by ID from here on; a rename keeps it.
	ms, err := db.Messages(ctx, "alice@example.org", got[0].MailboxID, store.ListOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ms[0].UID, ms[0].Flags, ms[0].SealedSize)
	// Output:
	// delivered as UID 1 to INBOX
	// 1 [\Seen] 14
}
