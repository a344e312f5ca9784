package audit

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/store"
)

// The export format (docs/audit.md): one JSON object per line, in record
// order, with exactly these members:
//
//	{"seq":1,"time":"2026-12-01T10:00:00.000000000Z","actor":"cli:root",
//	 "action":"account.create","scope":"user:alice@example.org","reason":"",
//	 "detail":{},"prev":"00…00","hash":"8dd7…288a"}
//
// time is crypto.AuditTimeLayout, prev and hash lower-case hex.

// JSONRecord is one exported record. Its JSON is the export format; the
// control socket uses it too.
type JSONRecord struct {
	Seq    uint64            `json:"seq"`
	Time   string            `json:"time"`
	Actor  string            `json:"actor"`
	Action string            `json:"action"`
	Scope  string            `json:"scope"`
	Reason string            `json:"reason"`
	Detail map[string]string `json:"detail"`
	Prev   string            `json:"prev"`
	Hash   string            `json:"hash"`
}

// ToJSON returns r in the export form.
func ToJSON(r store.AuditRecord) JSONRecord {
	d := r.Detail
	if d == nil {
		d = map[string]string{}
	}
	return JSONRecord{
		Seq: r.Seq, Time: crypto.FormatAuditTime(r.Time), Actor: r.Actor, Action: r.Action, Scope: r.Scope,
		Reason: r.Reason, Detail: d, Prev: hex.EncodeToString(r.Prev), Hash: hex.EncodeToString(r.Hash),
	}
}

// FromJSON parses an exported record. The time must be in its one
// canonical spelling and the hashes hex, or the hash a script computes
// from the text would differ from sealmail's.
func FromJSON(j JSONRecord) (store.AuditRecord, error) {
	t, err := time.Parse(crypto.AuditTimeLayout, j.Time)
	if err != nil || crypto.FormatAuditTime(t) != j.Time {
		return store.AuditRecord{}, fmt.Errorf("time %q is not of the form %s", j.Time, crypto.AuditTimeLayout)
	}
	prev, err := hex.DecodeString(j.Prev)
	if err != nil || hex.EncodeToString(prev) != j.Prev {
		return store.AuditRecord{}, fmt.Errorf("prev %q is not lower-case hex", j.Prev)
	}
	hash, err := hex.DecodeString(j.Hash)
	if err != nil || hex.EncodeToString(hash) != j.Hash {
		return store.AuditRecord{}, fmt.Errorf("hash %q is not lower-case hex", j.Hash)
	}
	d := j.Detail
	if len(d) == 0 {
		d = nil
	}
	return store.AuditRecord{
		Seq: j.Seq, Time: t, Actor: j.Actor, Action: j.Action, Scope: j.Scope, Reason: j.Reason,
		Detail: d, Prev: prev, Hash: hash,
	}, nil
}

// Writer writes records as JSON lines.
type Writer struct {
	enc *json.Encoder
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Writer{enc: enc}
}

// Write writes one record as one line.
func (w *Writer) Write(r store.AuditRecord) error {
	return w.enc.Encode(ToJSON(r))
}

// MaxLineBytes bounds one line of an export: the largest event
// (MaxReasonBytes, MaxDetails of MaxDetailValue, …) escaped as JSON fits
// with room to spare.
const MaxLineBytes = 1 << 20

// LineError is a line of an export that is not a record.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ReadJSON calls fn with each record of an export, with its line number,
// until fn returns an error (which ReadJSON returns). A line that is not
// exactly one record of the format is a *LineError.
func ReadJSON(r io.Reader, fn func(line int, rec store.AuditRecord) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		b, err := readLine(br, MaxLineBytes)
		if errors.Is(err, io.EOF) && len(b) == 0 {
			return nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return &LineError{Line: line, Err: err}
		}
		rec, perr := parseLine(b)
		if perr != nil {
			return &LineError{Line: line, Err: perr}
		}
		if err := fn(line, rec); err != nil {
			return err
		}
	}
}

// errLongLine: a line over MaxLineBytes.
var errLongLine = fmt.Errorf("longer than %d bytes", MaxLineBytes)

// readLine returns the next line without its "\n" (and "\r"), or io.EOF
// after the last. A last line without "\n" is returned with io.EOF.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return nil, errLongLine
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return line, io.EOF
		default:
			return nil, err
		}
	}
}

// parseLine decodes one record strictly: one object, every member
// present, no other member.
func parseLine(b []byte) (store.AuditRecord, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return store.AuditRecord{}, fmt.Errorf("not a JSON object: %v", err)
	}
	for _, k := range []string{"seq", "time", "actor", "action", "scope", "reason", "detail", "prev", "hash"} {
		if _, ok := raw[k]; !ok {
			return store.AuditRecord{}, fmt.Errorf("no %q member", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j JSONRecord
	if err := dec.Decode(&j); err != nil {
		return store.AuditRecord{}, fmt.Errorf("not a record: %v", err)
	}
	return FromJSON(j)
}
