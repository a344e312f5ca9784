package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// maxCheckedField bounds a header field submission reads whole (From,
// Sender): longer is refused, so a huge field costs no memory.
const maxCheckedField = 16 << 10

// Faults of a submitted message's header, mapped by headerReply.
var (
	errNoFrom        = errors.New("smtp: no From field")
	errManyFrom      = errors.New("smtp: more than one From field")
	errBadFrom       = errors.New("smtp: From or Sender field does not parse")
	errFieldTooLong  = errors.New("smtp: header field too long")
	errHeaderUnended = errors.New("smtp: header section without an end")
)

// submittedHeader is what submission reads of a message's header
// section: the fields it checks or adds.
type submittedHeader struct {
	from        []string // addresses of the From field
	sender      []string // addresses of the Sender field
	hasFrom     bool
	messageID   bool // a Message-ID field is present
	date        bool // a Date field is present
	tlsOptional bool // "TLS-Required: No" (RFC 8689 §5)
}

// addressParser reads address lists, taking encoded-words in unknown
// charsets as they are (only the addresses matter here).
var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// scanHeader reads the header section of a message (RFC 5322 §2.2) from
// r: field lines up to the first empty line. Lines end in CRLF (bare CR
// and LF were refused as the message arrived). Only From, Sender,
// Message-ID, Date and TLS-Required are looked at; From and Sender are
// read whole (at most maxCheckedField bytes) and parsed.
func scanHeader(r io.Reader) (submittedHeader, error) {
	var h submittedHeader
	br := bufio.NewReaderSize(r, 8<<10)
	var (
		name  string       // the field being read, lower case; "" for one not looked at
		value bytes.Buffer // its unfolded value
	)
	end := func() error {
		defer value.Reset()
		switch name {
		case "from":
			if h.hasFrom {
				return errManyFrom
			}
			h.hasFrom = true
			as, err := addressParser.ParseList(value.String())
			if err != nil || len(as) == 0 {
				return errBadFrom
			}
			for _, a := range as {
				h.from = append(h.from, a.Address)
			}
		case "sender":
			a, err := addressParser.Parse(value.String())
			if err != nil {
				return errBadFrom
			}
			h.sender = append(h.sender, a.Address)
		case "tls-required":
			h.tlsOptional = strings.EqualFold(strings.TrimSpace(value.String()), "no")
		}
		name = ""
		return nil
	}
	for {
		line, err := br.ReadSlice('\n')
		long := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !long {
			if errors.Is(err, io.EOF) {
				// A message that is all header: it ends here.
				if err := end(); err != nil {
					return h, err
				}
				if !h.hasFrom {
					return h, errNoFrom
				}
				return h, nil
			}
			return h, err
		}
		text := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		cont := len(text) > 0 && (text[0] == ' ' || text[0] == '\t')
		if !cont {
			if err := end(); err != nil {
				return h, err
			}
			if len(text) == 0 {
				break // the empty line: the body follows
			}
			colon := bytes.IndexByte(text, ':')
			if colon <= 0 {
				break // not a field: the body starts here (RFC 5322 allows no such thing, but readers treat it so)
			}
			n := strings.ToLower(string(bytes.TrimRight(text[:colon], " \t")))
			switch n {
			case "from", "sender", "tls-required":
				name = n
				value.Write(text[colon+1:])
			case "message-id":
				h.messageID = true
			case "date":
				h.date = true
			}
		} else if name != "" {
			value.Write(text)
		}
		if value.Len() > maxCheckedField {
			return h, errFieldTooLong
		}
		for long {
			// The rest of an over-long line: keep it if it belongs to a
			// field looked at, else skip it.
			line, err = br.ReadSlice('\n')
			long = errors.Is(err, bufio.ErrBufferFull)
			if name != "" {
				value.Write(bytes.TrimRight(line, "\r\n"))
				if value.Len() > maxCheckedField {
					return h, errFieldTooLong
				}
			}
			if err != nil && !long {
				return h, errHeaderUnended
			}
		}
	}
	if !h.hasFrom {
		return h, errNoFrom
	}
	return h, nil
}
