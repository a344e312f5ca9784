package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/store"
)

// openAdmin returns the running server's admin over the control socket,
// or, when no server runs, a localAdmin over the store opened here. close
// must be called when done.
func (e *env) openAdmin() (admin, *Config, func() error, error) {
	c, err := e.config()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("data directory: %w", err)
	}
	remote, err := dialControl(c.socketPath())
	if err != nil {
		return nil, nil, nil, err
	}
	if remote != nil {
		return remote, c, func() error { return nil }, nil
	}
	s, closeFn, err := e.openBackend()
	if err != nil {
		return nil, nil, nil, err
	}
	fs, err := newFilter(c, s.st, s.log)
	if err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	return &localAdmin{svc: s.accounts, st: s.st, inb: &inboundParts{filter: fs}, cfg: c, audit: s.audit}, c, closeFn, nil
}

// promptFirst checks the configuration, then reads a secret. Secrets are
// read before the store is opened or the server contacted, so a person
// at a prompt never holds the store's lock (which would keep `serve` from
// starting) and a server that stops meanwhile is noticed afterwards.
func (e *env) promptFirst(read func() ([]byte, error)) ([]byte, error) {
	if _, err := e.config(); err != nil {
		return nil, err
	}
	return read()
}

// withAdmin runs f with an admin and closes it, keeping f's error first.
func (e *env) withAdmin(f func(a admin, c *Config) error) (err error) {
	a, c, closeFn, err := e.openAdmin()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closeFn(); cerr != nil && err == nil {
			err = fmt.Errorf("close store: %w", cerr)
		}
	}()
	return f(a, c)
}

func oneAddress(args []string) (string, error) {
	if len(args) != 1 {
		return "", usagef("want exactly one ADDRESS")
	}
	return args[0], nil
}

func runUserAdd(ctx context.Context, e *env, args []string) error {
	addr, err := oneAddress(args)
	if err != nil {
		return err
	}
	// Refuse a bad address before asking for a password. The admin
	// (local or the server) checks again against its own configuration.
	c, err := e.config()
	if err != nil {
		return err
	}
	if _, err := account.CheckNewAddress(addr, c.Domains); err != nil {
		return adminErr(err)
	}
	pw, err := e.promptFirst(func() ([]byte, error) {
		return e.readNewPassword(fmt.Sprintf("Password for %s (at least %d characters): ", addr, account.MinPasswordChars))
	})
	if err != nil {
		return err
	}
	defer wipe(pw)
	return e.withAdmin(func(a admin, c *Config) error {
		u, err := a.AddUser(ctx, addr, pw)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.io.out, "created %s\n  key fingerprint: %s\n  published in the Web Key Directory: %s\n",
			u.Address, u.Fingerprint, yesNo(u.PublishWKD))
		return nil
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func runUserList(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		us, err := a.Users(ctx)
		if err != nil {
			return err
		}
		if e.flags.json {
			return writeJSON(e.io.out, us)
		}
		return writeUsers(e.io.out, us)
	})
}

// writeJSON writes v as indented JSON for scripts.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeUsers(w io.Writer, us []userInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tCREATED\tWKD\tSLOTS\tUSED\tQUOTA\tFINGERPRINT")
	for _, u := range us {
		kinds := make([]string, 0, len(u.Slots))
		for _, s := range u.Slots {
			kinds = append(kinds, s.Kind)
		}
		quota := "none"
		if u.QuotaLimit > 0 {
			quota = strconv.FormatInt(u.QuotaLimit, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", u.Address, u.Created.UTC().Format(time.DateOnly),
			yesNo(u.PublishWKD), strings.Join(kinds, ","), u.UsedBytes, quota, u.Fingerprint)
	}
	return tw.Flush()
}

func runUserPasswd(ctx context.Context, e *env, args []string) error {
	addr, err := oneAddress(args)
	if err != nil {
		return err
	}
	cur, err := e.promptFirst(func() ([]byte, error) {
		return e.readSecret(fmt.Sprintf("Current password or recovery code for %s: ", addr))
	})
	if err != nil {
		return err
	}
	defer wipe(cur)
	next, err := e.readNewPassword(fmt.Sprintf("New password (at least %d characters): ", account.MinPasswordChars))
	if err != nil {
		return err
	}
	defer wipe(next)
	return e.withAdmin(func(a admin, _ *Config) error {
		res, err := a.ChangePassword(ctx, addr, cur, next)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.io.out, "password changed for %s: new unlock slot %d; removed old password slot(s) %s; existing mail stays readable\n",
			addr, res.NewSlot, joinIDs(res.RemovedSlots))
		if res.EndedSessions > 0 {
			fmt.Fprintf(e.io.out, "  ended %d IMAP session(s) that had logged in with the old password\n", res.EndedSessions)
		}
		return nil
	})
}

