package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// ChainError says where and how a chain breaks: the first bad record.
type ChainError struct {
	// Seq is the number the first bad record claims; 0 when the problem
	// is at the end of the chain (truncation).
	Seq uint64
	// Index is the record's 1-based position in what was checked (the
	// line of an exported file); 0 at the end of the chain.
	Index int
	// Problem says what is wrong, in words for the operator.
	Problem string
	// Record is the bad record as read; nil at the end of the chain.
	Record *store.AuditRecord
}

func (e *ChainError) Error() string {
	if e.Record == nil {
		return "audit chain broken at its end: " + e.Problem
	}
	return fmt.Sprintf("audit chain broken at record #%d (position %d): %s", e.Seq, e.Index, e.Problem)
}

// Anchor is a record's hash known from elsewhere: a log line, an earlier
// export, a note the officer kept.
type Anchor struct {
	Seq  uint64
	Hash []byte
	// Source names where the hash came from, for messages ("the file
	// audit.jsonl"); "" means "anchor SEQ:HASH".
	Source string
}

func (a Anchor) source() string {
	if a.Source != "" {
		return a.Source
	}
	return "anchor " + a.String()
}

// ParseAnchor parses "SEQ:HASH" (HASH in hex, as logs and `audit head`
// print it).
func ParseAnchor(s string) (Anchor, error) {
	seq, h, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(s), "#"), ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil || n == 0 {
		return Anchor{}, fmt.Errorf("anchor %q: want SEQ:HASH, e.g. 42:%s", s, strings.Repeat("0", 64))
	}
	hash, err := hex.DecodeString(h)
	if err != nil || len(hash) != crypto.AuditHashSize {
		return Anchor{}, fmt.Errorf("anchor %q: the hash must be %d hex digits", s, 2*crypto.AuditHashSize)
	}
	return Anchor{Seq: n, Hash: hash}, nil
}

func (a Anchor) String() string { return fmt.Sprintf("%d:%x", a.Seq, a.Hash) }

// Verifier checks records one at a time, in the order given, from the
// first record of the log or from any later one (an export --since):
// then the first record's link to its predecessor is taken as given and
// reported by Start. Anchors are checked as their records go by and at
// Finish. The zero value is not usable; call NewVerifier.
type Verifier struct {
	anchors []Anchor // sorted by Seq; anchors[next:] not met yet
	next    int

	n       int
	first   uint64
	start   []byte // Prev of the first record
	prev    []byte
	last    store.AuditHead
	failed  error
	checked []uint64 // anchors met, by seq
}

// NewVerifier returns a Verifier that also checks anchors.
func NewVerifier(anchors ...Anchor) *Verifier {
	a := slices.Clone(anchors)
	slices.SortFunc(a, func(x, y Anchor) int {
		switch {
		case x.Seq < y.Seq:
			return -1
		case x.Seq > y.Seq:
			return 1
		}
		return 0
	})
	return &Verifier{anchors: a}
}

// Check checks the next record. After the first *ChainError every call
// returns it again.
func (v *Verifier) Check(r store.AuditRecord) error {
	if v.failed != nil {
		return v.failed
	}
	v.n++
	bad := func(format string, args ...any) error {
		rc := r
		v.failed = &ChainError{Seq: r.Seq, Index: v.n, Problem: fmt.Sprintf(format, args...), Record: &rc}
		return v.failed
	}
	if v.n == 1 {
		v.first, v.start = r.Seq, r.Prev
		switch {
		case r.Seq == 0:
			return bad("record number 0 (the log starts at #1)")
		case r.Seq == 1 && !bytes.Equal(r.Prev, crypto.AuditGenesis()):
			return bad("the first record's prev is not %d zero bytes", crypto.AuditHashSize)
		case len(r.Prev) != crypto.AuditHashSize:
			return bad("its prev is %d bytes, not %d", len(r.Prev), crypto.AuditHashSize)
		}
		// Anchors before where this input starts cannot be checked.
		for v.next < len(v.anchors) && v.anchors[v.next].Seq < r.Seq {
			v.next++
		}
	} else {
		want := v.last.Seq + 1
		switch {
		case r.Seq > want && r.Seq-want == 1:
			return bad("record #%d is missing before it (removed, or records out of order)", want)
		case r.Seq > want:
			return bad("records #%d to #%d are missing before it (removed, or records out of order)", want, r.Seq-1)
		case r.Seq < want:
			return bad("it comes after record #%d (repeated, or records out of order)", v.last.Seq)
		case !bytes.Equal(r.Prev, v.prev):
			return bad("its prev is not the hash of record #%d: that record was changed and its hash recomputed, or records were removed or replaced", v.last.Seq)
		case r.Time.Before(v.last.Time):
			return bad("its time %s is before record #%d's (%s): records out of order or changed",
				crypto.FormatAuditTime(r.Time), v.last.Seq, crypto.FormatAuditTime(v.last.Time))
		}
	}
	h, err := crypto.AuditHash(r.Prev, entryOf(r))
	if err != nil {
		return bad("%v", err)
	}
	if !bytes.Equal(h, r.Hash) {
		return bad("its hash does not match its content: the record was changed")
	}
	for v.next < len(v.anchors) && v.anchors[v.next].Seq == r.Seq {
		if !bytes.Equal(v.anchors[v.next].Hash, r.Hash) {
			a := v.anchors[v.next]
			return bad("its hash %x is not the one %s has for it (%x): the log was rewritten up to here", r.Hash, a.source(), a.Hash)
		}
		v.checked = append(v.checked, r.Seq)
		v.next++
	}
	v.prev = r.Hash
	v.last = store.AuditHead{Seq: r.Seq, Hash: r.Hash, Time: r.Time}
	return nil
}

