package testutil

import "github.com/sealmail/sealmail/server/benchmsg"

// BenchMessage returns message i of a benchmark's mailbox: a text/plain
// message to the address to, of about size bytes of random words,
// deterministic in i, with word in every 100th message (see
// benchmsg.Message, which cmd/sealbench shares so that its harness
// measures the same data set).
func BenchMessage(i int, to string, size int, word string) []byte {
	return benchmsg.Message(i, to, size, word)
}
