package dkim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/sealmail/sealmail/server/smtp"
)

// Defaults for the zero SignerOptions.
const (
	// DefaultMaxHeaderBytes bounds the header section a signer holds in
	// memory (go-msgauth parses it whole). Real headers are a few KiB;
	// a long thread's References field a few tens.
	DefaultMaxHeaderBytes = 1 << 20
	// DefaultMaxBlankRun bounds a run of consecutive line breaks in a
	// body: go-msgauth's body canonicalizers hold such a run in memory
	// until a line with content follows (see doc.go).
	DefaultMaxBlankRun = 1 << 20
)

// SignerOptions configures NewSigner.
type SignerOptions struct {
	// Keys holds the domains' keys. Required.
	Keys *Keys
	// MaxHeaderBytes bounds the header section of a message to sign; a
	// larger one is refused (552 5.3.4). 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxBlankRun bounds a run of line break bytes (CR, LF) in the body;
	// a longer one is refused (552 5.3.4). 0 means DefaultMaxBlankRun.
	MaxBlankRun int64
	// Logger gets a warning when a message goes out unsigned because its
	// domain has no key. nil discards.
	Logger *slog.Logger
}

// Signer signs submitted messages: a Transform (smtp.Transform) that
// returns a DKIM-Signature field (RFC 6376) per active key of the
// sender's domain, RSA first, then Ed25519 (RFC 8463). Safe for
// concurrent use.
type Signer struct {
	keys      *Keys        // immutable
	maxHeader int          // immutable
	maxBlank  int64        // immutable
	log       *slog.Logger // immutable
}

var _ smtp.Transform = (*Signer)(nil)

