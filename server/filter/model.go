package filter

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	stdhash "hash"
	"slices"
)

// A model is what the classifier learnt: per token (a keyed hash, never
// the text) how many spam and ham messages held it, and per trained
// message (a keyed hash of its content) the verdict it was trained as,
// so that moving a message back undoes its training instead of
// counting it twice.
//
// Stored form (store.FilterModel.Data), sealed with AES-256-GCM:
//
//	nonce (12) || GCM(K_seal, nonce, plain, "sealmail filter model v1" 0 owner)
//	plain = "SMF1" || spam:4 || ham:4 || ntokens:4 || ntrained:4
//	        || ntokens × (hash:12 || spam:4 || ham:4), sorted by hash
//	        || ntrained × (hash:12 || verdict:1)
//	        || zero padding to a power of two, at least 64 KiB
//
// so the sealed size tells a thief only the rough size of the
// vocabulary. K_tok (token hashes) and K_seal come from the model's
// 32-byte key F by HKDF-SHA256.

const (
	hashLen      = 12 // bytes of HMAC-SHA256 kept: 96 bits, no collisions among 10⁶ tokens
	entryLen     = hashLen + 8
	trainedLen   = hashLen + 1
	modelMagic   = "SMF1"
	headerLen    = 4 + 16
	minPadded    = 64 << 10
	keyLen       = 32 // F: AES-256 and HMAC-SHA256 keys derive from it
	infoTokenKey = "sealmail filter token v1"
	infoSealKey  = "sealmail filter seal v1"
	sealAD       = "sealmail filter model v1\x00"
	// maxTrained is how many trained messages a model remembers.
	maxTrained = 4096
)

// Token caps: the least seen tokens are forgotten beyond them.
const (
	maxOrgTokens  = 300_000
	maxUserTokens = 100_000
)

var errCorruptModel = errors.New("filter: corrupt model")

type hash [hashLen]byte

type entry struct {
	h         hash
	spam, ham uint32
}

type trainedMsg struct {
	h    hash
	spam bool
}

// model is one decrypted model. It is immutable once shared (scoring
// reads it from several goroutines); training works on a copy.
type model struct {
	spam, ham uint32       // trained messages
	toks      []entry      // sorted by hash
	trained   []trainedMsg // oldest first
}

// keys are what a model's F derives.
type keys struct {
	tok  []byte // HMAC key of token hashes
	seal cipher.AEAD
}

func deriveKeys(f []byte) (*keys, error) {
	if len(f) != keyLen {
		return nil, fmt.Errorf("filter: model key of %d bytes", len(f))
	}
	tok, err := hkdf.Key(sha256.New, f, nil, infoTokenKey, 32)
	if err != nil {
		return nil, err
	}
	sk, err := hkdf.Key(sha256.New, f, nil, infoSealKey, 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(sk)
	clear(sk)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	return &keys{tok: tok, seal: aead}, nil
}

func newKey() []byte {
	f := make([]byte, keyLen)
	rand.Read(f) // never fails (crypto/rand, Go 1.24+)
	return f
}

// hashToken returns the keyed hash of a token.
func (k *keys) hashToken(t token) hash {
	return k.hasher().hash(t)
}

// tokenHasher hashes many tokens under one key: the HMAC's key schedule
// is done once, each token resets it. Used by one goroutine.
type tokenHasher struct {
	m   stdhash.Hash
	buf []byte
	sum []byte
}

func (k *keys) hasher() *tokenHasher {
	return &tokenHasher{m: hmac.New(sha256.New, k.tok), buf: make([]byte, 0, 64), sum: make([]byte, 0, sha256.Size)}
}

func (th *tokenHasher) hash(t token) hash {
	th.m.Reset()
	th.buf = append(append(append(th.buf[:0], t.class...), 0), t.text...)
	th.m.Write(th.buf)
	th.sum = th.m.Sum(th.sum[:0])
	var h hash
	copy(h[:], th.sum)
	return h
}

// hashMessage returns the keyed hash of a message's content digest.
func (k *keys) hashMessage(digest []byte) hash {
	m := hmac.New(sha256.New, k.tok)
	m.Write([]byte("message\x00"))
	m.Write(digest)
	var h hash
	copy(h[:], m.Sum(nil))
	return h
}

// lookup returns a token's counts.
func (m *model) lookup(h hash) (spam, ham uint32, ok bool) {
	i, found := slices.BinarySearchFunc(m.toks, h, func(e entry, h hash) int { return bytes.Compare(e.h[:], h[:]) })
	if !found {
		return 0, 0, false
	}
	return m.toks[i].spam, m.toks[i].ham, true
}

// seal encodes and seals m for owner.
func (m *model) seal(k *keys, owner string) []byte {
	n := headerLen + len(m.toks)*entryLen + len(m.trained)*trainedLen
	size := minPadded
	for size < n {
		size *= 2
	}
	plain := make([]byte, size)
	copy(plain, modelMagic)
	binary.BigEndian.PutUint32(plain[4:], m.spam)
	binary.BigEndian.PutUint32(plain[8:], m.ham)
	binary.BigEndian.PutUint32(plain[12:], uint32(len(m.toks)))
	binary.BigEndian.PutUint32(plain[16:], uint32(len(m.trained)))
	p := plain[headerLen:]
	for _, e := range m.toks {
		copy(p, e.h[:])
		binary.BigEndian.PutUint32(p[hashLen:], e.spam)
		binary.BigEndian.PutUint32(p[hashLen+4:], e.ham)
		p = p[entryLen:]
	}
	for _, t := range m.trained {
		copy(p, t.h[:])
		if t.spam {
			p[hashLen] = 1
		}
		p = p[trainedLen:]
	}
	out := make([]byte, 12, 12+size+k.seal.Overhead())
	rand.Read(out)
	out = k.seal.Seal(out, out[:12], plain, []byte(sealAD+owner))
	clear(plain)
	return out
}

// openModel opens what seal sealed for owner.
func openModel(k *keys, owner string, data []byte) (*model, error) {
	if len(data) < 12+k.seal.Overhead() {
		return nil, errCorruptModel
	}
	plain, err := k.seal.Open(nil, data[:12], data[12:], []byte(sealAD+owner))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorruptModel, err)
	}
	if len(plain) < headerLen || string(plain[:4]) != modelMagic {
		return nil, errCorruptModel
	}
	m := &model{spam: binary.BigEndian.Uint32(plain[4:]), ham: binary.BigEndian.Uint32(plain[8:])}
	nt, ntr := int(binary.BigEndian.Uint32(plain[12:])), int(binary.BigEndian.Uint32(plain[16:]))
	p := plain[headerLen:]
	if nt < 0 || ntr < 0 || nt > len(p)/entryLen || ntr > (len(p)-nt*entryLen)/trainedLen {
		return nil, errCorruptModel
	}
	m.toks = make([]entry, nt)
	for i := range m.toks {
		e := &m.toks[i]
		copy(e.h[:], p)
		e.spam = binary.BigEndian.Uint32(p[hashLen:])
		e.ham = binary.BigEndian.Uint32(p[hashLen+4:])
		p = p[entryLen:]
		if i > 0 && bytes.Compare(m.toks[i-1].h[:], e.h[:]) >= 0 {
			return nil, fmt.Errorf("%w: tokens out of order", errCorruptModel)
		}
	}
	m.trained = make([]trainedMsg, ntr)
	for i := range m.trained {
		copy(m.trained[i].h[:], p)
		m.trained[i].spam = p[hashLen] == 1
		p = p[trainedLen:]
	}
	clear(plain)
	return m, nil
}

