package imap

import "github.com/emersion/go-imap/v2"

// WITHIN (RFC 5032): the search keys OLDER n and YOUNGER n compare a
// message's internal date with the time the SEARCH began (search.go's
// searchMsg.match): OLDER matches a message saved at least n seconds
// before, YOUNGER one saved less than n seconds before. A CONTEXT=SEARCH
// result kept current (RETURN (UPDATE)) is re-evaluated on the changes
// it already follows, not as time passes (RFC 5032 §3 leaves that to the
// server).

// withinCaps are the capabilities of this file.
var withinCaps = []imap.Cap{imap.CapWithin}