// NewSigner returns a Signer.
func NewSigner(opt SignerOptions) (*Signer, error) {
	if opt.Keys == nil {
		return nil, errors.New("dkim: signer without keys")
	}
	if opt.MaxHeaderBytes < 0 || opt.MaxBlankRun < 0 {
		return nil, errors.New("dkim: negative limit")
	}
	s := &Signer{keys: opt.Keys, maxHeader: opt.MaxHeaderBytes, maxBlank: opt.MaxBlankRun, log: opt.Logger}
	if s.maxHeader == 0 {
		s.maxHeader = DefaultMaxHeaderBytes
	}
	if s.maxBlank == 0 {
		s.maxBlank = DefaultMaxBlankRun
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Replies for messages a signer cannot take. RFC 3463: X.3.4 is "message
// too big for system".
var (
	replyHeaderTooLarge = &smtp.Reply{Code: 552, Enhanced: "5.3.4", Text: "Message header too large"}
	replyBlankRun       = &smtp.Reply{Code: 552, Enhanced: "5.3.4", Text: "Too many consecutive empty lines in the message"}
)

// Transform implements smtp.Transform: it signs for the domains of the
// From: addresses (DMARC aligns with them, RFC 7489 §3.1.1), or, if none
// of them has keys, for the envelope sender's domain. A message whose
// domains have no key goes out unsigned, with a warning in the log.
func (s *Signer) Transform(ctx context.Context, m *smtp.Submitted, msg io.Reader) ([]byte, error) {
	domains := signingDomains(m.HeaderFrom)
	if !s.anyKeys(domains) {
		domains = signingDomains([]string{m.From})
	}
	if !s.anyKeys(domains) {
		s.log.Warn("dkim: no key for the sender's domain; message not signed", "id", m.ID, "account", m.Account)
		return nil, nil
	}
	return s.Sign(ctx, domains, msg)
}

func (s *Signer) anyKeys(domains []string) bool {
	for _, d := range domains {
		if ks, err := s.keys.activeKeys(d); err == nil && len(ks) > 0 {
			return true
		}
	}
	return false
}

// signingDomains is the distinct domains of addrs (canonical addresses),
// in order.
func signingDomains(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		i := strings.LastIndexByte(a, '@')
		if i < 0 || i == len(a)-1 {
			continue
		}
		d := a[i+1:]
		if !containsString(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Sign reads a message (CRLF line ends) from msg and returns the
// DKIM-Signature fields of every active key of domains (A-labels), to be
// prepended to it. Domains without keys are skipped. The body is
// streamed: memory is bounded by MaxHeaderBytes and MaxBlankRun, not by
// the message's size.
//
// A message that exceeds those bounds gets an *smtp.Reply error.
func (s *Signer) Sign(ctx context.Context, domains []string, msg io.Reader) ([]byte, error) {
	var keys []*signingKey
	for _, d := range domains {
		ks, err := s.keys.activeKeys(d)
		if err != nil {
			return nil, err
		}
		keys = append(keys, ks...)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	br := bufio.NewReaderSize(msg, 32<<10)
	hdr, err := readHeaderSection(br, s.maxHeader)
	if err != nil {
		return nil, err
	}
	fields := headerKeys(hdr)
	signers := make([]*msgauth.Signer, 0, len(keys))
	writers := make([]io.Writer, 0, len(keys))
	defer func() {
		for _, sg := range signers {
			sg.Close() // no-op after a successful Close; ends the goroutine otherwise
		}
	}()
	for _, k := range keys {
		sg, err := msgauth.NewSigner(&msgauth.SignOptions{
			Domain:                 k.domain,
			Selector:               k.selector,
			Signer:                 k.key,
			HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
			BodyCanonicalization:   msgauth.CanonicalizationRelaxed,
			HeaderKeys:             fields,
		})
		if err != nil {
			return nil, fmt.Errorf("dkim: signer for %s selector %s: %w", k.domain, k.selector, err)
		}
		signers = append(signers, sg)
		writers = append(writers, sg)
	}
	w := io.MultiWriter(writers...)
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("dkim: sign: %w", err)
	}
	if err := s.copyBody(ctx, w, br); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for i, sg := range signers {
		if err := sg.Close(); err != nil {
			return nil, fmt.Errorf("dkim: sign for %s selector %s: %w", keys[i].domain, keys[i].selector, err)
		}
		out.WriteString(sg.Signature())
	}
	return out.Bytes(), nil
}

// copyBody streams the body to w, refusing a run of line breaks longer
// than maxBlank. It stops when ctx ends.
func (s *Signer) copyBody(ctx context.Context, w io.Writer, r io.Reader) error {
	buf := make([]byte, 32<<10)
	var run int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(buf)
		if n > 0 {
			for _, c := range buf[:n] {
				if c != '\r' && c != '\n' {
					run = 0
				} else if run++; run > s.maxBlank {
					return replyBlankRun
				}
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return fmt.Errorf("dkim: sign: %w", werr)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dkim: read message: %w", err)
		}
	}
}

// readHeaderSection reads the header section and the empty line after it
// (RFC 5322 §2.1). A message that ends within its header (no body) gets
// the empty line added, as if its body were empty, so that go-msgauth
// can parse it; verifiers treat both alike.
func readHeaderSection(br *bufio.Reader, max int) ([]byte, error) {
	var hdr []byte
	atLineStart := true
	for {
		line, err := br.ReadSlice('\n')
		if len(hdr)+len(line) > max {
			return nil, replyHeaderTooLarge
		}
		if atLineStart && (bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n"))) {
			return append(hdr, "\r\n"...), nil
		}
		hdr = append(hdr, line...)
		atLineStart = len(line) > 0 && line[len(line)-1] == '\n'
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
			if !atLineStart && len(hdr) > 0 {
				hdr = append(hdr, "\r\n"...)
			}
			return append(hdr, "\r\n"...), nil
		default:
			return nil, fmt.Errorf("dkim: read message: %w", err)
		}
	}
}

// Header fields signed, following RFC 6376 §5.4.1's list and §5.4.2 on
// signing more instances than present ("oversigning"), so that a field
// added in transit breaks the signature:
//
//   - always: one more instance than present, also when absent: adding
//     a From, To, Cc, Subject or Reply-To must break the signature.
//   - ifPresent: the instances present plus one; nothing when absent,
//     so that a mailing list may add a Sender or List-Id of its own.
//   - asIs: the instances present only.
//
// Never signed: Received and Return-Path (added in transit, §5.4),
// DKIM-Signature, TLS-Required (RFC 8689 §5: relays may drop it), Bcc.
var (
	signAlways    = []string{"From", "Reply-To", "Subject", "To", "Cc"}
	signIfPresent = []string{"Date", "Message-ID", "Sender", "In-Reply-To", "References",
		"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
		"Autocrypt", "OpenPGP"}
	signAsIs = []string{"Resent-Date", "Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc",
		"Resent-Message-ID", "List-Id", "List-Help", "List-Unsubscribe", "List-Unsubscribe-Post",
		"List-Subscribe", "List-Post", "List-Owner", "List-Archive", "Content-ID", "Content-Description"}
)

// headerKeys returns the h= list for a header section.
func headerKeys(hdr []byte) []string {
	count := map[string]int{}
	for _, line := range bytes.Split(hdr, []byte("\n")) {
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		count[strings.ToLower(strings.TrimSpace(string(name)))]++
	}
	var out []string
	add := func(name string, n int) {
		for range n {
			out = append(out, name)
		}
	}
	for _, f := range signAlways {
		add(f, count[strings.ToLower(f)]+1)
	}
	for _, f := range signIfPresent {
		if n := count[strings.ToLower(f)]; n > 0 {
			add(f, n+1)
		}
	}
	for _, f := range signAsIs {
		add(f, count[strings.ToLower(f)])
	}
	return out
}
