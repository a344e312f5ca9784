package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
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
	log := slog.New(slog.DiscardHandler)
	st, err := openStore(c, log)
	if err != nil {
		return nil, nil, nil, err
	}
	return newLocalAdmin(st, c, log), c, st.Close, nil
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
	if _, err := localAddress(addr, c.Domains); err != nil {
		return err
	}
	pw, err := e.promptFirst(func() ([]byte, error) {
		return e.readNewPassword(fmt.Sprintf("Password for %s (at least %d characters): ", addr, minPasswordChars))
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
		return writeUsers(e.io.out, us)
	})
}

func writeUsers(w io.Writer, us []userInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tCREATED\tWKD\tSLOTS\tUSED\tFINGERPRINT")
	for _, u := range us {
		kinds := make([]string, 0, len(u.Slots))
		for _, s := range u.Slots {
			kinds = append(kinds, s.Kind)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", u.Address, u.Created.UTC().Format(time.DateOnly),
			yesNo(u.PublishWKD), strings.Join(kinds, ","), u.UsedBytes, u.Fingerprint)
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
	next, err := e.readNewPassword(fmt.Sprintf("New password (at least %d characters): ", minPasswordChars))
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
		rep, err := a.DeleteUser(ctx, addr)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.io.out, "deleted %s:\n  first destroyed %d unlock slot(s) and the wrapped private key: its mail can no longer be decrypted\n  then removed %d mailbox(es) and %d message(s), %d sealed bytes\n",
			addr, rep.Slots, rep.Mailboxes, rep.Messages, rep.Bytes)
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
		fmt.Fprintf(e.io.out, "recovery code for %s (shown once; store it offline, it unlocks the account like the password):\n%s\n", addr, code)
		return nil
	})
}

func runUserSet(ctx context.Context, e *env, args []string) error {
	addr, err := oneAddress(args)
	if err != nil {
		return err
	}
	if e.flags.wkd == "" {
		return usagef("nothing to set; use --wkd=true or --wkd=false")
	}
	publish, err := strconv.ParseBool(e.flags.wkd)
	if err != nil {
		return usagef("--wkd: want true or false, got %q", e.flags.wkd)
	}
	return e.withAdmin(func(a admin, _ *Config) error {
		if err := a.SetWKD(ctx, addr, publish); err != nil {
			return err
		}
		fmt.Fprintf(e.io.out, "%s: published in the Web Key Directory: %s\n", addr, yesNo(publish))
		return nil
	})
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
