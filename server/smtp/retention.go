package smtp

import (
	"bufio"
	"bytes"
	"io"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/store"
)

// Retention: each copy gets its retention class here, the one moment the
// server sees the message in the clear, from metadata only
// (policy.Classify): the inbound verdict (a copy filed in Junk is spam)
// and whether list or bulk header fields are present. Only the class
// reaches the store (Delivery.Retention, pending: the store's retention
// service computes the rest); the header values are read, never kept.

// maxClassHeader bounds how much of the header section is read for the
// class: fields after it do not count.
const maxClassHeader = 64 << 10

// maxClassField bounds a field value kept while scanning.
const maxClassField = 1 << 10

// listFields are the header fields that mark list and bulk mail.
type listFields struct {
	listID, listUnsubscribe, precedence string
}

// scanListFields reads the header section of a message (RFC 5322 §2.2,
// folded lines unfolded) from r, up to maxClassHeader bytes, and returns
// the list fields' values.
func scanListFields(r io.Reader) listFields {
	br := bufio.NewReaderSize(io.LimitReader(r, maxClassHeader), 4096)
	var (
		f    listFields
		name string
		val  []byte
	)
	keep := func() {
		v := string(bytes.TrimSpace(val))
		switch {
		case bytes.EqualFold([]byte(name), []byte("List-Id")):
			f.listID = v
		case bytes.EqualFold([]byte(name), []byte("List-Unsubscribe")):
			f.listUnsubscribe = v
		case bytes.EqualFold([]byte(name), []byte("Precedence")):
			f.precedence = v
		}
		name, val = "", val[:0]
	}
	for {
		line, err := br.ReadSlice('\n')
		long := err == bufio.ErrBufferFull
		for err == bufio.ErrBufferFull { // a line longer than the buffer: skip the rest
			_, err = br.ReadSlice('\n')
		}
		if len(line) == 0 && err != nil {
			break
		}
		body := bytes.TrimRight(line, "\r\n")
		if len(body) == 0 && !long {
			break // the end of the header section
		}
		if body[0] == ' ' || body[0] == '\t' {
			if name != "" && len(val)+len(body) <= maxClassField {
				val = append(val, body...)
			}
		} else {
			keep()
			if i := bytes.IndexByte(body, ':'); i > 0 && !long {
				name = string(bytes.TrimRight(body[:i], " \t"))
				val = append(val[:0], body[i+1:]...)
			}
		}
		if err != nil {
			break
		}
	}
	keep()
	return f
}

// retentionClasses decides each account's class, in the order of the
// plan's accounts.
func retentionClasses(msg *msgBuffer, n int, cp copyPlan) []*store.Retention {
	h := scanListFields(msg.reader())
	out := make([]*store.Retention, n)
	for i := range out {
		spam := cp.plan != nil && i < len(cp.plan.Accounts) && cp.plan.Accounts[i].Junk
		class := policy.Classify(policy.DeliveryMeta{Submission: cp.submission, Spam: spam, ListID: h.listID, ListUnsubscribe: h.listUnsubscribe, Precedence: h.precedence})
		// Pending: only the class is decided here; the retention service
		// computes the rest when the store commits.
		out[i] = &store.Retention{Origin: class, Class: class, Pending: true}
	}
	return out
}
