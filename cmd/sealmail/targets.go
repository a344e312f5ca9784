package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/sealmail/sealmail/store"
)

func init() {
	registerOp(&controlOp{name: "config.check-accounts", local: true, run: opCheckAccounts})
}

// accountProblem is an address the configuration sends mail to that has
// no account: the postmaster, an alias target, or postmaster@ of a
// domain when no postmaster is configured. policy.Recipients answers
// mail to it with a temporary failure (451) while the configuration
// names a missing account, and with 550 when nobody answers postmaster@.
type accountProblem struct {
	Key     string `json:"key"`             // "postmaster" or "aliases"
	Alias   string `json:"alias,omitempty"` // for aliases: the alias
	Address string `json:"address"`         // the address without an account
}

func (p accountProblem) String() string {
	switch {
	case p.Key == "aliases":
		return fmt.Sprintf("aliases: %s delivers to %s, which has no account: mail to %s is refused with a temporary failure (451) until it exists (sealmail user add %s) or the alias changes",
			p.Alias, p.Address, p.Alias, p.Address)
	case p.Alias != "":
		return fmt.Sprintf("postmaster is not set and %s has no account: mail to it, which RFC 5321 §4.5.1 requires every domain to accept, is refused; set postmaster or add the account (sealmail user add %s)",
			p.Address, p.Address)
	}
	return fmt.Sprintf("postmaster %s has no account: mail to postmaster@ of every domain is refused with a temporary failure (451) until it exists (sealmail user add %s)",
		p.Address, p.Address)
}

// missingAccounts lists the addresses c delivers to that are not among
// accts, in a stable order: the postmaster first, then aliases by name.
func missingAccounts(c *Config, accts []store.PublicAccount) []accountProblem {
	have := make(map[string]bool, len(accts))
	for _, a := range accts {
		have[a.Address] = true
	}
	var out []accountProblem
	if c.Postmaster != "" {
		if !have[c.Postmaster] {
			out = append(out, accountProblem{Key: "postmaster", Address: c.Postmaster})
		}
	} else {
		for _, d := range c.Domains {
			pm := "postmaster@" + d
			if !have[pm] && len(c.Aliases[pm]) == 0 {
				out = append(out, accountProblem{Key: "postmaster", Alias: pm, Address: pm})
			}
		}
	}
	aliases := make([]string, 0, len(c.Aliases))
	for a := range c.Aliases {
		aliases = append(aliases, a)
	}
	slices.Sort(aliases)
	for _, a := range aliases {
		for _, t := range c.Aliases[a] {
			if !have[t] {
				out = append(out, accountProblem{Key: "aliases", Alias: a, Address: t})
			}
		}
	}
	return out
}

// opCheckAccounts answers `config show`'s question: which addresses the
// configuration delivers to have no account.
func opCheckAccounts(ctx context.Context, b *backend, _ *opRequest) (any, error) {
	accts, err := b.st.PublicAccounts(ctx)
	if err != nil {
		return nil, err
	}
	return missingAccounts(b.cfg, accts), nil
}

// checkAccounts prints a warning on standard error for each address the
// configuration delivers to that has no account. It asks the running
// server, or opens the store; a data directory without a store has no
// accounts, and is not created for the question.
func (e *env) checkAccounts(ctx context.Context, c *Config) error {
	var problems []accountProblem
	if _, err := os.Stat(c.storeDir()); errors.Is(err, os.ErrNotExist) {
		problems = missingAccounts(c, nil)
	} else if err := e.callOp(ctx, "config.check-accounts", opCall{}, &problems); err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintf(e.io.err, "warning: %s\n", strings.TrimSpace(p.String()))
	}
	return nil
}
