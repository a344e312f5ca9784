package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sealmail/sealmail/keyserver"
	"github.com/sealmail/sealmail/policy"
	smtpserver "github.com/sealmail/sealmail/server/smtp"
	"github.com/sealmail/sealmail/server/smtp/autocrypt"
	"github.com/sealmail/sealmail/server/smtp/dkim"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/tlspolicy"
	"github.com/sealmail/sealmail/store"
)

// `sealmail dkim list|rotate|activate` work on the key directory
// itself, whether a server runs or not: the key store is shared between
// processes (a lock and an atomically replaced state file, see
// server/smtp/dkim), and a running server sees a change at its next
// message. `sealmail user set --autocrypt` is the registered operation
// user.set-autocrypt.

func init() {
	registerGroup("dkim", "DKIM signing keys: list, rotate and activate selectors")
	registerOp(&controlOp{name: opSetAutocrypt, local: true, run: opAutocrypt})
	register(
		&command{name: "dkim list", args: "[DOMAIN]", summary: "list the DKIM selectors and their status (pending, active, retiring, retired)",
			flags: jsonFlag, run: runDKIMList},
		&command{name: "dkim rotate", args: "DOMAIN", summary: "make new DKIM keys for DOMAIN, to publish before they sign", run: runDKIMRotate},
		&command{name: "dkim activate", args: "DOMAIN [--force]", summary: "sign with DOMAIN's pending DKIM keys now (checks DNS unless --force)",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.force, "force", false, "activate without checking that the records are published")
			}, run: runDKIMActivate},
	)
}

// opSetAutocrypt sets whether an account's outgoing mail carries the
// Autocrypt header (`sealmail user set --autocrypt`).
const opSetAutocrypt = "user.set-autocrypt"

// autocryptArgs are the arguments of user.set-autocrypt.
type autocryptArgs struct {
	On bool `json:"on"`
}

func opAutocrypt(ctx context.Context, b *backend, req *opRequest) (any, error) {
	var args autocryptArgs
	if err := req.args(&args); err != nil {
		return nil, err
	}
	return nil, adminErr(b.accounts.SetAutocrypt(ctx, req.Address, args.On))
}

// dkimCheckInterval is how often serve looks for pending DKIM selectors
// in DNS (and destroys the keys of retired ones).
const dkimCheckInterval = 10 * time.Minute

// openDKIM opens the DKIM key store of c (creating its directory).
func openDKIM(c *Config, log *slog.Logger) (*dkim.Keys, error) {
	return dkim.Open(dkim.Options{
		Dir:         c.dkimDir(),
		RetireAfter: c.DKIM.RetireAfter,
		PublishWait: publishWait(c.DKIM.PublishWait),
		Logger:      log,
	})
}

