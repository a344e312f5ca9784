package smtp

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sealmail/sealmail/server/smtp/inbound"
)

func TestSpliceReader(t *testing.T) {
	msg := "Return-Path: <a@b>\r\nX-Spam-Status: forged\r\nA: 1\r\nAuthentication-Results: mx; x\r\n\r\nbody\r\n"
	rp := int64(strings.Index(msg, "\n") + 1)
	s1 := strings.Index(msg, "X-Spam")
	e1 := strings.Index(msg, "A: 1")
	s2 := strings.Index(msg, "Authentication")
	e2 := strings.Index(msg, "\r\n\r\n") + 2
	cp := copyPlan{rpLen: rp, plan: &inbound.Plan{
		Header:   []byte("Authentication-Results: ours\r\n"),
		Accounts: []inbound.AccountPlan{{Header: []byte("X-Spam-Status: No\r\n")}},
		Strip:    []inbound.Range{{Start: int64(s1), End: int64(e1)}, {Start: int64(s2), End: int64(e2)}},
	}}
	want := "Return-Path: <a@b>\r\nAuthentication-Results: ours\r\nX-Spam-Status: No\r\nA: 1\r\n\r\nbody\r\n"
	for _, wrap := range []func(io.Reader) io.Reader{func(r io.Reader) io.Reader { return r }, iotest.OneByteReader, iotest.HalfReader} {
		got, err := io.ReadAll(cp.copyOf(0, wrap(strings.NewReader(msg))))
		if err != nil || string(got) != want {
			t.Errorf("copy:\n%q, %v\nwant\n%q", got, err, want)
		}
	}
	// The zero plan copies as it is.
	if got, _ := io.ReadAll(copyPlan{}.copyOf(0, strings.NewReader(msg))); string(got) != msg {
		t.Errorf("zero plan: %q", got)
	}
}