// Finish ends the check: anchors beyond the last record mean records were
// removed from the end. It returns the first problem found, if any.
func (v *Verifier) Finish() error {
	if v.failed != nil {
		return v.failed
	}
	if v.next < len(v.anchors) {
		a := v.anchors[v.next]
		end := "is empty"
		if v.n > 0 {
			end = fmt.Sprintf("ends at #%d", v.last.Seq)
		}
		v.failed = &ChainError{Problem: fmt.Sprintf("the chain %s but %s has record #%d: records were removed from the end", end, a.source(), a.Seq)}
		return v.failed
	}
	return nil
}

// Count returns how many records passed.
func (v *Verifier) Count() int {
	if v.failed != nil {
		return v.n - 1
	}
	return v.n
}

// Head returns the last good record's number, hash and time.
func (v *Verifier) Head() store.AuditHead { return v.last }

// Start returns the number of the first record checked and its prev: the
// hash of the record before it, which the check took on trust unless
// the first record is #1.
func (v *Verifier) Start() (uint64, []byte) { return v.first, v.start }

// Anchored returns the numbers of the anchors that were checked.
func (v *Verifier) Anchored() []uint64 { return slices.Clone(v.checked) }

// Report is the outcome of Verify.
type Report struct {
	Records int             // records that passed
	First   store.AuditHead // the first record; zero if the log is empty
	Head    store.AuditHead // the last good record
	// Anchored lists the anchors that were checked.
	Anchored []uint64
}

// Verify checks a whole log, which walk reads from record #1 on, with
// the anchors given, and checks that the record that head (the store's
// head row, read before walk started) names is there with its hash. A
// log may grow while it is read: records past head are checked like the
// others. A broken chain is a *ChainError; other errors are failures to
// read.
func Verify(head store.AuditHead, walk func(fn func(store.AuditRecord) error) error, anchors ...Anchor) (Report, error) {
	v := NewVerifier(anchors...)
	var first store.AuditHead
	var atHead []byte // the hash of record head.Seq as read
	err := walk(func(r store.AuditRecord) error {
		if first.Seq == 0 {
			first = store.AuditHead{Seq: r.Seq, Hash: r.Hash, Time: r.Time}
			if r.Seq != 1 {
				rc := r
				gone := fmt.Sprintf("records #1 to #%d were", r.Seq-1)
				if r.Seq == 2 {
					gone = "record #1 was"
				}
				v.n++
				v.failed = &ChainError{Seq: r.Seq, Index: 1, Record: &rc, Problem: fmt.Sprintf("the log starts at #%d: %s removed", r.Seq, gone)}
				return v.failed
			}
		}
		if err := v.Check(r); err != nil {
			return err
		}
		if r.Seq == head.Seq {
			atHead = r.Hash
		}
		return nil
	})
	rep := Report{Records: v.Count(), First: first, Head: v.Head(), Anchored: v.Anchored()}
	if err != nil {
		return rep, err
	}
	if err := v.Finish(); err != nil {
		return rep, err
	}
	// The head row is written with every append: a chain that ends
	// before it lost records at its end.
	end := v.Head()
	switch {
	case head.Seq > end.Seq:
		return rep, &ChainError{Problem: fmt.Sprintf("the store's head row names record #%d (%s) but the chain ends at #%d: records were removed from the end",
			head.Seq, crypto.FormatAuditTime(head.Time), end.Seq)}
	case head.Seq > 0 && !bytes.Equal(head.Hash, atHead):
		return rep, &ChainError{Problem: fmt.Sprintf("the store's head row has another hash for record #%d: records from there on were replaced", head.Seq)}
	}
	return rep, nil
}

// VerifyStore is Verify over the whole log in the store.
func (s *Service) VerifyStore(ctx context.Context, anchors ...Anchor) (Report, error) {
	head, err := s.Head(ctx)
	if err != nil {
		return Report{}, err
	}
	return Verify(head, func(fn func(store.AuditRecord) error) error { return s.Records(ctx, 1, fn) }, anchors...)
}
