package tlspolicy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// The cache file keeps MTA-STS policies across restarts (RFC 8461 §5.1:
// the cache is what protects the second delivery to a domain from an
// attacker who suppresses its TXT record). It names the recipient
// domains the server has sent to, which are not to be readable on disk,
// so it is sealed: "SMC1", a random 12-byte nonce, and AES-256-GCM of
// the JSON entries under HKDF-SHA256(Options.CacheKey, "sealmail mta-sts
// cache v1"), with the magic as additional data.

var cacheMagic = []byte("SMC1")

// maxCacheFile bounds the file read at start: 10,000 domains of a few
// hundred bytes each, with room.
const maxCacheFile = 64 << 20

// saveInterval is the least time between two writes of the cache file;
// Close writes what is left.
const saveInterval = 30 * time.Second

type persisted struct {
	Domain  string    `json:"domain"`
	ID      string    `json:"id"`
	Fetched time.Time `json:"fetched"`
	Expires time.Time `json:"expires"`
	Mode    Mode      `json:"mode"`
	MX      []string  `json:"mx,omitempty"`
	MaxAge  int64     `json:"max_age"` // seconds
}

func newCacheAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("tlspolicy: cache key of %d bytes, want 32", len(key))
	}
	k, err := hkdf.Key(sha256.New, key, nil, "sealmail mta-sts cache v1", 32)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// loadCache fills the cache from the file, keeping the policies still
// valid at now. A missing file is an empty cache.
func (p *Policies) loadCache(now time.Time) error {
	f, err := os.Open(p.cacheFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCacheFile+1))
	if err != nil {
		return err
	}
	if len(b) > maxCacheFile {
		return errors.New("cache file too large")
	}
	ns := p.cacheAEAD.NonceSize()
	if len(b) < len(cacheMagic)+ns || string(b[:len(cacheMagic)]) != string(cacheMagic) {
		return errors.New("not a policy cache file")
	}
	plain, err := p.cacheAEAD.Open(nil, b[len(cacheMagic):len(cacheMagic)+ns], b[len(cacheMagic)+ns:], cacheMagic)
	if err != nil {
		return errors.New("the cache file does not open (another server key, or damaged)")
	}
	var entries []persisted
	if err := json.Unmarshal(plain, &entries); err != nil {
		return err
	}
	for _, e := range entries {
		pol := &Policy{Mode: e.Mode, MX: e.MX, MaxAge: time.Duration(e.MaxAge) * time.Second}
		if !now.Before(e.Expires) || !validID(e.ID) {
			continue
		}
		switch pol.Mode {
		case ModeEnforce, ModeTesting, ModeNone:
		default:
			continue
		}
		p.cache.put(&policyEntry{domain: e.Domain, policy: pol, id: e.ID, fetched: e.Fetched, expires: e.Expires})
	}
	return nil
}

// saveCache writes the valid policies of the cache to the file if it
// changed and saveInterval has passed since the last write (or force).
func (p *Policies) saveCache(force bool) error {
	if p.cacheFile == "" {
		return nil
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	now := p.now()
	if !p.dirty.Load() || (!force && now.Sub(p.lastSave) < saveInterval) {
		return nil
	}
	p.dirty.Store(false)
	var entries []persisted
	for _, e := range p.cache.all() {
		if !e.valid(now) {
			continue
		}
		entries = append(entries, persisted{Domain: e.domain, ID: e.id, Fetched: e.fetched, Expires: e.expires,
			Mode: e.policy.Mode, MX: e.policy.MX, MaxAge: int64(e.policy.MaxAge / time.Second)})
	}
	plain, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	out := append([]byte(nil), cacheMagic...)
	nonce := make([]byte, p.cacheAEAD.NonceSize())
	rand.Read(nonce) // never fails (crypto/rand, Go 1.24+)
	out = append(out, nonce...)
	out = p.cacheAEAD.Seal(out, nonce, plain, cacheMagic)
	clear(plain)
	if err := writeFileAtomic(p.cacheFile, out); err != nil {
		p.dirty.Store(true)
		return err
	}
	p.lastSave = now
	return nil
}

// Close writes the policy cache file, if there is one, with what changed
// since its last write. The Policies stay usable.
func (p *Policies) Close() error {
	if err := p.saveCache(true); err != nil {
		return fmt.Errorf("tlspolicy: save policy cache: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file (mode
// 0600) that it syncs and renames over path, then syncs the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
