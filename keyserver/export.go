package keyserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sealmail/sealmail/policy"
)

var errNoIdentity = errors.New("keyserver: key has no user ID for the address")

// maxKeyBytes bounds a stored key we are willing to parse and serve. An
// Ed25519 or RSA-4096 key with one user ID is a few KiB.
const maxKeyBytes = 1 << 20

// exportKey returns the binary transferable public key in pub reduced to
// what WKD must serve (draft-koch-openpgp-webkey-service §3.1): the primary
// key with its revocations (and, for v6 keys, its direct-key
// self-signatures; go-crypto drops v4 direct-key signatures when reading),
// the user IDs whose mail address is addr (both in canonical form:
// policy.CanonicalAddress, so case and the IDN form do not matter)
// with their self-signatures only, and the subkeys with their binding
// signatures and revocations. Other user IDs and third-party
// certifications are dropped. It fails with errNoIdentity when no user ID
// carries addr. Only public packets are written, so secret key material,
// if pub carried any by mistake, never leaves.
//
// go-crypto verifies every self-signature while reading and rejects a key
// with one that does not verify, so everything written is verified.
func exportKey(pub []byte, addr string) ([]byte, error) {
	if len(pub) == 0 || len(pub) > maxKeyBytes {
		return nil, fmt.Errorf("keyserver: public key of %d bytes", len(pub))
	}
	e, err := openpgp.ReadEntity(packet.NewReader(bytes.NewReader(pub)))
	if err != nil {
		return nil, fmt.Errorf("keyserver: parse public key: %w", err)
	}
	// Several user IDs may carry the address ("Alice <a@x>" and "a@x");
	// sort them so that the same key always gives the same bytes.
	var names []string
	for name, id := range e.Identities {
		if id.UserId == nil {
			continue
		}
		if a, err := policy.CanonicalAddress(id.UserId.Email); err == nil && a == addr {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, errNoIdentity
	}
	slices.Sort(names)

	var buf bytes.Buffer
	if err := writeKey(&buf, e, names); err != nil {
		return nil, fmt.Errorf("keyserver: serialize public key: %w", err)
	}
	return buf.Bytes(), nil
}

// writeKey writes the public packets of e in the order of RFC 9580 §10.1,
// with only the identities named and only self-signatures on them.
func writeKey(w io.Writer, e *openpgp.Entity, names []string) error {
	if err := e.PrimaryKey.Serialize(w); err != nil {
		return err
	}
	if err := writeSigs(w, e.Revocations, nil); err != nil {
		return err
	}
	if err := writeSigs(w, e.Signatures, e.PrimaryKey); err != nil {
		return err
	}
	for _, name := range names {
		id := e.Identities[name]
		if err := id.UserId.Serialize(w); err != nil {
			return err
		}
		if err := writeSigs(w, id.Signatures, e.PrimaryKey); err != nil {
			return err
		}
	}
	for _, sk := range e.Subkeys {
		if err := sk.PublicKey.Serialize(w); err != nil {
			return err
		}
		if err := writeSigs(w, sk.Revocations, nil); err != nil {
			return err
		}
		if err := sk.Sig.Serialize(w); err != nil {
			return err
		}
	}
	return nil
}

// writeSigs writes sigs; if issuer is non-nil, only those it issued.
func writeSigs(w io.Writer, sigs []*packet.Signature, issuer *packet.PublicKey) error {
	for _, sig := range sigs {
		if issuer != nil && !sig.CheckKeyIdOrFingerprint(issuer) {
			continue
		}
		if err := sig.Serialize(w); err != nil {
			return err
		}
	}
	return nil
}
