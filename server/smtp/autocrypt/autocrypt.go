package autocrypt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/smtp"
	"github.com/sealmail/sealmail/store"
)

// Accounts is what the header needs of the store: an account's public
// view (its public key and the Autocrypt setting). *badgerstore.DB has
// it.
type Accounts interface {
	PublicAccount(ctx context.Context, address string) (store.PublicAccount, error)
}

// Defaults for the zero Options.
const (
	DefaultMaxHeaderBytes = 1 << 20
	// cacheEntries bounds the keydata cache (accounts).
	cacheEntries = 4096
	// maxPublicKey bounds a stored key this package parses.
	maxPublicKey = 1 << 20
)

// Options configures New.
type Options struct {
	// Accounts looks up the sender's account. Required.
	Accounts Accounts
	// MaxHeaderBytes bounds how much of the header section is read. 0
	// means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Logger gets a warning when an account's key cannot be used. nil
	// discards.
	Logger *slog.Logger
	// Now is the clock key validity is judged at. nil means time.Now.
	Now func() time.Time
}

// Header is the Autocrypt transform. Safe for concurrent use.
type Header struct {
	accounts  Accounts         // immutable
	maxHeader int              // immutable
	log       *slog.Logger     // immutable
	now       func() time.Time // immutable

	mu    sync.Mutex
	cache map[string]cached // guarded by mu; by account
}

type cached struct {
	fingerprint string
	keydata     string // base64, unfolded
}

var _ smtp.Transform = (*Header)(nil)