func joinIDs(ids []uint32) string {
	if len(ids) == 0 {
		return "none"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(s, ", ")
}

func runUserDelete(ctx context.Context, e *env, args []string) error {
	addr, err := oneAddress(args)
	if err != nil {
		return err
	}
	if !e.flags.yes {
		if _, ok := e.terminal(); !ok {
			return usagef("deleting destroys all mail of %s for good; pass --yes to confirm", addr)
		}
		fmt.Fprintf(e.io.err, "This destroys %s and all its mail for good. Type the address to confirm: ", addr)
		line, err := e.interruptible(e.lines.next, nil)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(line)) != addr {
			return errors.New("not confirmed; nothing deleted")
		}
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		p := e.progress("delete", unitItems)
		rep, err := a.DeleteUser(p.context(ctx), addr)
		p.Done()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.io.out, "deleted %s:\n  ended %d open session(s) and wiped their keys\n  first destroyed %d unlock slot(s) and the wrapped private key: its mail can no longer be decrypted\n  then removed %d mailbox(es) and %d message(s), %d sealed bytes\n",
			addr, rep.EndedSessions, rep.Slots, rep.Mailboxes, rep.Messages, rep.Bytes)
		fmt.Fprintln(e.io.out, "  note: the store reclaims the freed disk space in the background")
		return nil
	})
}

func runUserRecoveryCode(ctx context.Context, e *env, args []string) error {
	addr, err := oneAddress(args)
	if err != nil {
		return err
	}
	cur, err := e.promptFirst(func() ([]byte, error) {
		return e.readSecret(fmt.Sprintf("Current password or recovery code for %s: ", addr))
	})
	if err != nil {
		return err
	}
	defer wipe(cur)
	return e.withAdmin(func(a admin, _ *Config) error {
		code, err := a.AddRecoveryCode(ctx, addr, cur)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.io.out, "recovery code for %s, unlock slot %d (shown once; keep it offline: it changes the password like the password does, however you type it):\n%s\n",
			addr, code.Slot, code.Secret)
		return nil
	})
}

func runUserAppPassword(ctx context.Context, e *env, args []string) error {
	if len(args) != 2 {
		return usagef("want ADDRESS and LABEL (the device or program the app password is for)")
	}
	addr, label := args[0], args[1]
	cur, err := e.promptFirst(func() ([]byte, error) {
		return e.readSecret(fmt.Sprintf("Current password or recovery code for %s: ", addr))
	})
	if err != nil {
		return err
	}
	defer wipe(cur)
	return e.withAdmin(func(a admin, _ *Config) error {
		ap, err := a.AddAppPassword(ctx, addr, cur, label)
		if err != nil {
			return err
		}
		// The secret goes alone on the last line, for scripts.
		fmt.Fprintf(e.io.out, "app password for %s on %q, unlock slot %d (shown once; it logs in but cannot change the account; revoke it with: sealmail %suser revoke %s %d):\n%s\n",
			addr, label, ap.Slot, e.flags.hint(), addr, ap.Slot, ap.Secret)
		return nil
	})
}

func runUserSlots(ctx context.Context, e *env, args []string) error {
	addr, err := oneAddress(args)
	if err != nil {
		return err
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		slots, err := a.Slots(ctx, addr)
		if err != nil {
			return err
		}
		if e.flags.json {
			return writeJSON(e.io.out, slots)
		}
		tw := tabwriter.NewWriter(e.io.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tCREATED\tLABEL")
		for _, s := range slots {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.ID, s.Kind, s.Created.UTC().Format(time.DateTime), s.Label)
		}
		return tw.Flush()
	})
}

func runUserRevoke(ctx context.Context, e *env, args []string) error {
	if len(args) != 2 {
		return usagef("want ADDRESS and SLOT-ID (see sealmail user slots ADDRESS)")
	}
	addr := args[0]
	id, err := strconv.ParseUint(args[1], 10, 32)
	if err != nil || id == 0 {
		return usagef("SLOT-ID: want a slot number from sealmail user slots, got %q", args[1])
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		rev, err := a.RevokeSlot(ctx, addr, uint32(id))
		if err != nil {
			return err
		}
		label := ""
		if rev.Slot.Label != "" {
			label = fmt.Sprintf(" %q", rev.Slot.Label)
		}
		fmt.Fprintf(e.io.out, "revoked unlock slot %d (%s%s) of %s; ended %d session(s) that had logged in with it\n",
			rev.Slot.ID, rev.Slot.Kind, label, addr, rev.EndedSessions)
		if rev.NoPassword {
			fmt.Fprintf(e.io.out, "  note: %s has no password now, so it cannot log in; set one with a recovery code: sealmail %suser passwd %s\n",
				addr, e.flags.hint(), addr)
		}
		return nil
	})
}

