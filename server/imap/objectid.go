package imap

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/sealmail/sealmail/server/imap/sortthread"
	"github.com/sealmail/sealmail/server/imap/wire"
	"github.com/sealmail/sealmail/server/mailbox"
	"github.com/sealmail/sealmail/store"
)

// OBJECTID (RFC 8474) and SAVEDATE (RFC 8514): identities and the save
// date, all from the store's message records, never from content.
//
//   - MAILBOXID is "M" and the mailbox's store ID, which is never reused
//     and survives RENAME (SELECT, STATUS, CREATE; select.go).
//   - EMAILID is "E" and the store's email ID (store.Message.EmailID):
//     assigned at delivery or APPEND and carried by COPY and MOVE, so
//     every copy of a message shares it and no other message has it.
//   - THREADID names the thread's first message: "T" and 16 hex digits
//     of the SHA-256 of the first message ID of References (else of
//     In-Reply-To, else the message's own Message-ID), read from the
//     sealed summary, so FETCH THREADID and SEARCH THREADID open the
//     summaries as ENVELOPE does. Replies that keep the thread's first
//     ID in References (RFC 5322 §3.6.4 asks them to) share it with the
//     message they answer; a message with none of the three is NIL. It is
//     computed in the session, never stored.
//   - SAVEDATE is when the message was saved into the mailbox (delivery,
//     APPEND, COPY, MOVE) by the server's clock. Messages stored before
//     the store kept it show their internal date, which for delivered
//     mail is the same moment and for appended mail the client's date.
//     SAVEDBEFORE, SAVEDON and SAVEDSINCE compare its date (RFC 9051
//     §6.4.4's rule); SAVEDATESUPPORTED matches every message, since every
//     mailbox has save dates.

// objectIDCaps are the capabilities of this file.
var objectIDCaps = []imap.Cap{imap.CapObjectID, imap.CapSaveDate}

// emailID is a message's EMAILID.
func emailID(m *store.Message) string { return "E" + strconv.FormatUint(m.EmailID, 10) }

// parseEmailID reads an EMAILID; ok is false for one this server never
// gives.
func parseEmailID(s string) (uint64, bool) {
	n, ok := strings.CutPrefix(s, "E")
	if !ok || n == "" || n[0] == '0' || n[0] == '+' {
		return 0, false
	}
	id, err := strconv.ParseUint(n, 10, 64)
	return id, err == nil
}

// threadID is a message's THREADID, "" for NIL.
func threadID(sum *mailbox.Summary) string {
	if sum == nil || sum.Envelope == nil {
		return ""
	}
	root := ""
	if refs := sortthread.ThreadRefs(headerField(sum.Header, "References"), sum.Envelope.InReplyTo); len(refs) > 0 {
		root = refs[0]
	} else {
		root = sortthread.FirstMessageID(sum.Envelope.MessageID)
	}
	if root == "" {
		return ""
	}
	h := sha256.Sum256([]byte(root))
	return "T" + hex.EncodeToString(h[:8])
}

// saveDate is a message's SAVEDATE.
func saveDate(m *store.Message) time.Time {
	if m.SaveDate.IsZero() {
		return m.InternalDate
	}
	return m.SaveDate
}

// matchObjectKey evaluates the search keys of this file; ok is false for
// any other key. THREADID needs the summary (needsSummaryKey).
func matchObjectKey(it *fetchItem, k *wire.SearchKey) (match, ok bool) {
	m := it.msg
	switch k.Op {
	case wire.SearchSavedBefore:
		return dateOf(saveDate(m)).Before(k.Date), true
	case wire.SearchSavedOn:
		return dateOf(saveDate(m)).Equal(k.Date), true
	case wire.SearchSavedSince:
		return !dateOf(saveDate(m)).Before(k.Date), true
	case wire.SearchSavedDateSupported:
		return true, true
	case wire.SearchEmailID:
		id, valid := parseEmailID(k.Value)
		return valid && id == m.EmailID, true
	case wire.SearchThreadID:
		id := threadID(it.sum)
		return id != "" && id == k.Value, true
	}
	return false, false
}

// writeObjectItems writes the FETCH items of this file that o asks for.
// THREADID needs the summary (needsSummary).
func writeObjectItems(fr *wire.FetchResponse, o *wire.FetchItems, it *fetchItem) {
	m := it.msg
	if o.SaveDate {
		fr.SaveDate(saveDate(m))
	}
	if o.EmailID {
		fr.EmailID(emailID(m))
	}
	if o.ThreadID {
		fr.ThreadID(threadID(it.sum))
	}
}