// New returns a Header.
func New(opt Options) (*Header, error) {
	if opt.Accounts == nil {
		return nil, errors.New("autocrypt: no account lookup")
	}
	if opt.MaxHeaderBytes < 0 {
		return nil, errors.New("autocrypt: negative header limit")
	}
	h := &Header{accounts: opt.Accounts, maxHeader: opt.MaxHeaderBytes, log: opt.Logger, now: opt.Now, cache: map[string]cached{}}
	if h.maxHeader == 0 {
		h.maxHeader = DefaultMaxHeaderBytes
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// Transform implements smtp.Transform (see the package comment for when
// it adds a header).
func (h *Header) Transform(ctx context.Context, m *smtp.Submitted, msg io.Reader) ([]byte, error) {
	if len(m.HeaderFrom) != 1 || m.HeaderFrom[0] != m.Account {
		return nil, nil
	}
	has, err := hasAutocrypt(msg, h.maxHeader)
	if err != nil || has {
		return nil, err
	}
	acct, err := h.accounts.PublicAccount(ctx, m.Account)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // deleted meanwhile: the submission fails elsewhere
	}
	if err != nil {
		return nil, fmt.Errorf("autocrypt: account %s: %w", m.Account, err)
	}
	if acct.AutocryptOff {
		return nil, nil
	}
	kd, err := h.keydata(acct)
	if err != nil {
		h.log.Warn("autocrypt: the account's key cannot be sent", "account", m.Account, "err", err)
		return nil, nil
	}
	return Field(m.Account, kd), nil
}

// Field renders an Autocrypt header field for addr with keydata
// (base64), folded into lines of at most 78 bytes (RFC 5322 §2.1.1).
func Field(addr, keydata string) []byte {
	var b bytes.Buffer
	b.WriteString("Autocrypt: addr=" + addr + "; keydata=\r\n")
	for len(keydata) > 0 {
		n := min(len(keydata), 76)
		b.WriteString(" " + keydata[:n] + "\r\n")
		keydata = keydata[n:]
	}
	return b.Bytes()
}

// keydata returns the account's reduced key in base64, from the cache
// while the fingerprint is unchanged.
func (h *Header) keydata(acct store.PublicAccount) (string, error) {
	h.mu.Lock()
	c, ok := h.cache[acct.Address]
	h.mu.Unlock()
	if ok && c.fingerprint == acct.KeyFingerprint {
		return c.keydata, nil
	}
	raw, err := MinimalKey(acct.PublicKey, acct.Address, h.now())
	if err != nil {
		return "", err
	}
	kd := base64.StdEncoding.EncodeToString(raw)
	h.mu.Lock()
	if len(h.cache) >= cacheEntries {
		clear(h.cache) // rare: a few thousand senders; start over
	}
	h.cache[acct.Address] = cached{fingerprint: acct.KeyFingerprint, keydata: kd}
	h.mu.Unlock()
	return kd, nil
}

// MinimalKey returns the binary transferable public key in pub reduced
// for Autocrypt (§2.1.1): primary key and its direct-key
// self-signatures, the user ID for addr (canonical) with its newest
// self-signature, and the encryption subkey valid at now with its
// binding signature. It fails for a key that is revoked, has no user ID
// for addr, or cannot encrypt.
func MinimalKey(pub []byte, addr string, now time.Time) ([]byte, error) {
	if len(pub) == 0 || len(pub) > maxPublicKey {
		return nil, fmt.Errorf("autocrypt: public key of %d bytes", len(pub))
	}
	e, err := openpgp.ReadEntity(packet.NewReader(bytes.NewReader(pub)))
	if err != nil {
		return nil, fmt.Errorf("autocrypt: parse key: %w", err)
	}
	if e.Revoked(now) {
		return nil, errors.New("autocrypt: key revoked")
	}
	var id *openpgp.Identity
	for _, cand := range e.Identities {
		if cand.UserId == nil || cand.SelfSignature == nil || len(cand.Revocations) > 0 {
			continue
		}
		if a, err := policy.CanonicalAddress(cand.UserId.Email); err != nil || a != addr {
			continue
		}
		if id == nil || cand.SelfSignature.CreationTime.After(id.SelfSignature.CreationTime) {
			id = cand
		}
	}
	if id == nil {
		return nil, fmt.Errorf("autocrypt: key has no user ID for %s", addr)
	}
	enc, ok := e.EncryptionKey(now)
	if !ok || enc.PublicKey == e.PrimaryKey {
		// An encryption-capable primary key without subkeys is allowed
		// by OpenPGP but not by Autocrypt's minimal form; sealmail's keys
		// always have an encryption subkey.
		return nil, errors.New("autocrypt: no encryption subkey in force")
	}
	var buf bytes.Buffer
	if err := e.PrimaryKey.Serialize(&buf); err != nil {
		return nil, fmt.Errorf("autocrypt: %w", err)
	}
	for _, sig := range e.Signatures {
		if sig.SigType == packet.SigTypeDirectSignature && sig.CheckKeyIdOrFingerprint(e.PrimaryKey) {
			if err := sig.Serialize(&buf); err != nil {
				return nil, fmt.Errorf("autocrypt: %w", err)
			}
		}
	}
	if err := id.UserId.Serialize(&buf); err != nil {
		return nil, fmt.Errorf("autocrypt: %w", err)
	}
	if err := id.SelfSignature.Serialize(&buf); err != nil {
		return nil, fmt.Errorf("autocrypt: %w", err)
	}
	if err := enc.PublicKey.Serialize(&buf); err != nil {
		return nil, fmt.Errorf("autocrypt: %w", err)
	}
	if err := enc.SelfSignature.Serialize(&buf); err != nil {
		return nil, fmt.Errorf("autocrypt: %w", err)
	}
	return buf.Bytes(), nil
}

// hasAutocrypt reads the header section (at most max bytes) and reports
// whether it has an Autocrypt field. A header section over max counts
// as having one: no header is added.
func hasAutocrypt(r io.Reader, max int) (bool, error) {
	br := bufio.NewReaderSize(r, 4096)
	n := 0
	atLineStart := true
	for {
		line, err := br.ReadSlice('\n')
		n += len(line)
		if n > max {
			return true, nil
		}
		if atLineStart {
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				return false, nil
			}
			// A continuation line (leading white space) is not a field.
			name, _, ok := bytes.Cut(line, []byte(":"))
			if ok && line[0] != ' ' && line[0] != '\t' && strings.EqualFold(strings.TrimSpace(string(name)), "Autocrypt") {
				return true, nil
			}
		}
		atLineStart = len(line) > 0 && line[len(line)-1] == '\n'
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
			return false, nil
		default:
			return false, fmt.Errorf("autocrypt: read message: %w", err)
		}
	}
}
