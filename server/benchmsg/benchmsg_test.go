package benchmsg

import (
	"bytes"
	"testing"
)

func TestMessage(t *testing.T) {
	a, b := Message(100, "u@example.org", 10<<10, "quokka"), Message(100, "u@example.org", 10<<10, "quokka")
	if !bytes.Equal(a, b) {
		t.Error("not deterministic")
	}
	if len(a) < 10<<10 || len(a) > 11<<10 {
		t.Errorf("size %d", len(a))
	}
	if !bytes.Contains(a, []byte("quokka")) || bytes.Contains(Message(101, "u@example.org", 10<<10, "quokka"), []byte("quokka")) {
		t.Error("the word is not in message 100 alone")
	}
}