func runUserSet(ctx context.Context, e *env, args []string) error {
	addr, err := oneAddress(args)
	if err != nil {
		return err
	}
	if e.flags.wkd == "" && e.flags.quota == "" && e.flags.autocrypt == "" {
		return usagef("nothing to set; use --wkd=true|false, --quota SIZE or --autocrypt=true|false")
	}
	var autocrypt bool
	if e.flags.autocrypt != "" {
		if autocrypt, err = strconv.ParseBool(e.flags.autocrypt); err != nil {
			return usagef("--autocrypt: want true or false, got %q", e.flags.autocrypt)
		}
	}
	var publish bool
	if e.flags.wkd != "" {
		if publish, err = strconv.ParseBool(e.flags.wkd); err != nil {
			return usagef("--wkd: want true or false, got %q", e.flags.wkd)
		}
	}
	var quota int64
	if e.flags.quota != "" {
		if quota, err = parseQuota(e.flags.quota); err != nil {
			return usagef("--quota: %v", err)
		}
	}
	if e.flags.wkd != "" || e.flags.quota != "" {
		err := e.withAdmin(func(a admin, c *Config) error {
			if e.flags.wkd != "" {
				if err := a.SetWKD(ctx, addr, publish); err != nil {
					return err
				}
				fmt.Fprintf(e.io.out, "%s: published in the Web Key Directory: %s\n", addr, yesNo(publish))
			}
			if e.flags.quota != "" {
				if err := a.SetQuota(ctx, addr, quota); err != nil {
					return err
				}
				fmt.Fprintf(e.io.out, "%s: quota: %s\n", addr, quotaText(quota, int64(c.Limits.Quota)))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if e.flags.autocrypt != "" {
		if err := e.callOp(ctx, opSetAutocrypt, opCall{Address: addr, Args: autocryptArgs{On: autocrypt}}, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.io.out, "%s: Autocrypt header on outgoing mail: %s\n", addr, yesNo(autocrypt))
	}
	return nil
}

// parseQuota reads --quota: a size as in the configuration ("1MiB",
// "2GiB", "1048576"), "0" or "none" for no limit, "default" for
// limits.quota. It returns the store's setting.
func parseQuota(s string) (int64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "default":
		return store.QuotaDefault, nil
	case "none", "0":
		return store.QuotaNone, nil
	}
	n, err := toInt(s, true)
	if err != nil {
		return 0, fmt.Errorf("want a size like 500MiB or 2GiB, 0 (none) or default, got %q", s)
	}
	if n == 0 {
		return store.QuotaNone, nil
	}
	return n, nil
}

// quotaText says what a quota setting means, given limits.quota.
func quotaText(setting, def int64) string {
	switch {
	case setting > 0:
		return sizeText(setting)
	case setting == store.QuotaNone:
		return "none"
	case def > 0:
		return "default (" + sizeText(def) + ")"
	}
	return "default (none)"
}

// sizeText renders a byte count in the largest binary unit that divides
// it, as the configuration writes sizes.
func sizeText(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func runKeyExport(ctx context.Context, e *env, args []string) error {
	addr, err := oneAddress(args)
	if err != nil {
		return err
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		k, err := a.ExportKey(ctx, addr)
		if err != nil {
			return err
		}
		_, err = io.WriteString(e.io.out, k)
		return err
	})
}

func runKeyExportSecret(ctx context.Context, e *env, args []string) error {
	addr, err := oneAddress(args)
	if err != nil {
		return err
	}
	pw, err := e.promptFirst(func() ([]byte, error) {
		return e.readSecret(fmt.Sprintf("Password for %s: ", addr))
	})
	if err != nil {
		return err
	}
	defer wipe(pw)
	return e.withAdmin(func(a admin, _ *Config) error {
		k, err := a.ExportSecretKey(ctx, addr, pw)
		if err != nil {
			return err
		}
		_, err = io.WriteString(e.io.out, k)
		return err
	})
}