// update is one message's change to a model: learn its tokens as spam
// or ham, and unlearn an earlier training of the same message.
type update struct {
	msg    hash
	tokens []hash
	spam   bool
}

// apply returns a new model with updates applied, capped at maxTokens,
// and how many updates changed it. A message trained before with the
// same verdict changes nothing; with the other verdict its earlier
// training is undone first.
func (m *model) apply(ups []update, maxTokens int) (*model, int) {
	changed := 0
	n := &model{spam: m.spam, ham: m.ham, trained: slices.Clone(m.trained)}
	delta := make(map[hash][2]int64)
	for _, u := range ups {
		prev := -1
		for i, t := range n.trained {
			if t.h == u.msg {
				prev = i
				break
			}
		}
		if prev >= 0 {
			if n.trained[prev].spam == u.spam {
				continue
			}
			// Undo: the counts of the tokens come from the same message.
			n.trained = slices.Delete(n.trained, prev, prev+1)
			for _, h := range u.tokens {
				d := delta[h]
				if u.spam {
					d[1]--
				} else {
					d[0]--
				}
				delta[h] = d
			}
			if u.spam {
				n.ham = sub1(n.ham)
			} else {
				n.spam = sub1(n.spam)
			}
		}
		for _, h := range u.tokens {
			d := delta[h]
			if u.spam {
				d[0]++
			} else {
				d[1]++
			}
			delta[h] = d
		}
		if u.spam {
			n.spam++
		} else {
			n.ham++
		}
		n.trained = append(n.trained, trainedMsg{h: u.msg, spam: u.spam})
		changed++
	}
	if len(n.trained) > maxTrained {
		n.trained = slices.Clone(n.trained[len(n.trained)-maxTrained:])
	}
	n.toks = make([]entry, 0, len(m.toks)+len(delta))
	for _, e := range m.toks {
		if d, ok := delta[e.h]; ok {
			e.spam = addClamp(e.spam, d[0])
			e.ham = addClamp(e.ham, d[1])
			delete(delta, e.h)
		}
		if e.spam+e.ham > 0 {
			n.toks = append(n.toks, e)
		}
	}
	for h, d := range delta {
		e := entry{h: h, spam: addClamp(0, d[0]), ham: addClamp(0, d[1])}
		if e.spam+e.ham > 0 {
			n.toks = append(n.toks, e)
		}
	}
	if len(n.toks) > maxTokens {
		// Forget the least seen tokens (most are seen once: hapaxes).
		slices.SortStableFunc(n.toks, func(a, b entry) int { return int(b.spam+b.ham) - int(a.spam+a.ham) })
		n.toks = n.toks[:maxTokens]
	}
	slices.SortFunc(n.toks, func(a, b entry) int { return bytes.Compare(a.h[:], b.h[:]) })
	return n, changed
}

func sub1(v uint32) uint32 {
	if v == 0 {
		return 0
	}
	return v - 1
}

func addClamp(v uint32, d int64) uint32 {
	r := int64(v) + d
	switch {
	case r < 0:
		return 0
	case r > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(r)
}
