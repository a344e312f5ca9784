package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/sealmail/sealmail/store"
)

// What `sealmail import` reads: an mbox file; a Maildir (with cur/ and
// new/), with its Maildir++ subfolders (.Sent, .Archive.2024); or a
// directory of .mbox files, as `sealmail export` writes them (Archive/2024.mbox
// is the mailbox Archive/2024). Every source is a sequence of items in a
// fixed order, each with a key that names it in the source, so that an
// interrupted import can resume after the last item it committed.

// importItem is one message of a source.
type importItem struct {
	Key      string // names it in its source: "path@offset" or a file's path
	Mailbox  string // the mailbox it goes to
	Date     time.Time
	Flags    []string
	Data     []byte // nil when TooLarge
	Size     int64
	TooLarge bool
	Bytes    int64 // how far into the source (bytes) it ends, for progress
}

// importSource yields the items of a source in order.
type importSource interface {
	// Next returns the next item, or io.EOF. skip says the caller only
	// needs the key (it was imported before): sources may then spare
	// reading the message.
	Next(skip bool) (*importItem, error)
	// Total is the source's size in progressUnit units.
	Total() (int64, progressUnit)
	Close() error
}

// openImportSource opens path as mbox, Maildir or mbox tree. mailbox is
// the target of a single mbox or Maildir ("" means INBOX); an mbox tree
// names its mailboxes itself. max bounds one message.
func openImportSource(path, mailbox string, max int64) (importSource, string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", err
	}
	if mailbox == "" {
		mailbox = store.Inbox
	}
	if !fi.IsDir() {
		src, err := newMboxTree(filepath.Dir(path), []string{filepath.Base(path)}, func(string) string { return mailbox }, max)
		return src, "mbox", err
	}
	if isMaildir(path) {
		src, err := newMaildirSource(path, mailbox, max)
		return src, "Maildir", err
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".mbox") {
			rel, _ := filepath.Rel(path, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if len(files) == 0 {
		return nil, "", fmt.Errorf("%s is neither a Maildir (no cur/ or new/) nor a directory of .mbox files", path)
	}
	slices.Sort(files)
	src, err := newMboxTree(path, files, mailboxOfFile, max)
	return src, "directory of mbox files", err
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// mboxFileName is the file export writes a mailbox to: its levels as
// directories, each escaped so that it is a safe file name ('%', '\\',
// control characters and a leading '.' as %XX: no "." or ".." level, no
// hidden file), plus ".mbox".
func mboxFileName(mailbox string) string {
	levels := strings.Split(mailbox, store.Delimiter)
	for i, l := range levels {
		var b strings.Builder
		for j := 0; j < len(l); j++ {
			c := l[j]
			if c == '%' || c == '\\' || c < 0x20 || c == 0x7f || (j == 0 && c == '.') {
				fmt.Fprintf(&b, "%%%02X", c)
				continue
			}
			b.WriteByte(c)
		}
		levels[i] = b.String()
	}
	return filepath.Join(levels...) + ".mbox"
}

// mailboxOfFile is mboxFileName's inverse, for a path relative to the
// tree.
func mailboxOfFile(rel string) string {
	levels := strings.Split(strings.TrimSuffix(filepath.ToSlash(rel), ".mbox"), "/")
	for i, l := range levels {
		if u, err := url.PathUnescape(l); err == nil {
			levels[i] = u
		}
	}
	return strings.Join(levels, store.Delimiter)
}

// mboxTree reads mbox files one after another.
type mboxTree struct {
	dir     string
	files   []string // relative to dir, in order
	mailbox func(rel string) string
	max     int64
	total   int64

	i    int
	f    *os.File
	r    *mboxReader
	base int64 // bytes of the files before the current one
}

func newMboxTree(dir string, files []string, mailbox func(string) string, max int64) (*mboxTree, error) {
	t := &mboxTree{dir: dir, files: files, mailbox: mailbox, max: max, i: -1}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		t.total += fi.Size()
	}
	return t, nil
}

func (t *mboxTree) Total() (int64, progressUnit) { return t.total, unitBytes }

func (t *mboxTree) Next(bool) (*importItem, error) {
	for {
		if t.r == nil {
			if t.f != nil {
				fi, _ := t.f.Stat()
				if fi != nil {
					t.base += fi.Size()
				}
				t.f.Close()
				t.f = nil
			}
			t.i++
			if t.i >= len(t.files) {
				return nil, io.EOF
			}
			f, err := os.Open(filepath.Join(t.dir, t.files[t.i]))
			if err != nil {
				return nil, err
			}
			t.f, t.r = f, newMboxReader(f, t.max)
		}
		m, err := t.r.Next()
		if err == io.EOF {
			t.r = nil
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.files[t.i], err)
		}
		return &importItem{
			Key: fmt.Sprintf("%s@%d", t.files[t.i], m.Offset), Mailbox: t.mailbox(t.files[t.i]),
			Date: m.Date, Flags: m.Flags, Data: m.Data, Size: m.Size, TooLarge: m.TooLarge,
			Bytes: t.base + t.r.off,
		}, nil
	}
}

