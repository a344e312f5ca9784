package imap

import "github.com/emersion/go-imap/v2"

// COMPRESS=DEFLATE (RFC 4978) is the wire layer's entirely: the
// dispatcher answers COMPRESS and switches the connection's reader and
// writer to DEFLATE; the session never sees it. Decompressed input is
// bounded like any other (line, literal and command limits apply after
// inflation), so a small compressed command cannot buy a large buffer.

// compressCaps are the capabilities of this file.
var compressCaps = []imap.Cap{"COMPRESS=DEFLATE"}
