package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sealmail/sealmail/policy"
)

// Algorithm is a DKIM signing algorithm's key type.
type Algorithm string

// The key types sealmail signs with: both by default (RFC 8463 §4
// recommends signing with Ed25519 and RSA until verifiers all know
// Ed25519).
const (
	Ed25519 Algorithm = "ed25519"
	RSA     Algorithm = "rsa" // 2048 bits (rsaBits)
)

// rsaBits: RFC 8301 §3.2 requires at least 1024 and recommends 2048;
// 2048 still fits one TXT record of a few strings, 4096 does not fit
// some DNS hosting panels.
const rsaBits = 2048

// Status is where a selector is in its life (see doc.go).
type Status string

const (
	Pending  Status = "pending"  // created, to be published; not yet signing
	Active   Status = "active"   // signing
	Retiring Status = "retiring" // replaced; still published for verifiers of mail already sent
	Retired  Status = "retired"  // may be removed from DNS; its private key is destroyed
)

// Defaults for the zero Options.
const (
	// DefaultRetireAfter is how long a replaced selector stays published:
	// longer than the outbound queue keeps a message (5 days by default),
	// so mail signed before a rotation and delivered after it verifies,
	// with room for recipients that verify late.
	DefaultRetireAfter = 14 * 24 * time.Hour
	// DefaultPublishWait is how long a new selector must have been
	// visible in DNS (from this server) before it signs: the record has
	// reached every authoritative server by then.
	DefaultPublishWait = time.Hour
)

// Options configures Open. The zero value is not usable: Dir is required.
type Options struct {
	// Dir holds the keys (created 0700 if missing). Private keys are
	// server secrets, stored unencrypted (mode 0600) because the server
	// signs unattended.
	Dir string
	// RetireAfter is how long a replaced selector stays published
	// (Retiring) before it is Retired and its private key destroyed.
	// 0 means DefaultRetireAfter.
	RetireAfter time.Duration
	// PublishWait is how long CheckPending waits, after it first sees a
	// pending selector's record in DNS, before the selector signs. 0
	// means DefaultPublishWait; negative means no wait.
	PublishWait time.Duration
	// Logger receives key events (generated, activated, retired). nil
	// discards.
	Logger *slog.Logger
	// Now is the clock, for tests. nil means time.Now.
	Now func() time.Time
}

// Selector is one key's public description, as List reports it.
type Selector struct {
	Domain    string    // A-labels
	Name      string    // the selector (s= tag)
	Algorithm Algorithm // Ed25519 or RSA
	Status    Status
	Created   time.Time
	Seen      time.Time // first seen published in DNS by CheckPending; zero if not (yet)
	Activated time.Time // zero while pending
	Replaced  time.Time // when a newer key took over; zero if never
	RetiredAt time.Time // when it is (or was) retired: Replaced + RetireAfter; zero if never replaced
	PublicKey []byte    // ed25519: the 32-byte key; rsa: DER SubjectPublicKeyInfo
}

// DNSName is the name of the selector's TXT record, fully qualified
// without the trailing dot: "SELECTOR._domainkey.DOMAIN" (RFC 6376
// §3.6.2.1).
func (s Selector) DNSName() string { return s.Name + "._domainkey." + s.Domain }

// TXT is the selector's key record (RFC 6376 §3.6.1): v, k, p; "p=" empty
// for a retired selector, which revokes it (§3.6.1: an empty p= means
// the key was revoked).
func (s Selector) TXT() string {
	p := base64.StdEncoding.EncodeToString(s.PublicKey)
	if s.Status == Retired {
		p = ""
	}
	return "v=DKIM1; k=" + string(s.Algorithm) + "; p=" + p
}

// Published reports whether the selector's record belongs in DNS:
// pending (so it can be published before use), active and retiring.
func (s Selector) Published() bool { return s.Status != Retired }

// stateFile is the list of selectors; key files sit beside it.
const (
	stateFile   = "selectors.json"
	lockFile    = "lock"
	stateFormat = 1
)

// state is what stateFile holds. Public data only.
type state struct {
	Format  int                         `json:"format"`
	Domains map[string][]*selectorState `json:"domains"`
}

type selectorState struct {
	Name      string    `json:"selector"`
	Algorithm Algorithm `json:"algorithm"`
	Created   time.Time `json:"created"`
	Seen      time.Time `json:"seen,omitzero"`
	Activated time.Time `json:"activated,omitzero"`
	Replaced  time.Time `json:"replaced,omitzero"`
	PublicKey []byte    `json:"public_key"`
}

