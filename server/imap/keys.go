package imap

import (
	"io"

	"github.com/sealmail/sealmail/crypto"
)

// keyring is what a session needs from an unlocked crypto.Keyring.
type keyring interface {
	// Open decrypts with the private key and returns the plaintext and the
	// message session key sealed under the index key.
	Open(sealed io.Reader) (plain io.Reader, sealedSessionKey []byte, err error)
	// OpenWithSessionKey decrypts with a session key from Open.
	OpenWithSessionKey(sealed io.Reader, sealedSessionKey []byte) (io.Reader, error)
	SealIndex(plain, ad []byte) ([]byte, error)
	OpenIndex(sealed, ad []byte) ([]byte, error)
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