func (t *mboxTree) Close() error {
	if t.f != nil {
		return t.f.Close()
	}
	return nil
}

// maildirSource reads the messages of a Maildir and its Maildir++
// subfolders, folder by folder, file names in order.
type maildirSource struct {
	root  string
	files []maildirFile
	max   int64
	i     int
}

type maildirFile struct {
	rel     string // relative to root: ".Sent/cur/1700000000.M1P2.host:2,S"
	mailbox string
	isNew   bool // in new/: not seen by any client
}

func newMaildirSource(root, mailbox string, max int64) (*maildirSource, error) {
	s := &maildirSource{root: root, max: max}
	folders := []struct{ dir, mailbox string }{{".", mailbox}}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, ".") || name == "." || name == ".." || !isMaildir(filepath.Join(root, name)) {
			continue
		}
		folders = append(folders, struct{ dir, mailbox string }{name, maildirFolderName(name)})
	}
	for _, f := range folders {
		for _, sub := range []string{"cur", "new"} {
			dir := filepath.Join(f.dir, sub)
			names, err := os.ReadDir(filepath.Join(root, dir))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				if n.Type().IsRegular() && !strings.HasPrefix(n.Name(), ".") {
					s.files = append(s.files, maildirFile{rel: filepath.Join(dir, n.Name()), mailbox: f.mailbox, isNew: sub == "new"})
				}
			}
		}
	}
	slices.SortStableFunc(s.files, func(a, b maildirFile) int { return strings.Compare(a.rel, b.rel) })
	return s, nil
}

// maildirFolderName maps a Maildir++ folder (".Archive.2024", names in
// modified UTF-7 as Dovecot and Courier write them) to a mailbox name
// ("Archive/2024").
func maildirFolderName(dir string) string {
	levels := strings.Split(strings.TrimPrefix(dir, "."), ".")
	for i, l := range levels {
		if d, err := decodeModifiedUTF7(l); err == nil {
			levels[i] = d
		}
	}
	name := strings.Join(levels, store.Delimiter)
	if strings.EqualFold(name, store.Inbox) {
		return store.Inbox
	}
	return name
}

func (s *maildirSource) Total() (int64, progressUnit) { return int64(len(s.files)), unitMessages }

func (s *maildirSource) Next(skip bool) (*importItem, error) {
	if s.i >= len(s.files) {
		return nil, io.EOF
	}
	f := s.files[s.i]
	s.i++
	it := &importItem{Key: f.rel, Mailbox: f.mailbox, Bytes: int64(s.i)}
	if skip {
		return it, nil
	}
	path := filepath.Join(s.root, f.rel)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	it.Date, it.Size = fi.ModTime().UTC(), fi.Size()
	it.Flags = maildirFlags(filepath.Base(f.rel))
	if fi.Size() > s.max {
		it.TooLarge = true
		return it, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	it.Data = crlfAll(data)
	return it, nil
}

func (s *maildirSource) Close() error { return nil }

// maildirFlags reads the flags of a Maildir file name's info part
// (":2,FRS"): P passed ($Forwarded), R replied, S seen, T trashed
// (\Deleted), D draft, F flagged; lower-case letters are Dovecot's
// keywords, which need its dovecot-keywords file, and are left out.
func maildirFlags(name string) []string {
	_, info, ok := strings.Cut(name, ":2,")
	if !ok {
		return nil
	}
	var f []string
	for _, c := range info {
		switch c {
		case 'P':
			f = append(f, "$Forwarded")
		case 'R':
			f = append(f, store.FlagAnswered)
		case 'S':
			f = append(f, store.FlagSeen)
		case 'T':
			f = append(f, store.FlagDeleted)
		case 'D':
			f = append(f, store.FlagDraft)
		case 'F':
			f = append(f, store.FlagFlagged)
		}
	}
	return canonicalFlagsLoose(f)
}

// crlfAll ends every line that ends in a bare LF with CRLF.
func crlfAll(data []byte) []byte {
	n := 0
	for i, c := range data {
		if c == '\n' && (i == 0 || data[i-1] != '\r') {
			n++
		}
	}
	if n == 0 {
		return data
	}
	out := make([]byte, 0, len(data)+n)
	for i, c := range data {
		if c == '\n' && (i == 0 || data[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// decodeModifiedUTF7 decodes a mailbox name in IMAP's modified UTF-7
// (RFC 3501 §5.1.3), as Maildir++ folder names are written: "&" starts
// base64 of UTF-16BE with "," for "/", "-" ends it, "&-" is "&".
func decodeModifiedUTF7(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errors.New("modified UTF-7: unterminated")
		}
		run := s[i+1 : i+1+end]
		i += end + 1
		if run == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := base64.RawStdEncoding.DecodeString(strings.ReplaceAll(run, ",", "/"))
		if err != nil || len(raw)%2 != 0 {
			return "", errors.New("modified UTF-7: bad base64")
		}
		units := make([]uint16, len(raw)/2)
		for j := range units {
			units[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		b.WriteString(string(utf16.Decode(units)))
	}
	return b.String(), nil
}
