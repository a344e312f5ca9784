package imap

import (
	"io"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/server/mailbox"
)

// keyring is what a session needs from an unlocked crypto.Keyring: what
// the mailbox reader uses, and Wipe.
type keyring interface {
	mailbox.Keyring
	Wipe()
}

var _ keyring = (*crypto.Keyring)(nil)

// sealer seals a message to an account's public key.
type sealer interface {
	Seal(w io.Writer) (io.WriteCloser, error)
}

var _ sealer = (*crypto.PublicKey)(nil)

func parsePublicKey(b []byte) (sealer, error) {
	pk, err := crypto.ParsePublicKey(b)
	if err != nil {
		return nil, err
	}
	return pk, nil
}

// wipeBytes zeroes b (best effort: Go may have copied it).
func wipeBytes(b []byte) {
	clear(b)
}
