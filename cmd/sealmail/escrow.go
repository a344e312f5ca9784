package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/audit"
	smtpserver "github.com/sealmail/sealmail/server/smtp"
	"github.com/sealmail/sealmail/server/smtp/queue"
	"github.com/sealmail/sealmail/store"
)

// escrowFlags are the flags of the escrow commands.
type escrowFlags struct {
	key     string
	out     string
	replace bool
}

func init() {
	registerGroup("escrow", "the organisation's escrow key: make it, list it, export retained mail with it")
	register(escrowCommands()...)
}

func escrowCommands() []*command {
	return []*command{
		{name: "escrow init", summary: "make the organisation's escrow key: the private half goes to --out, to keep offline; the server keeps the public half",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.escrow.out, "out", "", "write the passphrase-protected private key to `FILE` (must not exist)")
				fs.BoolVar(&f.escrow.replace, "replace", false, "replace the escrow key in use (mail sealed to it stays sealed to it: keep its file)")
				passwordFlag(fs, f)
			}, run: runEscrowInit},
		{name: "escrow status", summary: "list the escrow keys: the one in use and those it replaced",
			flags: jsonFlag, run: runEscrowStatus},
		{name: "escrow export", args: "SCOPE", summary: "write the escrowed mail of SCOPE (org, domain:D, user:A, mailbox:A/NAME) as mbox, opened with the escrow key",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.escrow.key, "key", "", "the escrow private key `FILE` that escrow init wrote")
				fs.StringVar(&f.escrow.out, "out", "", "write the mbox to `FILE` (must not exist; - for standard output)")
				passwordFlag(fs, f)
				jsonFlag(fs, f)
			}, run: runEscrowExport},
	}
}

// escrowAdmin is what the escrow commands need, from the store opened
// here (localAdmin) or from the running server (remoteAdmin). The escrow
// private key never reaches it: exports carry sealed messages, which the
// CLI opens.
type escrowAdmin interface {
	EscrowKeys(ctx context.Context) ([]escrowKeyInfo, error)
	// EscrowInit stores a new escrow public key as the key in use
	// (replacing one only with replace) and audits it.
	EscrowInit(ctx context.Context, publicKey []byte, replace bool) (escrowKeyInfo, error)
	// EscrowRefused audits an export that was refused before it
	// started (no key, a wrong passphrase).
	EscrowRefused(ctx context.Context, scope, cause string) error
	// EscrowExport audits the start of an export of scope with the key
	// whose fingerprint is given (refused, and audited, unless it is an
	// escrow key of the organisation) and calls fn with every message of
	// the scope sealed to it. The result counts what was sent and what
	// was skipped.
	EscrowExport(ctx context.Context, scope, fingerprint string, fn func(escrowItem, []byte) error) (escrowSent, error)
	// EscrowFinished audits what the CLI wrote.
	EscrowFinished(ctx context.Context, scope, fingerprint string, done escrowDone) error
}

var (
	_ escrowAdmin = (*localAdmin)(nil)
	_ escrowAdmin = (*remoteAdmin)(nil)
)

// escrowKeyInfo is one escrow key, as `escrow status --json` prints it.
type escrowKeyInfo struct {
	ID          uint64    `json:"id"`
	Fingerprint string    `json:"fingerprint"`
	Created     time.Time `json:"created"`
	Retired     time.Time `json:"retired,omitzero"`
	InUse       bool      `json:"in_use"`
}

func escrowKeyInfoOf(k store.EscrowKey) escrowKeyInfo {
	return escrowKeyInfo{ID: k.ID, Fingerprint: k.Fingerprint, Created: k.Created, Retired: k.Retired, InUse: k.Retired.IsZero()}
}