// publishWait maps dkim.publish_wait to dkim.Options, where 0 means the
// default and a negative value none.
func publishWait(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// startDKIM gives every configured domain DKIM keys if it has none (so
// that mail is signed from the first message), then checks pending
// selectors in DNS every dkimCheckInterval until ctx ends. It returns
// the key store and a channel closed when the checker has stopped.
func startDKIM(ctx context.Context, c *Config, log *slog.Logger) (*dkim.Keys, <-chan struct{}, error) {
	keys, err := openDKIM(c, log)
	if err != nil {
		return nil, nil, err
	}
	if _, err := keys.Ensure(c.Domains); err != nil {
		return nil, nil, err
	}
	res, err := newResolver(c, log)
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(dkimCheckInterval)
		defer t.Stop()
		for {
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			if _, err := keys.CheckPending(cctx, res); err != nil && ctx.Err() == nil {
				log.Warn("dkim: checking new selectors in DNS", "err", err)
			}
			cancel()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return keys, done, nil
}

// dkimDNSKeys returns the selectors of every domain for `sealmail dns`,
// and the configured domains that have none. It creates nothing: without
// a key directory there are no keys.
func dkimDNSKeys(c *Config) ([]keyserver.DKIMKey, []string, error) {
	if _, err := os.Stat(c.dkimDir()); errors.Is(err, fs.ErrNotExist) {
		return nil, c.Domains, nil
	}
	keys, err := openDKIM(c, nil)
	if err != nil {
		return nil, nil, err
	}
	sels, err := keys.List("")
	if err != nil {
		return nil, nil, err
	}
	var out []keyserver.DKIMKey
	has := map[string]bool{}
	for _, s := range sels {
		out = append(out, keyserver.DKIMKey{Domain: s.Domain, Selector: s.Name, Record: s.TXT(), Status: string(s.Status)})
		has[s.Domain] = true
	}
	var none []string
	for _, d := range c.Domains {
		if !has[d] {
			none = append(none, d)
		}
	}
	return out, none, nil
}

// dkimDomain is the configured domain args names.
func dkimDomain(c *Config, args []string) (string, error) {
	if len(args) != 1 {
		return "", usagef("want exactly one DOMAIN")
	}
	d, err := policy.NormalizeDomain(args[0])
	if err != nil {
		return "", err
	}
	if !slices.Contains(c.Domains, d) {
		return "", fmt.Errorf("%s is not a configured domain", d)
	}
	return d, nil
}

// openDKIMDomain reads the configuration, the one domain args names, and
// the DKIM keys, and lists that domain's selectors: what rotate and
// activate start from.
func openDKIMDomain(e *env, args []string) (c *Config, domain string, keys *dkim.Keys, sels []dkim.Selector, err error) {
	if c, err = e.config(); err != nil {
		return nil, "", nil, nil, err
	}
	if domain, err = dkimDomain(c, args); err != nil {
		return nil, "", nil, nil, err
	}
	if keys, err = openDKIM(c, nil); err != nil {
		return nil, "", nil, nil, err
	}
	if sels, err = keys.List(domain); err != nil {
		return nil, "", nil, nil, err
	}
	return c, domain, keys, sels, nil
}

// dkimSelectorJSON is one selector in `dkim list --json`.
type dkimSelectorJSON struct {
	Domain    string     `json:"domain"`
	Selector  string     `json:"selector"`
	Algorithm string     `json:"algorithm"`
	Status    string     `json:"status"`
	Created   time.Time  `json:"created"`
	Seen      *time.Time `json:"seen_in_dns,omitempty"`
	Activated *time.Time `json:"activated,omitempty"`
	Replaced  *time.Time `json:"replaced,omitempty"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	DNSName   string     `json:"dns_name"`
	Record    string     `json:"record"`
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func runDKIMList(_ context.Context, e *env, args []string) error {
	if len(args) > 1 {
		return usagef("at most one DOMAIN")
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	domain := ""
	if len(args) == 1 {
		if domain, err = dkimDomain(c, args); err != nil {
			return err
		}
	}
	var sels []dkim.Selector
	if _, err := os.Stat(c.dkimDir()); err == nil {
		keys, err := openDKIM(c, nil)
		if err != nil {
			return err
		}
		if sels, err = keys.List(domain); err != nil {
			return err
		}
	}
	if e.flags.json {
		out := make([]dkimSelectorJSON, 0, len(sels))
		for _, s := range sels {
			out = append(out, dkimSelectorJSON{
				Domain: s.Domain, Selector: s.Name, Algorithm: string(s.Algorithm), Status: string(s.Status),
				Created: s.Created, Seen: timeOrNil(s.Seen), Activated: timeOrNil(s.Activated),
				Replaced: timeOrNil(s.Replaced), RetiredAt: timeOrNil(s.RetiredAt),
				DNSName: s.DNSName(), Record: s.TXT(),
			})
		}
		enc := json.NewEncoder(e.io.out)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.io.out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tSELECTOR\tALGORITHM\tSTATUS\tCREATED\tSINCE")
	for _, s := range sels {
		since := s.Created
		switch s.Status {
		case dkim.Active:
			since = s.Activated
		case dkim.Retiring:
			since = s.Replaced
		case dkim.Retired:
			since = s.RetiredAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Domain, s.Name, s.Algorithm, s.Status,
			s.Created.Format(time.DateOnly), since.Local().Format("2006-01-02 15:04"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	has := map[string]bool{}
	for _, s := range sels {
		has[s.Domain] = true
	}
	for _, d := range c.Domains {
		if (domain == "" || d == domain) && !has[d] {
			fmt.Fprintf(e.io.out, "%s has no DKIM key yet: sealmail serve makes one at start, or run sealmail %sdkim rotate %s\n", d, e.flags.hint(), d)
		}
	}
	return nil
}

func runDKIMRotate(_ context.Context, e *env, args []string) error {
	c, d, keys, all, err := openDKIMDomain(e, args)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		made, err := keys.Ensure([]string{d})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.io.out, "%s had no DKIM key; these sign from now on (publish them):\n", d)
		printRecords(e, made)
		return nil
	}
	made, err := keys.Rotate(d)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.io.out, "New DKIM keys for %s, pending. Publish these records:\n", d)
	printRecords(e, made)
	fmt.Fprintf(e.io.out, "The running server starts signing with them once it has seen both in DNS for %v\n", c.DKIM.PublishWait)
	fmt.Fprintf(e.io.out, "(or now, with: sealmail %sdkim activate %s). The keys they replace stay published\n", e.flags.hint(), d)
	fmt.Fprintf(e.io.out, "for %v after that; sealmail dns lists what to keep and what to remove.\n", c.DKIM.RetireAfter)
	return nil
}

func printRecords(e *env, sels []dkim.Selector) {
	tw := tabwriter.NewWriter(e.io.out, 0, 8, 1, ' ', 0)
	for _, s := range sels {
		fmt.Fprintf(tw, "%s.\t3600\tIN\tTXT\t%s\n", s.DNSName(), zoneTXT(s.TXT()))
	}
	tw.Flush()
}

// zoneTXT quotes text as zone-file strings of at most 255 bytes.
func zoneTXT(text string) string {
	var parts []string
	for len(text) > 255 {
		parts = append(parts, `"`+text[:255]+`"`)
		text = text[255:]
	}
	return strings.Join(append(parts, `"`+text+`"`), " ")
}

func runDKIMActivate(ctx context.Context, e *env, args []string) error {
	c, d, keys, all, err := openDKIMDomain(e, args)
	if err != nil {
		return err
	}
	var pending []dkim.Selector
	for _, s := range all {
		if s.Status == dkim.Pending {
			pending = append(pending, s)
		}
	}
	if len(pending) == 0 {
		return fmt.Errorf("%s has no pending DKIM key (sealmail dkim rotate %s makes one)", d, d)
	}
	if !e.flags.force {
		res, err := newResolver(c, nil)
		if err != nil {
			return err
		}
		var missing []string
		for _, s := range pending {
			ok, err := dkim.Published(ctx, res, s)
			if err != nil {
				return fmt.Errorf("look up %s: %w (use --force to activate without checking)", s.DNSName(), err)
			}
			if !ok {
				missing = append(missing, s.DNSName())
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not published yet (as seen through %s): %s; publish the records from sealmail dns %s, or use --force",
				res.Server(), strings.Join(missing, ", "), d)
		}
	}
	act, err := keys.Activate(d)
	if err != nil {
		return err
	}
	for _, s := range act {
		fmt.Fprintf(e.io.out, "%s: %s (%s) signs now\n", d, s.Name, s.Algorithm)
	}
	fmt.Fprintf(e.io.out, "The keys it replaced stay published for %v.\n", c.DKIM.RetireAfter)
	return nil
}

// sendTransforms are the steps every submitted message passes before it
// is stored or queued: the Autocrypt header, then the DKIM signatures,
// which cover it.
func sendTransforms(st store.Store, keys *dkim.Keys, log *slog.Logger) ([]smtpserver.Transform, error) {
	ac, err := autocrypt.New(autocrypt.Options{Accounts: st, Logger: log})
	if err != nil {
		return nil, err
	}
	signer, err := dkim.NewSigner(dkim.SignerOptions{Keys: keys, Logger: log})
	if err != nil {
		return nil, err
	}
	return []smtpserver.Transform{ac, signer}, nil
}

// tlsPolicy is the outbound TLS policy (DANE, MTA-STS, REQUIRETLS), its
// MTA-STS cache in <data_dir>/mta-sts.cache sealed under the server key.
// It warns when DANE trusts a resolver on another host.
func tlsPolicy(c *Config, res *resolver.Resolver, serverKey []byte, log *slog.Logger) (*tlspolicy.Policies, error) {
	if c.DNS.DNSSEC && !isLoopback(res.Server()) {
		log.Warn("dns.resolver " + res.Server() + " is not on this host: DANE trusts its DNSSEC validation over the network; " +
			"run a validating resolver on 127.0.0.1, or set dns.dnssec: false")
	}
	return tlspolicy.New(tlspolicy.Options{
		Resolver:  res,
		NoDANE:    !c.DNS.DNSSEC,
		CacheFile: filepath.Join(c.DataDir, "mta-sts.cache"),
		CacheKey:  serverKey,
		Logger:    log,
	})
}
