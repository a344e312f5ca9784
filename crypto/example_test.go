package crypto_test

import (
	"bytes"
	"fmt"
	"io"
	"log"

	"github.com/sealmail/sealmail/crypto"
)

// The life of one account and one message: create the account, seal a
// message to its public key (delivery), unlock with the password (login),
// open the message once with the private key, and later with the stored
// session key.
func Example() {
	// Account creation. The caller stores all four byte slices.
	sec, err := crypto.NewAccount("alice@example.org", []byte("pw"), crypto.AccountOptions{KDF: crypto.TestKDF()})
	if err != nil {
		log.Fatal(err)
	}

	// Delivery: public key only.
	pub, err := crypto.ParsePublicKey(sec.PublicKey)
	if err != nil {
		log.Fatal(err)
	}
	var sealed bytes.Buffer
	w, err := pub.Seal(&sealed)
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(w, "Subject: hello\r\n\r\nhi Alice\r\n")
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	// Login.
	kr, err := crypto.Unlock([][]byte{sec.Slot}, []byte("pw"), sec.WrappedKey)
	if err != nil {
		log.Fatal(err)
	}
	defer kr.Wipe()

	// First read: public-key work; keep the sealed session key.
	plain, sessionKey, err := kr.Open(bytes.NewReader(sealed.Bytes()))
	if err != nil {
		log.Fatal(err)
	}
	msg, err := io.ReadAll(plain) // reading to EOF verifies integrity
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", msg)

	// Later reads: symmetric work only.
	plain, err = kr.OpenWithSessionKey(bytes.NewReader(sealed.Bytes()), sessionKey)
	if err != nil {
		log.Fatal(err)
	}
	msg, err = io.ReadAll(plain)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(msg), "bytes again")
	// Output:
	// "Subject: hello\r\n\r\nhi Alice\r\n"
	// 28 bytes again
}

// A summary sealed under the index key, bound to its mailbox and UID.
func ExampleKeyring_SealIndex() {
	sec, err := crypto.NewAccount("bob@example.org", []byte("pw"), crypto.AccountOptions{KDF: crypto.TestKDF()})
	if err != nil {
		log.Fatal(err)
	}
	kr, err := crypto.Unlock([][]byte{sec.Slot}, []byte("pw"), sec.WrappedKey)
	if err != nil {
		log.Fatal(err)
	}
	defer kr.Wipe()

	sealed, err := kr.SealIndex([]byte("Subject: hello"), []byte("INBOX\x00uid=1"))
	if err != nil {
		log.Fatal(err)
	}
	summary, err := kr.OpenIndex(sealed, []byte("INBOX\x00uid=1"))
	fmt.Printf("%s %v\n", summary, err)
	_, err = kr.OpenIndex(sealed, []byte("INBOX\x00uid=2"))
	fmt.Println(err != nil)
	// Output:
	// Subject: hello <nil>
	// true
}