// selectorRE is what a selector may look like: a DNS label sequence
// (RFC 6376 §3.1), and what this package makes: "ed-20261201",
// "rsa-20261201-2".
var selectorRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Keys is the DKIM key store: the selectors of every domain and the
// private keys of those that sign. Its methods are safe for concurrent
// use, and for use by several processes at once (the server and the
// command line): changes take an exclusive lock on Dir/lock, and readers
// notice a changed state file.
type Keys struct {
	dir         string           // immutable
	retireAfter time.Duration    // immutable
	publishWait time.Duration    // immutable
	log         *slog.Logger     // immutable
	now         func() time.Time // immutable

	mu      sync.Mutex
	st      *state                   // guarded by mu; as last loaded
	stamp   fileStamp                // guarded by mu; of the state file st came from
	signers map[string][]*signingKey // guarded by mu; domain → active keys, loaded lazily
}

// signingKey is an active selector with its private key.
type signingKey struct {
	domain, selector string
	alg              Algorithm
	key              crypto.Signer
}

type fileStamp struct {
	ok    bool
	mtime time.Time
	size  int64
	ino   uint64
}

func stampOf(fi fs.FileInfo) fileStamp {
	s := fileStamp{ok: true, mtime: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

// Open opens (and creates, if needed) the key store in opt.Dir. It
// generates no key: Ensure does.
func Open(opt Options) (*Keys, error) {
	if opt.Dir == "" {
		return nil, errors.New("dkim: no key directory")
	}
	if opt.RetireAfter < 0 {
		return nil, fmt.Errorf("dkim: retire after %v: must not be negative", opt.RetireAfter)
	}
	k := &Keys{
		dir: opt.Dir, retireAfter: opt.RetireAfter, publishWait: opt.PublishWait,
		log: opt.Logger, now: opt.Now,
	}
	if k.retireAfter == 0 {
		k.retireAfter = DefaultRetireAfter
	}
	switch {
	case k.publishWait == 0:
		k.publishWait = DefaultPublishWait
	case k.publishWait < 0:
		k.publishWait = 0
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	if k.now == nil {
		k.now = time.Now
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("dkim: key directory: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.loadLocked(); err != nil {
		return nil, err
	}
	return k, nil
}

// loadLocked reloads the state file if it changed since it was last
// read, and reports whether it did. A missing file is an empty state.
func (k *Keys) loadLocked() (bool, error) {
	path := filepath.Join(k.dir, stateFile)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if k.st != nil && !k.stamp.ok {
			return false, nil
		}
		k.st, k.stamp, k.signers = &state{Format: stateFormat, Domains: map[string][]*selectorState{}}, fileStamp{}, nil
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("dkim: %w", err)
	}
	stamp := stampOf(fi)
	if k.st != nil && stamp == k.stamp {
		return false, nil
	}
	st, err := readState(path)
	if err != nil {
		return false, err
	}
	k.st, k.stamp, k.signers = st, stamp, nil
	return true, nil
}

// maxStateBytes bounds the state file: a selector is about 600 bytes.
const maxStateBytes = 16 << 20

func readState(path string) (*state, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	defer f.Close()
	var st state
	dec := json.NewDecoder(&limitedReader{r: f, n: maxStateBytes})
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("dkim: %s: %w", path, err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("dkim: %s: format %d, want %d (written by another version of sealmail?)", path, st.Format, stateFormat)
	}
	if st.Domains == nil {
		st.Domains = map[string][]*selectorState{}
	}
	for d, sels := range st.Domains {
		if n, err := policy.NormalizeDomain(d); err != nil || n != d {
			return nil, fmt.Errorf("dkim: %s: bad domain %q", path, d)
		}
		for _, s := range sels {
			if !selectorRE.MatchString(s.Name) || (s.Algorithm != Ed25519 && s.Algorithm != RSA) || len(s.PublicKey) == 0 {
				return nil, fmt.Errorf("dkim: %s: bad selector %q of %s", path, s.Name, d)
			}
		}
	}
	return &st, nil
}

type limitedReader struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("file too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// update runs fn on the current state under the directory lock (so that
// another process's change is never lost) and writes the result if fn
// reports a change. Key files fn creates must be written before update
// writes the state; files of retired selectors are removed after.
func (k *Keys) update(fn func(st *state, now time.Time) (bool, error)) error {
	unlock, err := k.lockDir()
	if err != nil {
		return err
	}
	defer unlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.loadLocked(); err != nil {
		return err
	}
	// Work on a copy: a failed fn or write leaves k.st as on disk.
	st := cloneState(k.st)
	now := k.now().UTC().Truncate(time.Second)
	changed, err := fn(st, now)
	if err != nil {
		return err
	}
	if changed {
		if err := k.writeStateLocked(st); err != nil {
			return err
		}
	}
	k.removeRetiredKeysLocked(now)
	return nil
}

func cloneState(st *state) *state {
	out := &state{Format: stateFormat, Domains: make(map[string][]*selectorState, len(st.Domains))}
	for d, sels := range st.Domains {
		cp := make([]*selectorState, len(sels))
		for i, s := range sels {
			c := *s
			cp[i] = &c
		}
		out.Domains[d] = cp
	}
	return out
}

// lockDir takes the exclusive lock on Dir/lock.
func (k *Keys) lockDir() (func(), error) {
	f, err := os.OpenFile(filepath.Join(k.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dkim: lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("dkim: lock: %w", err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

func (k *Keys) writeStateLocked(st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("dkim: %w", err)
	}
	path := filepath.Join(k.dir, stateFile)
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("dkim: %w", err)
	}
	k.st, k.stamp, k.signers = st, stampOf(fi), nil
	return nil
}

// status derives a selector's status at now.
func (k *Keys) status(s *selectorState, now time.Time) Status {
	switch {
	case s.Activated.IsZero():
		return Pending
	case s.Replaced.IsZero():
		return Active
	case now.Before(s.Replaced.Add(k.retireAfter)):
		return Retiring
	}
	return Retired
}

func (k *Keys) describe(domain string, s *selectorState, now time.Time) Selector {
	out := Selector{
		Domain: domain, Name: s.Name, Algorithm: s.Algorithm, Status: k.status(s, now),
		Created: s.Created, Seen: s.Seen, Activated: s.Activated, Replaced: s.Replaced,
		PublicKey: slices.Clone(s.PublicKey),
	}
	if !s.Replaced.IsZero() {
		out.RetiredAt = s.Replaced.Add(k.retireAfter)
	}
	return out
}

// List returns the selectors of domain ("" for every domain), by domain
// and then newest first.
func (k *Keys) List(domain string) ([]Selector, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.loadLocked(); err != nil {
		return nil, err
	}
	if domain != "" {
		d, err := policy.NormalizeDomain(domain)
		if err != nil {
			return nil, fmt.Errorf("dkim: %w", err)
		}
		domain = d
	}
	now := k.now()
	var out []Selector
	for d, sels := range k.st.Domains {
		if domain != "" && d != domain {
			continue
		}
		for _, s := range sels {
			out = append(out, k.describe(d, s, now))
		}
	}
	slices.SortStableFunc(out, func(a, b Selector) int {
		if c := strings.Compare(a.Domain, b.Domain); c != 0 {
			return c
		}
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// Ensure gives every domain that has no selector at all a new active
// pair (Ed25519 and RSA), so that mail is signed from the first message,
// and removes the private keys of retired selectors. It returns the
// selectors it made. Domains are taken in any form
// policy.NormalizeDomain accepts. Keys are generated in parallel: an
// RSA key takes a few hundred milliseconds.
func (k *Keys) Ensure(domains []string) ([]Selector, error) {
	var made []Selector
	err := k.update(func(st *state, now time.Time) (bool, error) {
		made = made[:0]
		var need []string
		for _, dom := range domains {
			d, err := policy.NormalizeDomain(dom)
			if err != nil {
				return false, fmt.Errorf("dkim: %w", err)
			}
			if len(st.Domains[d]) == 0 && !slices.Contains(need, d) {
				need = append(need, d)
			}
		}
		sels, err := k.generateAll(st, need, now)
		if err != nil {
			return false, err
		}
		for i, ds := range sels {
			for _, s := range ds {
				s.Activated = now
				made = append(made, k.describe(need[i], s, now))
			}
		}
		return len(made) > 0, nil
	})
	if err != nil {
		return nil, err
	}
	for _, s := range made {
		k.log.Info("dkim: generated key "+s.Name+" ("+string(s.Algorithm)+") for "+s.Domain+"; publish its record (sealmail dns)", "domain", s.Domain)
	}
	return made, nil
}

// generateAll runs generate for each domain at once.
func (k *Keys) generateAll(st *state, domains []string, now time.Time) ([][]*selectorState, error) {
	type result struct {
		sels []*selectorState
		err  error
	}
	res := make([]result, len(domains))
	var wg sync.WaitGroup
	for i, d := range domains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].sels, res[i].err = k.newKeys(d, now, nil)
		}()
	}
	wg.Wait()
	out := make([][]*selectorState, len(domains))
	for i, r := range res {
		if r.err != nil {
			return nil, r.err
		}
		st.Domains[domains[i]] = append(st.Domains[domains[i]], r.sels...)
		out[i] = r.sels
	}
	return out, nil
}

// ErrPending: a domain already has a key waiting to be published, so
// Rotate makes no other.
var ErrPending = errors.New("dkim: a new key is already pending")

// Rotate starts a key rotation for domain: it makes a new pending pair
// (Ed25519 and RSA) to publish in DNS. The current keys sign until
// CheckPending sees the new records published (or Activate forces it);
// then they retire. ErrPending if the domain has pending keys already.
func (k *Keys) Rotate(domain string) ([]Selector, error) {
	d, err := policy.NormalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	var made []Selector
	err = k.update(func(st *state, now time.Time) (bool, error) {
		for _, s := range st.Domains[d] {
			if k.status(s, now) == Pending {
				return false, fmt.Errorf("%w for %s: %s (publish it, or activate it with sealmail dkim activate)", ErrPending, d, s.Name)
			}
		}
		sels, err := k.generate(st, d, now)
		if err != nil {
			return false, err
		}
		for _, s := range sels {
			made = append(made, k.describe(d, s, now))
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for _, s := range made {
		k.log.Info("dkim: new pending key "+s.Name+" ("+string(s.Algorithm)+") for "+s.Domain+"; publish its record (sealmail dns)", "domain", s.Domain)
	}
	return made, nil
}

// generate makes a new Ed25519 and RSA key for d, writes their private
// keys, and adds them (pending) to st.
func (k *Keys) generate(st *state, d string, now time.Time) ([]*selectorState, error) {
	sels, err := k.newKeys(d, now, st.Domains[d])
	if err != nil {
		return nil, err
	}
	st.Domains[d] = append(st.Domains[d], sels...)
	return sels, nil
}

// newKeys makes a new Ed25519 and RSA key for d, with names unused in
// existing, and writes their private keys.
func (k *Keys) newKeys(d string, now time.Time, existing []*selectorState) ([]*selectorState, error) {
	var out []*selectorState
	for _, alg := range []Algorithm{RSA, Ed25519} {
		name := newName(existing, alg, now)
		priv, pub, err := newKey(alg)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("dkim: marshal key: %w", err)
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		clear(der)
		if err := os.MkdirAll(filepath.Join(k.dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("dkim: %w", err)
		}
		err = writeFileAtomic(k.keyPath(d, name), pemBytes)
		clear(pemBytes)
		if err != nil {
			return nil, err
		}
		out = append(out, &selectorState{Name: name, Algorithm: alg, Created: now, PublicKey: pub})
	}
	return out, nil
}

// newName picks an unused selector name: "ed-YYYYMMDD" or "rsa-YYYYMMDD",
// with "-2", "-3"… on a second rotation the same day. Names are never
// reused, retired ones included, so a verifier's cached key can never be
// mistaken for a new one.
func newName(existing []*selectorState, alg Algorithm, now time.Time) string {
	prefix := "ed"
	if alg == RSA {
		prefix = "rsa"
	}
	base := prefix + "-" + now.Format("20060102")
	used := func(name string) bool {
		return slices.ContainsFunc(existing, func(s *selectorState) bool { return s.Name == name })
	}
	name := base
	for i := 2; used(name); i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	return name
}

func newKey(alg Algorithm) (crypto.Signer, []byte, error) {
	switch alg {
	case Ed25519:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("dkim: generate key: %w", err)
		}
		return priv, []byte(pub), nil
	case RSA:
		priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, nil, fmt.Errorf("dkim: generate key: %w", err)
		}
		pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if err != nil {
			return nil, nil, fmt.Errorf("dkim: marshal key: %w", err)
		}
		return priv, pub, nil
	}
	return nil, nil, fmt.Errorf("dkim: unknown algorithm %q", alg)
}

func (k *Keys) keyPath(domain, selector string) string {
	return filepath.Join(k.dir, domain, selector+".key")
}

// Activate makes domain's pending keys sign now and starts retiring the
// keys they replace, without waiting for CheckPending. It is for
// operators who have published the records and cannot wait, or whose
// server cannot see its own DNS. It returns the selectors activated;
// none if nothing was pending.
func (k *Keys) Activate(domain string) ([]Selector, error) {
	d, err := policy.NormalizeDomain(domain)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	var act []Selector
	err = k.update(func(st *state, now time.Time) (bool, error) {
		act = k.activateLocked(st, d, now)
		return len(act) > 0, nil
	})
	return act, err
}

// activateLocked activates every pending selector of d and marks the
// active ones replaced. The caller holds the directory lock.
func (k *Keys) activateLocked(st *state, d string, now time.Time) []Selector {
	var pending []*selectorState
	for _, s := range st.Domains[d] {
		if k.status(s, now) == Pending {
			pending = append(pending, s)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	for _, s := range st.Domains[d] {
		if k.status(s, now) == Active {
			s.Replaced = now
		}
	}
	var out []Selector
	for _, s := range pending {
		s.Activated = now
		out = append(out, k.describe(d, s, now))
		k.log.Info("dkim: key "+s.Name+" of "+d+" now signs", "domain", d)
	}
	return out
}

// removeRetiredKeysLocked destroys the private keys of retired selectors
// and key files no selector names (left by a crash between writing a
// key and the state). The caller holds the directory lock.
func (k *Keys) removeRetiredKeysLocked(now time.Time) {
	for d, sels := range k.st.Domains {
		keep := map[string]bool{}
		for _, s := range sels {
			if k.status(s, now) != Retired {
				keep[s.Name+".key"] = true
			}
		}
		ents, err := os.ReadDir(filepath.Join(k.dir, d))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".key") || keep[e.Name()] {
				continue
			}
			if err := os.Remove(filepath.Join(k.dir, d, e.Name())); err != nil {
				k.log.Warn("dkim: remove retired key", "domain", d, "err", err)
				continue
			}
			k.log.Info("dkim: destroyed the private key of retired selector "+strings.TrimSuffix(e.Name(), ".key")+" of "+d, "domain", d)
		}
	}
}

// Records returns the selectors of domain whose records belong in DNS
// (pending, active, retiring), newest first.
func (k *Keys) Records(domain string) ([]Selector, error) {
	all, err := k.List(domain)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(s Selector) bool { return !s.Published() }), nil
}

// activeKeys returns domain's signing keys, loading their private keys
// on first use after a change of the state file.
func (k *Keys) activeKeys(domain string) ([]*signingKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.loadLocked(); err != nil {
		return nil, err
	}
	if ks, ok := k.signers[domain]; ok {
		return ks, nil
	}
	var out []*signingKey
	for _, s := range k.st.Domains[domain] {
		if !s.Activated.IsZero() && s.Replaced.IsZero() {
			key, err := k.loadKey(domain, s)
			if err != nil {
				return nil, err
			}
			out = append(out, &signingKey{domain: domain, selector: s.Name, alg: s.Algorithm, key: key})
		}
	}
	// RSA first: it goes on top, where a verifier that checks only one
	// signature looks.
	slices.SortStableFunc(out, func(a, b *signingKey) int {
		if a.alg == b.alg {
			return 0
		}
		if a.alg == RSA {
			return -1
		}
		return 1
	})
	if k.signers == nil {
		k.signers = map[string][]*signingKey{}
	}
	k.signers[domain] = out
	return out, nil
}

// maxKeyFile bounds a private key file: an RSA-4096 PKCS#8 PEM is 3.3 KB.
const maxKeyFile = 64 << 10

func (k *Keys) loadKey(domain string, s *selectorState) (crypto.Signer, error) {
	path := k.keyPath(domain, s.Name)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dkim: key of %s selector %s: %w", domain, s.Name, err)
	}
	if fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("dkim: key file %s too large", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dkim: key of %s selector %s: %w", domain, s.Name, err)
	}
	defer clear(b)
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("dkim: key file %s: not a PEM private key", path)
	}
	defer clear(blk.Bytes)
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dkim: key file %s: %w", path, err)
	}
	var pub []byte
	signer, ok := key.(crypto.Signer)
	switch v := key.(type) {
	case ed25519.PrivateKey:
		if s.Algorithm == Ed25519 {
			pub = v.Public().(ed25519.PublicKey)
		}
	case *rsa.PrivateKey:
		if s.Algorithm == RSA {
			pub, _ = x509.MarshalPKIXPublicKey(&v.PublicKey)
		}
	}
	if !ok || pub == nil || string(pub) != string(s.PublicKey) {
		return nil, fmt.Errorf("dkim: key file %s does not hold the %s key of selector %s", path, s.Algorithm, s.Name)
	}
	return signer, nil
}

// writeFileAtomic writes data to path through a temporary file in the
// same directory (mode 0600), syncs it, renames it over path and syncs
// the directory, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("dkim: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("dkim: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("dkim: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("dkim: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("dkim: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("dkim: write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("dkim: write %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("dkim: write %s: %w", path, err)
	}
	return nil
}