// escrowItem is one exported message, without its sealed bytes.
type escrowItem struct {
	Account      string    `json:"account"`
	Mailbox      string    `json:"mailbox"`
	MailboxID    uint64    `json:"mailbox_id"`
	UID          uint32    `json:"uid"`
	InternalDate time.Time `json:"internal_date"`
	Size         int64     `json:"sealed_size"`
	// Vault is the retention vault entry's ID for a message the user
	// removed while retention kept it (Mailbox and UID say where it was);
	// 0 for a message in a mailbox. Former: the account was deleted.
	Vault  uint64 `json:"vault,omitempty"`
	Former bool   `json:"former,omitempty"`
}

// escrowSent is what the server sent of an export.
type escrowSent struct {
	Messages int   `json:"messages"`
	Skipped  int   `json:"skipped"` // in scope, but not sealed to the key
	Bytes    int64 `json:"sealed_bytes"`
}

// escrowDone is what the CLI wrote of an export.
type escrowDone struct {
	escrowSent
	Written int    `json:"written"`
	Failed  int    `json:"failed"`
	SHA256  string `json:"sha256"` // of the mbox written
}

// escrowScope is a parsed SCOPE: org, domain:D, user:A or
// mailbox:A/NAME.
type escrowScope struct {
	kind    string // "org", "domain", "user", "mailbox"
	domain  string // canonical
	address string // canonical
	mailbox string
}

func (s escrowScope) String() string {
	switch s.kind {
	case "domain":
		return "domain:" + s.domain
	case "user":
		return "user:" + s.address
	case "mailbox":
		return "mailbox:" + s.address + "/" + s.mailbox
	}
	return "org"
}

func parseEscrowScope(text string) (escrowScope, error) {
	if text == "org" {
		return escrowScope{kind: "org"}, nil
	}
	kind, rest, _ := strings.Cut(text, ":")
	switch kind {
	case "domain":
		d, err := policy.NormalizeDomain(rest)
		if err != nil {
			return escrowScope{}, usagef("SCOPE %q: %v", text, err)
		}
		return escrowScope{kind: kind, domain: d}, nil
	case "user":
		a, err := policy.CanonicalAddress(rest)
		if err != nil {
			return escrowScope{}, usagef("SCOPE %q: %v", text, err)
		}
		return escrowScope{kind: kind, address: a}, nil
	case "mailbox":
		addr, name, ok := strings.Cut(rest, "/")
		a, err := policy.CanonicalAddress(addr)
		if !ok || name == "" || err != nil {
			return escrowScope{}, usagef("SCOPE %q: want mailbox:ADDRESS/NAME", text)
		}
		if strings.EqualFold(name, store.Inbox) {
			name = store.Inbox
		}
		return escrowScope{kind: kind, address: a, mailbox: name}, nil
	}
	return escrowScope{}, usagef("SCOPE %q: want org, domain:DOMAIN, user:ADDRESS or mailbox:ADDRESS/NAME", text)
}

// withEscrow runs f with an escrowAdmin.
func (e *env) withEscrow(f func(a escrowAdmin, c *Config) error) error {
	return e.withAdmin(func(a admin, c *Config) error {
		ea, ok := a.(escrowAdmin)
		if !ok {
			return errors.New("escrow is not available here")
		}
		return f(ea, c)
	})
}

