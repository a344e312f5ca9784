package store

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrBadName is returned for an account address or mailbox name the store
// will not keep.
var ErrBadName = errors.New("store: bad name")

// Bounds on names. MaxAddressLen is RFC 5321 §4.5.3.1.1 and §4.5.3.1.2
// (64 + 1 + 255); MaxMailboxNameLen is generous for any real hierarchy.
const (
	MaxAddressLen     = 320
	MaxMailboxNameLen = 1000
)

// CheckAddress checks that an account address can be stored: non-empty,
// bounded, valid UTF-8 without control characters. It does not check
// address syntax; callers canonicalise addresses first.
func CheckAddress(addr string) error {
	if addr == "" || len(addr) > MaxAddressLen {
		return fmt.Errorf("%w: address length %d", ErrBadName, len(addr))
	}
	return checkText(addr)
}

// CheckMailboxName checks that a mailbox name can be stored: non-empty,
// bounded, valid UTF-8 without control characters, and no empty hierarchy
// level (no leading, trailing or doubled Delimiter).
func CheckMailboxName(name string) error {
	if name == "" || len(name) > MaxMailboxNameLen {
		return fmt.Errorf("%w: mailbox name length %d", ErrBadName, len(name))
	}
	for _, part := range strings.Split(name, Delimiter) {
		if part == "" {
			return fmt.Errorf("%w: empty hierarchy level in %q", ErrBadName, name)
		}
	}
	return checkText(name)
}

func checkText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: invalid UTF-8", ErrBadName)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character", ErrBadName)
		}
	}
	return nil
}
