package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/account"
	"github.com/sealmail/sealmail/store"
)

func init() {
	registerOp(&controlOp{name: "export.mail", local: true, long: true, run: opExport})
	register(&command{name: "export", args: "ADDRESS DIR",
		summary: "write an account's mail, opened with its password, as one mbox file per mailbox into DIR (data portability)",
		flags: func(fs *flag.FlagSet, f *cmdFlags) {
			passwordFlag(fs, f)
			fs.StringVar(&f.mailbox, "mailbox", "", "export only this mailbox")
		}, run: runExport})
}

// The export stream: exportFrame lines, each mailbox's first, each
// message's followed by its bytes, and a last frame with End set.
type exportFrame struct {
	Mailbox  string    `json:"mailbox,omitempty"`  // a mailbox begins
	Messages int       `json:"messages,omitempty"` // with this many messages
	UID      uint32    `json:"uid,omitempty"`      // a message
	Date     time.Time `json:"date,omitzero"`
	Flags    []string  `json:"flags,omitempty"`
	Size     int64     `json:"size,omitempty"`
	End      bool      `json:"end,omitempty"` // the export is complete
}

// exportStart is export.mail's answer before its stream.
type exportStart struct {
	Mailboxes int `json:"mailboxes"`
	Messages  int `json:"messages"`
}

// maxExportMessage bounds one message of an export stream on the
// client; the server sends what it stored.
const maxExportMessage = 1 << 30

// opExport logs in as the account with its password (or an app
// password), as an IMAP client would, and streams its mail, opened.
func opExport(ctx context.Context, b *backend, req *opRequest) (any, error) {
	var args struct{ Mailbox string }
	if err := req.args(&args); err != nil {
		return nil, err
	}
	addr, err := policy.CanonicalAddress(req.Address)
	if err != nil {
		return nil, adminErrorf(err, "%s: %v", req.Address, err)
	}
	sess, err := b.accounts.Login(ctx, account.LoginRequest{Remote: "control-socket", Username: addr, Secret: req.Secret,
		Log: b.log.With("proto", "control")})
	switch {
	case errors.Is(err, account.ErrBadCredentials):
		return nil, adminErrorf(err, "wrong password for %s, or no such account (the password or an app password opens the mail; a recovery code does not)", addr)
	case errors.Is(err, account.ErrThrottled):
		return nil, adminErrorf(err, "too many failed attempts for %s; wait and try again", addr)
	case err != nil:
		return nil, err
	}
	defer sess.Close()
	// The export ends with the session: a password change or a deletion
	// meanwhile stops it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(sess.Context(), cancel)
	defer stop()

	mbs, err := b.st.Mailboxes(ctx, addr)
	if err != nil {
		return nil, err
	}
	if args.Mailbox != "" {
		m, err := b.st.Mailbox(ctx, addr, args.Mailbox)
		if errors.Is(err, store.ErrNotFound) {
			return nil, adminErrorf(err, "%s has no mailbox %q", addr, args.Mailbox)
		}
		if err != nil {
			return nil, err
		}
		mbs = []store.Mailbox{m}
	}
	start := exportStart{Mailboxes: len(mbs)}
	for _, m := range mbs {
		start.Messages += int(m.Messages)
	}
	w, err := req.Stream(start)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	kr := sess.Keyring()
	n := 0
	for _, m := range mbs {
		msgs, err := b.st.Messages(ctx, addr, m.ID, store.ListOptions{})
		if err != nil {
			return nil, err
		}
		if err := enc.Encode(exportFrame{Mailbox: m.Name, Messages: len(msgs)}); err != nil {
			return nil, err
		}
		for _, msg := range msgs {
			blob, err := b.st.Blob(ctx, addr, m.ID, msg.UID)
			if errors.Is(err, store.ErrNotFound) {
				continue // expunged meanwhile
			}
			if err != nil {
				return nil, err
			}
			plain, _, err := kr.Open(bytes.NewReader(blob))
			if err != nil {
				return nil, fmt.Errorf("export: open %s %s UID %d: %w", addr, m.Name, msg.UID, err)
			}
			// Read to the end before sending: the integrity check
			// completes there.
			data, err := io.ReadAll(plain)
			if err != nil {
				return nil, fmt.Errorf("export: open %s %s UID %d: %w", addr, m.Name, msg.UID, err)
			}
			if err := enc.Encode(exportFrame{UID: msg.UID, Date: msg.InternalDate, Flags: msg.Flags, Size: int64(len(data))}); err != nil {
				return nil, err
			}
			if _, err := bw.Write(data); err != nil {
				return nil, err
			}
			clear(data)
			n++
			store.ReportProgress(ctx, int64(n), int64(start.Messages))
		}
	}
	if err := enc.Encode(exportFrame{End: true, Messages: n}); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	b.log.Info("mail exported", "proto", "control", "account", addr, "mailboxes", len(mbs), "messages", n)
	return nil, nil
}