func runEscrowStatus(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	return e.withEscrow(func(a escrowAdmin, _ *Config) error {
		keys, err := a.EscrowKeys(ctx)
		if err != nil {
			return err
		}
		if e.flags.json {
			return writeJSON(e.io.out, keys)
		}
		if len(keys) == 0 {
			fmt.Fprintln(e.io.out, "escrow is off: no escrow key (sealmail escrow init makes one)")
			return nil
		}
		tw := tabwriter.NewWriter(e.io.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tFINGERPRINT\tCREATED\tSTATE")
		for _, k := range keys {
			state := "in use"
			if !k.InUse {
				state = "replaced " + k.Retired.UTC().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", k.ID, k.Fingerprint, k.Created.UTC().Format(time.DateTime), state)
		}
		return tw.Flush()
	})
}

func runEscrowInit(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	out := e.flags.escrow.out
	if out == "" {
		return usagef("--out FILE is required: the private key is written there, once")
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%s exists; escrow init never overwrites a key file", out)
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	// Refuse before asking for a passphrase.
	err = e.withEscrow(func(a escrowAdmin, _ *Config) error {
		keys, err := a.EscrowKeys(ctx)
		if err != nil {
			return err
		}
		if i := slices.IndexFunc(keys, func(k escrowKeyInfo) bool { return k.InUse }); i >= 0 && !e.flags.escrow.replace {
			return fmt.Errorf("an escrow key is in use (%s, made %s); --replace makes a new one, and mail sealed to the old one still needs its file",
				keys[i].Fingerprint, keys[i].Created.UTC().Format(time.DateOnly))
		}
		return nil
	})
	if err != nil {
		return err
	}
	pass, err := e.readEscrowPassphrase()
	if err != nil {
		return err
	}
	defer wipe(pass)
	uid := fmt.Sprintf("sealmail escrow <escrow@%s>", c.Domains[0])
	pair, err := crypto.NewEscrowKey(uid, pass)
	if err != nil {
		return err
	}
	defer wipe(pair.Private)
	if err := writeNewFile(out, pair.Private); err != nil {
		return err
	}
	// The file must open before the server seals a message to its key.
	written, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	defer wipe(written)
	ek, err := crypto.UnlockEscrowKey(written, pass)
	if err != nil {
		return fmt.Errorf("%s does not read back (%v); the escrow key was not stored, delete the file", out, err)
	}
	ek.Wipe()
	return e.withEscrow(func(a escrowAdmin, _ *Config) error {
		k, err := a.EscrowInit(ctx, pair.PublicKey, e.flags.escrow.replace)
		if err != nil {
			return fmt.Errorf("%w (the key in %s was not stored; delete it)", err, out)
		}
		fmt.Fprintf(e.io.out, "escrow key %s made and in use:\n  the private key, protected by the passphrase, is in %s: keep it (and the passphrase) offline, apart; sealmail keeps no copy and cannot produce escrowed mail without it\n  from now on mail of producible classes is sealed to it as well\n",
			k.Fingerprint, out)
		return nil
	})
}

// readEscrowPassphrase reads the new escrow passphrase: twice at a
// prompt, once from --password-stdin.
func (e *env) readEscrowPassphrase() ([]byte, error) {
	pass, err := e.readSecret(fmt.Sprintf("Passphrase for the escrow key (at least %d characters): ", crypto.MinEscrowPassphrase))
	if err != nil {
		return nil, err
	}
	if n := len([]rune(string(pass))); n < crypto.MinEscrowPassphrase {
		wipe(pass)
		return nil, fmt.Errorf("the passphrase has %d characters; it protects every escrowed message: use at least %d", n, crypto.MinEscrowPassphrase)
	}
	if e.flags.passwordStdin {
		return pass, nil
	}
	again, err := e.readSecret("Repeat it: ")
	if err != nil {
		wipe(pass)
		return nil, err
	}
	defer wipe(again)
	if !bytes.Equal(pass, again) {
		wipe(pass)
		return nil, errors.New("the passphrases do not match")
	}
	return pass, nil
}

// writeNewFile creates path (which must not exist), mode 0600, writes
// data, and makes it durable.
func writeNewFile(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Causes of a refused export, as the audit log records them.
const (
	causeNoKey       = "no key file given"
	causeKeyFile     = "key file unreadable"
	causeNotKey      = "not an escrow key file"
	causePassphrase  = "wrong passphrase"
	causeUnknownKey  = "not an escrow key of this organisation"
	maxEscrowPieceSz = 1 << 20 // sealed bytes per line of an export stream
)

func runEscrowExport(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("want exactly one SCOPE: org, domain:DOMAIN, user:ADDRESS or mailbox:ADDRESS/NAME")
	}
	scope, err := parseEscrowScope(args[0])
	if err != nil {
		return err
	}
	f := e.flags.escrow
	// Every attempt to use escrow is audited, refused ones included.
	refuse := func(cause string, err error) error {
		if aerr := e.withEscrow(func(a escrowAdmin, _ *Config) error { return a.EscrowRefused(ctx, scope.String(), cause) }); aerr != nil {
			return fmt.Errorf("%w (and the refusal could not be audited: %v)", err, aerr)
		}
		return err
	}
	if f.key == "" {
		return refuse(causeNoKey, usagef("--key FILE is required: the escrow private key that escrow init wrote"))
	}
	if f.out == "" {
		return usagef("--out FILE is required (- for standard output): the export is mail in the clear")
	}
	if f.out != "-" {
		if _, err := os.Lstat(f.out); err == nil {
			return fmt.Errorf("%s exists; escrow export never overwrites a file", f.out)
		}
	}
	armored, err := readKeyFile(f.key)
	if err != nil {
		return refuse(causeKeyFile, err)
	}
	defer wipe(armored)
	pass, err := e.promptFirst(func() ([]byte, error) {
		return e.readSecret(fmt.Sprintf("Passphrase of the escrow key in %s: ", f.key))
	})
	if err != nil {
		return err
	}
	ek, err := crypto.UnlockEscrowKey(armored, pass)
	wipe(pass)
	switch {
	case errors.Is(err, crypto.ErrBadPassword):
		return refuse(causePassphrase, fmt.Errorf("wrong passphrase for the escrow key in %s", f.key))
	case err != nil:
		return refuse(causeNotKey, fmt.Errorf("%s: %v", f.key, err))
	}
	defer ek.Wipe()

	var w io.Writer = e.io.out
	report := e.io.out
	var file *os.File
	complete := false
	if f.out != "-" {
		file, err = os.OpenFile(f.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		// An export that stops early leaves no partial file behind; one
		// that ran to its end keeps what opened.
		defer func() {
			file.Close()
			if !complete {
				os.Remove(f.out)
			}
		}()
		w = file
	} else {
		report = e.io.err
	}
	h := sha256.New()
	mb := newMboxWriter(io.MultiWriter(w, h))
	var done escrowDone
	var failures []string
	p := e.progress("export", unitMessages)
	defer p.Done()
	return e.withEscrow(func(a escrowAdmin, _ *Config) error {
		sent, err := a.EscrowExport(ctx, scope.String(), ek.Fingerprint(), func(it escrowItem, sealed []byte) error {
			defer func() { p.Set(int64(done.Written+done.Failed), 0) }()
			r, err := ek.Open(bytes.NewReader(sealed))
			var plain []byte
			if err == nil {
				plain, err = io.ReadAll(r) // to the end: integrity first
			}
			if err != nil {
				done.Failed++
				failures = append(failures, fmt.Sprintf("%s %s uid %d: %v", it.Account, it.Mailbox, it.UID, err))
				return nil
			}
			defer wipe(plain)
			if err := mb.write(it.InternalDate, plain); err != nil {
				return fmt.Errorf("write the mbox: %w", err)
			}
			done.Written++
			return nil
		})
		p.Done() // before the report, which may go to standard error
		if err != nil {
			return err
		}
		if file != nil {
			if err := file.Sync(); err != nil {
				return err
			}
			if err := file.Close(); err != nil {
				return err
			}
		}
		done.escrowSent = sent
		done.SHA256 = hex.EncodeToString(h.Sum(nil))
		complete = true
		if err := a.EscrowFinished(ctx, scope.String(), ek.Fingerprint(), done); err != nil {
			return fmt.Errorf("the export was written but could not be audited: %w", err)
		}
		if e.flags.json {
			if err := writeJSON(report, done); err != nil {
				return err
			}
		} else {
			where := f.out
			if where == "-" {
				where = "standard output"
			}
			fmt.Fprintf(report, "exported %d message(s) of %s to %s (sha256 %s)\n", done.Written, scope, where, done.SHA256)
			if done.Skipped > 0 {
				fmt.Fprintf(report, "  %d message(s) in scope are not sealed to escrow key %s (not of a producible class, delivered before escrow or sealed to another escrow key)\n", done.Skipped, ek.Fingerprint())
			}
		}
		for _, f := range failures {
			fmt.Fprintln(e.io.err, "did not open: "+f)
		}
		if done.Failed > 0 {
			return fmt.Errorf("%d message(s) sealed to the escrow key did not open", done.Failed)
		}
		return nil
	})
}

// readKeyFile reads an escrow key file, bounded.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// mboxWriter writes mboxrd: "From MAILER-DAEMON <asctime>\n", the message
// with a '>' added before every line that matches ^>*From␠, a "\n" if it
// does not end with one, then an empty line. Reading it back (one '>'
// less on such lines, the empty line dropped) gives the message's bytes.
type mboxWriter struct {
	w io.Writer
}

func newMboxWriter(w io.Writer) *mboxWriter { return &mboxWriter{w: w} }

func (m *mboxWriter) write(date time.Time, msg []byte) error {
	var b bytes.Buffer
	b.Grow(len(msg) + 128)
	fmt.Fprintf(&b, "From MAILER-DAEMON %s\n", date.UTC().Format(time.ANSIC))
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
			b.WriteByte('>')
		}
		b.Write(line)
		msg = msg[len(line):]
	}
	if b.Len() > 0 && b.Bytes()[b.Len()-1] != '\n' {
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	_, err := m.w.Write(b.Bytes())
	return err
}

// producibility is what escrow asks the retention policy: whether mail of
// class origin ("" for the default) arriving for address, in mailbox (0
// for INBOX), falls under a rule marked producible.
// server/retention.Service implements it.
type producibility interface {
	Producible(address string, mailbox uint64, origin string) bool
}

// escrowPolicy decides, at delivery, which copies are also sealed to the
// escrow key in use (smtp.Escrow): those of producible classes.
type escrowPolicy struct {
	keys   *escrowKeys
	policy producibility // nil: no class is producible
}

var (
	_ smtpserver.Escrow = escrowPolicy{}
	_ queue.Escrow      = escrowPolicy{}
)

func (p escrowPolicy) EscrowKeys(ctx context.Context, account string, mailbox uint64, class string) ([]*crypto.PublicKey, error) {
	if p.keys == nil || p.policy == nil || !p.policy.Producible(account, mailbox, class) {
		return nil, nil
	}
	k, err := p.keys.Active(ctx)
	if err != nil || k == nil {
		return nil, err
	}
	return []*crypto.PublicKey{k}, nil
}

// The escrow keys in use, for delivery: one per process, shared by the
// SMTP server and the control socket (EscrowInit changes it).
type escrowKeys struct {
	st store.Store

	mu     sync.Mutex
	loaded bool              // guarded by mu
	active *crypto.PublicKey // guarded by mu; nil: escrow off
}

// Active returns the escrow key in use, or nil when escrow is off.
func (k *escrowKeys) Active(ctx context.Context) (*crypto.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.loaded {
		return k.active, nil
	}
	keys, err := k.st.EscrowKeys(ctx)
	if err != nil {
		return nil, err
	}
	k.active = nil
	if n := len(keys); n > 0 && keys[n-1].Retired.IsZero() {
		pub, err := crypto.ParsePublicKey(keys[n-1].PublicKey)
		if err != nil {
			return nil, fmt.Errorf("escrow key %s: %w", keys[n-1].Fingerprint, err)
		}
		k.active = pub
	}
	k.loaded = true
	return k.active, nil
}

// reload makes the next Active read the store again.
func (k *escrowKeys) reload() {
	k.mu.Lock()
	k.loaded = false
	k.mu.Unlock()
}

func (a *localAdmin) EscrowKeys(ctx context.Context) ([]escrowKeyInfo, error) {
	keys, err := a.st.EscrowKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]escrowKeyInfo, len(keys))
	for i, k := range keys {
		out[i] = escrowKeyInfoOf(k)
	}
	return out, nil
}

func (a *localAdmin) EscrowInit(ctx context.Context, publicKey []byte, replace bool) (escrowKeyInfo, error) {
	pub, err := crypto.ParsePublicKey(publicKey)
	if err != nil {
		return escrowKeyInfo{}, adminErrorf(err, "not an escrow public key: %v", err)
	}
	keys, err := a.st.EscrowKeys(ctx)
	if err != nil {
		return escrowKeyInfo{}, err
	}
	var replaced string
	if n := len(keys); n > 0 && keys[n-1].Retired.IsZero() {
		if !replace {
			return escrowKeyInfo{}, adminErrorf(nil, "an escrow key is in use (%s)", keys[n-1].Fingerprint)
		}
		replaced = keys[n-1].Fingerprint
	}
	k, err := a.st.AddEscrowKey(ctx, store.EscrowKey{Fingerprint: pub.Fingerprint(), PublicKey: publicKey})
	if errors.Is(err, store.ErrExists) {
		return escrowKeyInfo{}, adminErrorf(err, "escrow key %s was added before", pub.Fingerprint())
	}
	if err != nil {
		return escrowKeyInfo{}, err
	}
	if a.escrow != nil {
		a.escrow.reload()
	}
	ev := audit.Event{Action: "escrow.init", Scope: "org", Detail: map[string]string{"fingerprint": k.Fingerprint}}
	if replaced != "" {
		ev.Detail["replaced"] = replaced
	}
	if err := a.audit.Record(ctx, ev); err != nil {
		return escrowKeyInfo{}, fmt.Errorf("escrow key %s stored but not audited: %w", k.Fingerprint, err)
	}
	return escrowKeyInfoOf(k), nil
}

func (a *localAdmin) EscrowRefused(ctx context.Context, scope, cause string) error {
	return a.audit.Record(ctx, audit.Event{Action: "escrow.export", Scope: clipText(scope, audit.MaxScopeBytes),
		Reason: clipText(cause, 256), Detail: map[string]string{"outcome": "refused"}})
}

func (a *localAdmin) EscrowFinished(ctx context.Context, scope, fingerprint string, d escrowDone) error {
	return a.audit.Record(ctx, audit.Event{Action: "escrow.export", Scope: clipText(scope, audit.MaxScopeBytes),
		Detail: map[string]string{
			"outcome": "written", "fingerprint": clipText(fingerprint, 128),
			"messages": strconv.Itoa(d.Written), "failed": strconv.Itoa(d.Failed), "sha256": clipText(d.SHA256, 64),
		}})
}

// clipText bounds text that a client sent for the audit log.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (a *localAdmin) EscrowExport(ctx context.Context, scopeText, fingerprint string, fn func(escrowItem, []byte) error) (escrowSent, error) {
	var sent escrowSent
	scope, err := parseEscrowScope(scopeText)
	if err != nil {
		return sent, adminErrorf(err, "%v", err)
	}
	keys, err := a.st.EscrowKeys(ctx)
	if err != nil {
		return sent, err
	}
	i := slices.IndexFunc(keys, func(k store.EscrowKey) bool { return k.Fingerprint == fingerprint })
	if i < 0 {
		if err := a.EscrowRefused(ctx, scope.String(), causeUnknownKey+": "+clipText(fingerprint, 128)); err != nil {
			return sent, err
		}
		return sent, adminErrorf(nil, "key %s is not an escrow key of this organisation (sealmail escrow status lists them)", clipText(fingerprint, 128))
	}
	pub, err := crypto.ParsePublicKey(keys[i].PublicKey)
	if err != nil {
		return sent, err
	}
	// Audited before any sealed message leaves the store.
	if err := a.audit.Record(ctx, audit.Event{Action: "escrow.export", Scope: scope.String(),
		Detail: map[string]string{"outcome": "started", "fingerprint": fingerprint}}); err != nil {
		return sent, err
	}
	// What the scope holds: the live mailboxes of its accounts, then the
	// retention vaults, a deleted account's included (the mail escrow is
	// for: kept after its reader has gone).
	boxes, vaults, err := a.escrowScopeParts(ctx, scope)
	if err != nil {
		return sent, err
	}
	emit := func(it escrowItem, blob []byte) error {
		ok, err := pub.SealedTo(bytes.NewReader(blob))
		if err != nil || !ok {
			sent.Skipped++
			return nil
		}
		it.Size = int64(len(blob))
		if err := fn(it, blob); err != nil {
			return err
		}
		sent.Messages++
		sent.Bytes += int64(len(blob))
		return nil
	}
	for _, b := range boxes {
		msgs, err := a.st.Messages(ctx, b.account, b.mb.ID, store.ListOptions{})
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return sent, err
		}
		for _, m := range msgs {
			blob, err := a.st.Blob(ctx, b.account, b.mb.ID, m.UID)
			if errors.Is(err, store.ErrNotFound) {
				continue // expunged meanwhile
			}
			if err != nil {
				return sent, err
			}
			it := escrowItem{Account: b.account, Mailbox: b.mb.Name, MailboxID: b.mb.ID, UID: m.UID, InternalDate: m.InternalDate}
			if err := emit(it, blob); err != nil {
				return sent, err
			}
		}
	}
	for _, o := range vaults {
		entries, err := a.st.Vault(ctx, o)
		if errors.Is(err, store.ErrNotFound) {
			continue // its last entry destroyed meanwhile
		}
		if err != nil {
			return sent, err
		}
		for _, v := range entries {
			if scope.kind == "mailbox" && v.Mailbox != scope.mailbox {
				continue
			}
			blob, err := a.st.VaultBlob(ctx, o, v.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue // restored or destroyed meanwhile
			}
			if err != nil {
				return sent, err
			}
			it := escrowItem{Account: o.Address, Mailbox: v.Mailbox, MailboxID: v.MailboxID, UID: v.UID,
				InternalDate: v.InternalDate, Vault: v.ID, Former: o.Former != 0}
			if err := emit(it, blob); err != nil {
				return sent, err
			}
		}
	}
	return sent, nil
}

