package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

func init() {
	registerOp(&controlOp{name: "import.batch", local: true, body: true, long: true, run: opImportBatch})
	register(&command{name: "import", args: "ADDRESS FILE|DIR",
		summary: "import an mbox file, a Maildir or a directory of .mbox files into an account, sealed as delivered mail (resumable)",
		flags: func(fs *flag.FlagSet, f *cmdFlags) {
			fs.StringVar(&f.mailbox, "mailbox", "", "the mailbox an mbox file or a Maildir goes to (default INBOX)")
			fs.BoolVar(&f.restart, "restart", false, "import from the start, even what an earlier run imported (duplicates it)")
		}, run: runImport})
}

// Batches of an import: each is one store transaction, and one step of
// the journal.
const (
	importBatchMessages = 100
	importBatchBytes    = 8 << 20
	// importMaxBatch bounds what the server accepts in one batch.
	importMaxBatch      = 1000
	importMaxBatchBytes = 64 << 20
	importMaxHeader     = 4 << 10
)

// importHeader precedes each message of an import.batch body.
type importHeader struct {
	Mailbox string    `json:"mailbox"`
	Date    time.Time `json:"date,omitzero"`
	Flags   []string  `json:"flags,omitempty"`
	Size    int64     `json:"size"`
}

// importResult is import.batch's answer.
type importResult struct {
	Imported int      `json:"imported"`
	Created  []string `json:"created,omitempty"` // mailboxes made for the batch
}

