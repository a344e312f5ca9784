package store

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// System flags (RFC 9051 §2.3.2) in their canonical case.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

// ErrBadFlag is returned for a flag that is not a valid IMAP flag atom.
var ErrBadFlag = errors.New("store: bad flag")

// Bounds on flags. They keep message metadata small; IMAP clients use a
// handful of short keywords.
const (
	// MaxFlagLen is the longest flag accepted, in bytes.
	MaxFlagLen = 256
	// MaxFlags is the most flags one message may carry.
	MaxFlags = 128
)

var systemFlags = []string{FlagSeen, FlagAnswered, FlagFlagged, FlagDeleted, FlagDraft}

// CanonicalFlag validates one flag and returns it in canonical form: system
// flags get their canonical case, keywords are kept as given. A flag is an
// IMAP atom (RFC 9051 §9 flag-keyword), optionally preceded by one
// backslash.
func CanonicalFlag(f string) (string, error) {
	if f == "" || len(f) > MaxFlagLen {
		return "", fmt.Errorf("%w: length %d", ErrBadFlag, len(f))
	}
	body := f
	if body[0] == '\\' {
		body = body[1:]
		for _, s := range systemFlags {
			if strings.EqualFold(f, s) {
				return s, nil
			}
		}
		if body == "" {
			return "", fmt.Errorf("%w: lone backslash", ErrBadFlag)
		}
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return "", fmt.Errorf("%w: character %q", ErrBadFlag, c)
		}
	}
	return f, nil
}

// CanonicalFlags validates flags and returns them canonical: system flags
// in canonical case, keywords as given, duplicates removed
// case-insensitively (the first spelling wins), sorted. The input is not
// modified.
func CanonicalFlags(flags []string) ([]string, error) {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		c, err := CanonicalFlag(f)
		if err != nil {
			return nil, err
		}
		if !HasFlag(out, c) {
			out = append(out, c)
		}
	}
	if len(out) > MaxFlags {
		return nil, fmt.Errorf("%w: more than %d flags", ErrBadFlag, MaxFlags)
	}
	sort.Strings(out)
	return out, nil
}

// HasFlag reports whether flags contains f, compared case-insensitively
// (flags are case-insensitive in IMAP, RFC 9051 §2.3.2).
func HasFlag(flags []string, f string) bool {
	for _, g := range flags {
		if strings.EqualFold(g, f) {
			return true
		}
	}
	return false
}

// ApplyFlags returns the canonical flags that result from applying op with
// change to cur, which must already be canonical. Flags already present keep
// their spelling.
func ApplyFlags(cur []string, op FlagOp, change []string) ([]string, error) {
	ch, err := CanonicalFlags(change)
	if err != nil {
		return nil, err
	}
	switch op {
	case FlagsSet:
		return ch, nil
	case FlagsAdd:
		out := append([]string(nil), cur...)
		for _, f := range ch {
			if !HasFlag(out, f) {
				out = append(out, f)
			}
		}
		if len(out) > MaxFlags {
			return nil, fmt.Errorf("%w: more than %d flags", ErrBadFlag, MaxFlags)
		}
		sort.Strings(out)
		return out, nil
	case FlagsRemove:
		out := make([]string, 0, len(cur))
		for _, f := range cur {
			if !HasFlag(ch, f) {
				out = append(out, f)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("store: unknown flag operation %d", op)
}

// SameFlags reports whether two canonical flag lists are equal.
func SameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
