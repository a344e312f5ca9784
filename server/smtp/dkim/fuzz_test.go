package dkim

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/sealmail/sealmail/server/smtp"
)

var (
	fuzzOnce   sync.Once
	fuzzSigner *Signer
	fuzzTXT    map[string]string
)

// fuzzSetup makes one key store for every fuzz run: key generation is
// slow.
func fuzzSetup(f *testing.F) {
	fuzzOnce.Do(func() {
		k, err := Open(Options{Dir: f.TempDir()})
		if err != nil {
			f.Fatal(err)
		}
		if _, err := k.Ensure([]string{"example.org"}); err != nil {
			f.Fatal(err)
		}
		recs, _ := k.Records("example.org")
		fuzzTXT = map[string]string{}
		for _, s := range recs {
			fuzzTXT[s.DNSName()] = s.TXT()
		}
		fuzzSigner, _ = NewSigner(SignerOptions{Keys: k, MaxHeaderBytes: 8 << 10, MaxBlankRun: 4 << 10})
	})
}

// wellFormed: CRLF line ends only, header fields "Name: value" with
// folded continuations, an empty line, then the body: what submission
// hands the signer (it refuses bare CR, LF and NUL).
var fieldRE = regexp.MustCompile(`^[!-9;-~]+:[^\r\n]*\r\n([ \t][^\r\n]*\r\n)*`)

func wellFormed(msg []byte) bool {
	if bytes.IndexByte(msg, 0) >= 0 || bytes.Count(msg, []byte("\r")) != bytes.Count(msg, []byte("\n")) ||
		bytes.Count(msg, []byte("\r\n")) != bytes.Count(msg, []byte("\n")) {
		return false
	}
	hdr, _, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
	if !ok {
		return false
	}
	rest := append(slicesClone(hdr), "\r\n"...)
	for len(rest) > 0 {
		loc := fieldRE.FindIndex(rest)
		if loc == nil || loc[0] != 0 {
			return false
		}
		rest = rest[loc[1]:]
	}
	return true
}

// FuzzSign: no message makes the signer panic or fail other than with
// its two refusals, and a well-formed message's signatures verify with
// go-msgauth.
func FuzzSign(f *testing.F) {
	fuzzSetup(f)
	f.Add([]byte(testMessage))
	f.Add([]byte("From: a@example.org\r\nSubject: x\r\n\r\n"))
	f.Add([]byte("From: a@example.org\r\n folded\r\nTo: b\r\n\r\n\r\n\r\nbody \t \r\n\r\n"))
	f.Add([]byte("From: a@example.org"))
	f.Add([]byte("\r\n\r\nbody"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fields, err := fuzzSigner.Sign(ctxBg, []string{"example.org"}, bytes.NewReader(msg))
		var rep *smtp.Reply
		if errors.As(err, &rep) {
			return
		}
		if err != nil {
			if wellFormed(msg) {
				t.Fatalf("sign: %v", err)
			}
			return
		}
		for _, line := range strings.Split(string(fields), "\r\n") {
			if len(line) > 998 {
				t.Fatalf("signature line of %d bytes", len(line))
			}
		}
		if !wellFormed(msg) {
			return
		}
		vs, err := msgauth.VerifyWithOptions(bytes.NewReader(append(fields, msg...)), &msgauth.VerifyOptions{
			LookupTXT: func(name string) ([]string, error) { return []string{fuzzTXT[name]}, nil },
		})
		if err != nil || len(vs) != 2 {
			t.Fatalf("verify: %v, %d signatures", err, len(vs))
		}
		for _, v := range vs {
			if v.Err != nil {
				t.Fatalf("signature does not verify: %v\n%q", v.Err, msg)
			}
		}
	})
}