func runExport(ctx context.Context, e *env, args []string) (err error) {
	if len(args) != 2 {
		return usagef("want ADDRESS and DIR")
	}
	addr, dir := args[0], args[1]
	pw, err := e.promptFirst(func() ([]byte, error) {
		return e.readSecret(fmt.Sprintf("Password (or an app password) of %s: ", addr))
	})
	if err != nil {
		return err
	}
	defer wipe(pw)
	created, err := emptyDir(dir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Nothing half-written stays behind.
			removeAllIn(dir, created)
		}
	}()
	p := e.progress("export", unitMessages)
	var (
		start     exportStart
		mailboxes int
		messages  int
	)
	err = e.callOp(ctx, "export.mail", opCall{Address: addr, Secret: bytes.Clone(pw), Args: struct{ Mailbox string }{e.flags.mailbox},
		Stream: func(r io.Reader) error {
			p.SetTotal(int64(start.Messages))
			var err error
			mailboxes, messages, err = writeExport(r, dir, p)
			return err
		}}, &start)
	p.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.io.out, "exported %d message(s) of %d mailbox(es) of %s to %s (one mbox file per mailbox; flags are not carried)\n",
		messages, mailboxes, addr, dir)
	return nil
}

// writeExport writes an export stream into dir as mbox files.
func writeExport(r io.Reader, dir string, p *progress) (mailboxes, messages int, err error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var (
		f *os.File
		w *bufio.Writer
	)
	closeFile := func() error {
		if f == nil {
			return nil
		}
		err := w.Flush()
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		f = nil
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return mailboxes, messages, fmt.Errorf("the export stream ended early (the server log may say why): %w", err)
		}
		var fr exportFrame
		if err := json.Unmarshal(line, &fr); err != nil {
			return mailboxes, messages, fmt.Errorf("bad export stream: %w", err)
		}
		switch {
		case fr.End:
			if fr.Messages != messages {
				return mailboxes, messages, fmt.Errorf("the export stream says %d messages, %d arrived", fr.Messages, messages)
			}
			return mailboxes, messages, closeFile()
		case fr.Mailbox != "":
			if err := closeFile(); err != nil {
				return mailboxes, messages, err
			}
			path := filepath.Join(dir, mboxFileName(fr.Mailbox))
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return mailboxes, messages, err
			}
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return mailboxes, messages, err
			}
			w = bufio.NewWriterSize(f, 256<<10)
			mailboxes++
		default:
			if f == nil || fr.Size < 0 || fr.Size > maxExportMessage {
				return mailboxes, messages, errors.New("bad export stream")
			}
			data := make([]byte, fr.Size)
			if _, err := io.ReadFull(br, data); err != nil {
				return mailboxes, messages, fmt.Errorf("the export stream ended early: %w", err)
			}
			if err := writeMboxMessage(w, fr.Date, data); err != nil {
				return mailboxes, messages, err
			}
			clear(data)
			messages++
			p.Add(1)
		}
	}
}

// emptyDir makes sure dir is absent (it is created, mode 0700) or an
// empty directory, and says whether it created it.
func emptyDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return false, err
	}
	if len(entries) > 0 {
		return false, adminErrorf(nil, "%s is not empty: export writes into an absent or empty directory", dir)
	}
	return false, nil
}

// removeAllIn removes what was written into dir, and dir if it was
// created for it.
func removeAllIn(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		os.RemoveAll(filepath.Join(dir, en.Name()))
	}
}
