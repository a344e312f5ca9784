package sortthread

import "strings"

// MessageIDs returns the message IDs in a Message-ID, In-Reply-To or
// References field value, in order: each msg-id ("<" id-left "@" id-right
// ">", RFC 5322 §3.6.4) without its angle brackets, white space and line
// breaks inside it removed. Comments and anything that is not a msg-id
// (the phrases of old In-Reply-To fields) are skipped, as are malformed
// IDs. IDs compare case-sensitively (RFC 5256 §3).
func MessageIDs(field string) []string {
	var ids []string
	eachMessageID(field, func(id string) bool {
		ids = append(ids, id)
		return true
	})
	return ids
}

// FirstMessageID returns the first message ID of field, or "".
func FirstMessageID(field string) string {
	var first string
	eachMessageID(field, func(id string) bool {
		first = id
		return false
	})
	return first
}

// eachMessageID calls f with each message ID of field until f returns
// false.
func eachMessageID(field string, f func(string) bool) {
	for i := 0; i < len(field); {
		switch field[i] {
		case '(':
			i = skipComment(field, i)
		case '"':
			i = skipQuoted(field, i)
		case '<':
			end := strings.IndexAny(field[i+1:], "<>")
			if end < 0 {
				return
			}
			end += i + 1
			if field[end] == '<' {
				i = end // a stray "<": start again at the next one
				continue
			}
			if id, ok := cleanID(field[i+1 : end]); ok && !f(id) {
				return
			}
			i = end + 1
		default:
			i++
		}
	}
}

// skipComment returns the position after the comment that starts at
// field[i] == '(' (nested, with quoted-pairs), or len(field).
func skipComment(field string, i int) int {
	depth := 0
	for ; i < len(field); i++ {
		switch field[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return len(field)
}

// skipQuoted returns the position after the quoted string that starts at
// field[i] == '"', or len(field).
func skipQuoted(field string, i int) int {
	for i++; i < len(field); i++ {
		switch field[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(field)
}

// cleanID removes white space from the inside of a msg-id and checks its
// shape: one "@" with something on each side, no control characters.
func cleanID(s string) (string, bool) {
	if strings.ContainsAny(s, " \t\r\n") {
		s = strings.Map(func(r rune) rune {
			switch r {
			case ' ', '\t', '\r', '\n':
				return -1
			}
			return r
		}, s)
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return "", false
		}
	}
	return s, true
}

// ThreadRefs returns a message's references for THREAD=REFERENCES (RFC
// 5256 §3 step 1): the message IDs of its References field, or, when that
// has none, the first message ID of its In-Reply-To field.
func ThreadRefs(references, inReplyTo string) []string {
	if ids := MessageIDs(references); len(ids) > 0 {
		return ids
	}
	if id := FirstMessageID(inReplyTo); id != "" {
		return []string{id}
	}
	return nil
}
