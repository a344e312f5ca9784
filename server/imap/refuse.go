package imap

import (
	"io"
	"net"
)

// Refuse tells a client over a connection limit to come back later, as
// its greeting (RFC 9051 §7.1.5 BYE, RFC 5530 UNAVAILABLE), on c, which
// the caller closes. It is the Refuse hook for server/listener on
// plaintext listeners; implicit-TLS clients are closed without a word.
func (s *Server) Refuse(c net.Conn) {
	io.WriteString(c, "* BYE [UNAVAILABLE] Too many connections, try again later\r\n")
}
