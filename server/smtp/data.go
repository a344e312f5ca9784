package smtp

import (
	"bytes"
	"errors"
)

// dataLimits bound one message as msgSink reads it.
type dataLimits struct {
	maxBytes int64 // message bytes, trace fields not counted
	maxLine  int   // bytes per line, CRLF included
	maxHops  int   // Received fields already in the header
}

// Faults found in message data, mapped to replies by dataReply.
var (
	errScanBareNewline = errors.New("smtp: bare CR or LF in data")
	errScanNUL         = errors.New("smtp: NUL in data")
	errScanLineTooLong = errors.New("smtp: data line too long")
	errScanTooBig      = errors.New("smtp: message too large")
	errScanLoop        = errors.New("smtp: too many Received fields")
)

// msgSink checks a message's bytes as they arrive (after dot-unstuffing
// for DATA, as they are for BDAT) and passes them to keep: every CR must
// be followed by LF and every LF preceded by CR (so no sequence such as
// <LF>.<LF> means anything different to any reader of the stored
// message), no NUL, no line longer than lim.maxLine, no more than
// lim.maxBytes in all, no more than lim.maxHops Received fields in the
// header. After the first fault it keeps nothing more but goes on
// counting, so the caller reads to the end of the data (staying in step
// with the client) and answers once. Write never fails.
type msgSink struct {
	keep interface{ Write([]byte) (int, error) } // may be nil: count only
	lim  dataLimits
	sc   lineScanner
	hdr  headerScanner
	size int64
	err  error // first fault, or keep's error
}

func newMsgSink(keep interface{ Write([]byte) (int, error) }, lim dataLimits) *msgSink {
	s := &msgSink{keep: keep, lim: lim}
	s.sc.maxLine = lim.maxLine
	return s
}

func (s *msgSink) Write(p []byte) (int, error) {
	n := len(p)
	s.size += int64(n)
	if s.err != nil {
		return n, nil
	}
	if s.size > s.lim.maxBytes {
		s.err = errScanTooBig
		return n, nil
	}
	if err := s.sc.scan(p); err != nil {
		s.err = err
		return n, nil
	}
	if s.hdr.scan(p) > s.lim.maxHops {
		s.err = errScanLoop
		return n, nil
	}
	if s.keep != nil {
		if _, err := s.keep.Write(p); err != nil {
			s.err = err
		}
	}
	return n, nil
}

// finish checks the end of the data and returns the first fault.
func (s *msgSink) finish() error {
	if s.err == nil && s.sc.pendingCR {
		s.err = errScanBareNewline
	}
	return s.err
}

// dataReply maps a msgSink fault to its reply; ok is false for faults
// that are not the client's (the spool failed).
func dataReply(err error) (r *Reply, clientFault bool) {
	switch {
	case errors.Is(err, errScanBareNewline):
		return replyBareNewline, true
	case errors.Is(err, errScanNUL):
		return replyNUL, true
	case errors.Is(err, errScanLineTooLong):
		return replyLongLine, true
	case errors.Is(err, errScanTooBig):
		return replyTooBig, true
	case errors.Is(err, errScanLoop):
		return replyLoop, true
	}
	return replyTemporary, false
}

// lineScanner checks line endings, NULs and line lengths across chunk
// boundaries.
type lineScanner struct {
	maxLine   int  // immutable
	lineLen   int  // bytes of the current line so far, CR not counted
	pendingCR bool // the last byte seen was a CR
}

func (s *lineScanner) scan(p []byte) error {
	for len(p) > 0 {
		if s.pendingCR {
			if p[0] != '\n' {
				return errScanBareNewline
			}
			s.pendingCR = false
			s.lineLen = 0
			p = p[1:]
			continue
		}
		i := bytes.IndexAny(p, "\r\n\x00")
		if i < 0 {
			i = len(p)
		}
		s.lineLen += i
		if s.lineLen+2 > s.maxLine {
			return errScanLineTooLong
		}
		if i == len(p) {
			return nil
		}
		switch p[i] {
		case '\n':
			return errScanBareNewline
		case 0:
			return errScanNUL
		}
		s.pendingCR = true
		p = p[i+1:]
	}
	return nil
}

// headerScanner counts the Received fields of a message's header section
// (RFC 5322 §2.2) as its bytes arrive: the lines before the first empty
// line, or before the first line that is neither a field ("name:") nor a
// continuation (starting with space or tab). Lines end in CRLF (bare CR
// and LF are refused before this runs).
type headerScanner struct {
	done     bool
	midLine  bool    // inside a line whose kind is decided
	name     [9]byte // start of the current line, while undecided
	nameLen  int     // bytes of name used; -1: longer than "Received" + blanks
	blanks   bool    // blanks seen after the name
	received int
}

// scan reads p and returns the count so far.
func (h *headerScanner) scan(p []byte) int {
	for _, c := range p {
		if h.done {
			return h.received
		}
		if c == '\r' {
			continue
		}
		if c == '\n' {
			if !h.midLine {
				// The line ended undecided: empty, or with no ':' at
				// all. Either ends the header.
				h.done = true
				continue
			}
			h.midLine, h.nameLen, h.blanks = false, 0, false
			continue
		}
		if h.midLine {
			continue
		}
		// Undecided: the start of a line.
		switch {
		case h.nameLen == 0 && (c == ' ' || c == '\t'):
			h.midLine = true // continuation
		case c == ':':
			if h.nameLen == 0 {
				h.done = true // ":" at the start: not a field
				continue
			}
			if h.nameLen == len("received") && bytes.EqualFold(h.name[:h.nameLen], []byte("received")) {
				h.received++
			}
			h.midLine = true
		case c == ' ' || c == '\t':
			h.blanks = true
		default:
			if h.blanks || h.nameLen < 0 || h.nameLen >= len(h.name) {
				// Not "Received" (or not a well-formed name): only the
				// line's kind is left to decide, at its ':'.
				h.nameLen = -1
				h.blanks = false
				continue
			}
			h.name[h.nameLen] = c
			h.nameLen++
		}
	}
	return h.received
}