// opImportBatch seals the batch's messages to the account's public key,
// as SMTP delivery does, and commits them in one transaction, creating
// missing mailboxes; then it tells the protocols, so that IDLE sessions
// see them.
func opImportBatch(ctx context.Context, b *backend, req *opRequest) (any, error) {
	addr, err := policy.CanonicalAddress(req.Address)
	if err != nil {
		return nil, adminErrorf(err, "%s: %v", req.Address, err)
	}
	acct, err := b.st.PublicAccount(ctx, addr)
	if errors.Is(err, store.ErrNotFound) {
		return nil, adminErrorf(err, "no account %s (create it first: sealmail user add %s)", addr, addr)
	}
	if err != nil {
		return nil, err
	}
	pub, err := crypto.ParsePublicKey(acct.PublicKey)
	if err != nil {
		return nil, err
	}
	maxMsg := int64(b.cfg.Limits.MessageBytes)
	var (
		res    importResult
		ds     []store.Delivery
		total  int64
		ids    = map[string]uint64{}
		br     = bufio.NewReaderSize(req.Body, importMaxHeader)
		sealed bytes.Buffer
	)
	for {
		line, err := br.ReadSlice('\n')
		if err == io.EOF && len(line) == 0 {
			break
		}
		var h importHeader
		if err != nil || json.Unmarshal(line, &h) != nil {
			return nil, adminErrorf(err, "bad import batch")
		}
		if h.Size < 0 || h.Size > maxMsg || len(ds) >= importMaxBatch || total+h.Size > importMaxBatchBytes {
			return nil, adminErrorf(nil, "import batch over its limits (%d messages, %d bytes, one message at most limits.message_bytes %d)",
				importMaxBatch, importMaxBatchBytes, maxMsg)
		}
		total += h.Size
		name := h.Mailbox
		if strings.EqualFold(name, store.Inbox) {
			name = store.Inbox
		}
		id, ok := ids[name]
		if !ok {
			id, err = importMailbox(ctx, b.st, addr, name, &res)
			if err != nil {
				return nil, err
			}
			ids[name] = id
		}
		flags, err := store.CanonicalFlags(h.Flags)
		if err != nil {
			return nil, adminErrorf(err, "flags %q: %v", h.Flags, err)
		}
		sealed.Reset()
		w, err := pub.Seal(&sealed)
		if err != nil {
			return nil, err
		}
		if n, err := io.CopyN(w, br, h.Size); err != nil || n != h.Size {
			return nil, adminErrorf(err, "import batch cut short")
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		ds = append(ds, store.Delivery{Account: addr, MailboxID: id, InternalDate: h.Date, Flags: flags, Blob: bytes.Clone(sealed.Bytes())})
	}
	if len(ds) == 0 {
		return res, nil
	}
	delivered, err := b.mailStore().Deliver(ctx, ds)
	switch {
	case errors.Is(err, store.ErrOverQuota):
		return nil, adminErrorf(err, "%s is over its quota; nothing of this batch was imported", addr)
	case errors.Is(err, store.ErrNotFound):
		return nil, adminErrorf(err, "a mailbox or the account went away during the import; nothing of this batch was imported")
	case err != nil:
		return nil, err
	}
	if b.delivered != nil {
		b.delivered(delivered)
	}
	res.Imported = len(delivered)
	return res, nil
}

// importMailbox returns the ID of addr's mailbox name, creating it
// (subscribed) if there is none.
func importMailbox(ctx context.Context, st store.Store, addr, name string, res *importResult) (uint64, error) {
	m, err := st.Mailbox(ctx, addr, name)
	if err == nil {
		return m.ID, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	m, err = st.CreateMailbox(ctx, addr, store.MailboxSpec{Name: name, Subscribed: true})
	if errors.Is(err, store.ErrExists) {
		m, err = st.Mailbox(ctx, addr, name)
	}
	if err != nil {
		return 0, adminErrorf(err, "mailbox %q: %v", name, err)
	}
	res.Created = append(res.Created, name)
	return m.ID, nil
}

// importJournal is how far an import of one source into one account has
// come: the items committed, in the source's order, and a chain of
// hashes of their keys, so that a resumed import checks the source still
// starts the same way. It is kept in <data_dir>/import/ (mode 0600) and
// names the account, the source's path and counts, nothing of the mail.
type importJournal struct {
	Version  int       `json:"version"`
	Address  string    `json:"address"`
	Source   string    `json:"source"`
	Mailbox  string    `json:"mailbox,omitempty"`
	Done     int64     `json:"done"`     // items through, imported or skipped
	Imported int64     `json:"imported"` // messages imported
	Chain    string    `json:"chain"`    // hex SHA-256 chain over the keys of the Done items
	Skipped  []string  `json:"skipped,omitempty"`
	Complete bool      `json:"complete"`
	Updated  time.Time `json:"updated"`
}

func (c *Config) importDir() string { return filepath.Join(c.DataDir, "import") }

// journalPath names the journal of one import.
func journalPath(c *Config, addr, source, mailbox string) string {
	sum := sha256.Sum256([]byte(addr + "\x00" + source + "\x00" + mailbox))
	return filepath.Join(c.importDir(), hex.EncodeToString(sum[:16])+".json")
}

func loadJournal(path string) (*importJournal, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var j importJournal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("import journal %s: %w", path, err)
	}
	return &j, nil
}

func (j *importJournal) save(path string) error {
	j.Updated = time.Now().UTC()
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

// chainKey extends a hash chain by one key.
func chainKey(chain []byte, key string) []byte {
	h := sha256.New()
	h.Write(chain)
	h.Write([]byte(key))
	return h.Sum(nil)
}

func runImport(ctx context.Context, e *env, args []string) error {
	if len(args) != 2 {
		return usagef("want ADDRESS and FILE or DIR")
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	addr, err := policy.CanonicalAddress(args[0])
	if err != nil {
		return adminErrorf(err, "%s: %v", args[0], err)
	}
	source, err := filepath.Abs(args[1])
	if err != nil {
		return err
	}
	src, kind, err := openImportSource(source, e.flags.mailbox, int64(c.Limits.MessageBytes))
	if err != nil {
		return err
	}
	defer src.Close()
	jpath := journalPath(c, addr, source, e.flags.mailbox)
	j, err := loadJournal(jpath)
	if err != nil {
		return err
	}
	switch {
	case j == nil || e.flags.restart:
		j = &importJournal{Version: 1, Address: addr, Source: source, Mailbox: e.flags.mailbox}
	case j.Complete:
		return adminErrorf(nil, "%s was imported into %s before (%d messages, %s); --restart imports it again, which duplicates those messages",
			source, addr, j.Imported, j.Updated.Format(time.DateTime+" MST"))
	default:
		fmt.Fprintf(e.io.err, "resuming the import of %s into %s after %d messages\n", source, addr, j.Done)
	}
	importedBefore := j.Imported
	total, unit := src.Total()
	p := e.progress("import", unit)
	p.SetTotal(total)
	var created []string
	err = e.withOpSession(func(s *opSession) error {
		var (
			chain   []byte
			seen    int64
			batch   []*importItem
			size    int64
			skipped []string
		)
		if j.Chain != "" {
			chain, _ = hex.DecodeString(j.Chain)
		}
		// The account must exist before anything is read.
		if err := s.call(ctx, "import.batch", opCall{Address: addr}, nil); err != nil {
			return err
		}
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			var body bytes.Buffer
			n := 0
			for _, it := range batch {
				if it.TooLarge {
					continue
				}
				h, _ := json.Marshal(importHeader{Mailbox: it.Mailbox, Date: it.Date, Flags: it.Flags, Size: int64(len(it.Data))})
				body.Write(h)
				body.WriteByte('\n')
				body.Write(it.Data)
				n++
			}
			var res importResult
			if n > 0 {
				if err := s.call(ctx, "import.batch", opCall{Address: addr, Body: &body}, &res); err != nil {
					return err
				}
			}
			created = append(created, res.Created...)
			// Committed: the journal moves past the batch.
			ch, _ := hex.DecodeString(j.Chain)
			for _, it := range batch {
				ch = chainKey(ch, it.Key)
			}
			j.Chain = hex.EncodeToString(ch)
			j.Done += int64(len(batch))
			j.Imported += int64(res.Imported)
			j.Skipped = append(j.Skipped, skipped...)
			if err := j.save(jpath); err != nil {
				return fmt.Errorf("import journal: %w", err)
			}
			p.Set(batch[len(batch)-1].Bytes, total)
			batch, size, skipped = batch[:0], 0, skipped[:0]
			return nil
		}
		// Items imported before: check that the source begins as it did.
		var prefix []byte
		for seen < j.Done {
			it, err := src.Next(true)
			if err == io.EOF {
				return adminErrorf(nil, "%s has fewer messages (%d) than an earlier run imported (%d); it changed since: --restart imports it again", source, seen, j.Done)
			}
			if err != nil {
				return err
			}
			prefix = chainKey(prefix, it.Key)
			seen++
			p.Set(it.Bytes, total)
		}
		if j.Done > 0 && hex.EncodeToString(prefix) != hex.EncodeToString(chain) {
			return adminErrorf(nil, "%s changed since an earlier run imported its first %d messages; --restart imports it all again (what was imported stays, and is duplicated)", source, j.Done)
		}
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			it, err := src.Next(false)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if it.TooLarge {
				skipped = append(skipped, fmt.Sprintf("%s (%s)", it.Key, formatBytes(it.Size)))
			}
			batch = append(batch, it)
			size += int64(len(it.Data))
			if len(batch) >= importBatchMessages || size >= importBatchBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
	p.Done()
	if err != nil {
		if n := j.Imported - importedBefore; n > 0 {
			fmt.Fprintf(e.io.err, "imported %d messages before this error; run the same command again to resume after them\n", n)
		}
		return err
	}
	j.Complete = true
	if err := j.save(jpath); err != nil {
		return fmt.Errorf("import journal: %w", err)
	}
	fmt.Fprintf(e.io.out, "imported %d messages from %s (%s) into %s", j.Imported, source, kind, addr)
	if len(created) > 0 {
		slices.Sort(created)
		fmt.Fprintf(e.io.out, "; created mailbox(es) %s", strings.Join(slices.Compact(created), ", "))
	}
	fmt.Fprintln(e.io.out)
	if len(j.Skipped) > 0 {
		fmt.Fprintf(e.io.out, "skipped %d message(s) larger than limits.message_bytes (%s):\n", len(j.Skipped), formatBytes(int64(c.Limits.MessageBytes)))
		for _, s := range j.Skipped {
			fmt.Fprintf(e.io.out, "  %s\n", s)
		}
		return &exitCodeError{code: exitError, msg: "some messages were not imported (raise limits.message_bytes and run with --restart, or import them another way)"}
	}
	return nil
}
