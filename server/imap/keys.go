package imap

import (
	"bytes"
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

// cachedKey is an account's parsed public key and the bytes it was
// parsed from.
type cachedKey struct {
	raw []byte
	pk  sealer
}

// publicKey returns the sealer of the account record's public key raw,
// parsing it only when it differs from the one this session parsed last:
// parsing verifies the key's self-signatures, which took 0.30 s of the
// 0.69 s of CPU that APPEND used in a pprof of imaptest's logout=0 mix.
// The record is read at every APPEND, so a changed key is used at once.
func (s *session) publicKey(raw []byte) (sealer, error) {
	if c := s.pubKey; c != nil && bytes.Equal(c.raw, raw) {
		return c.pk, nil
	}
	pk, err := parsePublicKey(raw)
	if err != nil {
		return nil, err
	}
	s.pubKey = &cachedKey{raw: bytes.Clone(raw), pk: pk}
	return pk, nil
}

// wipeBytes zeroes b (best effort: Go may have copied it).
func wipeBytes(b []byte) {
	clear(b)
}