type escrowBox struct {
	account string
	mb      store.Mailbox
}

// escrowScopeParts lists what scope covers: the live mailboxes, by
// account and name, and the vaults (live accounts' and deleted ones').
// A user or mailbox scope naming neither a live account nor a deleted
// one's vault is an error.
func (a *localAdmin) escrowScopeParts(ctx context.Context, scope escrowScope) ([]escrowBox, []store.Owner, error) {
	inScope := func(addr string) bool {
		switch scope.kind {
		case "user", "mailbox":
			return addr == scope.address
		case "domain":
			_, d, err := policy.SplitAddress(addr)
			return err == nil && d == scope.domain
		}
		return true
	}
	var accounts []string
	switch scope.kind {
	case "user", "mailbox":
		if _, err := a.st.PublicAccount(ctx, scope.address); err == nil {
			accounts = []string{scope.address}
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, nil, err
		}
	default:
		all, err := a.st.PublicAccounts(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, acct := range all {
			if inScope(acct.Address) {
				accounts = append(accounts, acct.Address)
			}
		}
	}
	var vaults []store.Owner
	for _, acct := range accounts {
		vaults = append(vaults, store.Owner{Address: acct})
	}
	formers, err := a.st.FormerAccounts(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range formers {
		if inScope(f.Address) {
			vaults = append(vaults, f.Owner)
		}
	}
	if (scope.kind == "user" || scope.kind == "mailbox") && len(vaults) == 0 {
		return nil, nil, adminErrorf(store.ErrNotFound, "no account %s, and no retained mail of a deleted one", scope.address)
	}
	var out []escrowBox
	for _, acct := range accounts {
		boxes, err := a.st.Mailboxes(ctx, acct)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile; its vault is listed
		}
		if err != nil {
			return nil, nil, err
		}
		for _, mb := range boxes {
			if scope.kind == "mailbox" && mb.Name != scope.mailbox {
				continue
			}
			out = append(out, escrowBox{account: acct, mb: mb})
		}
	}
	return out, vaults, nil
}
