package smtp

import "time"

// Metrics hears, for monitoring, how commands and messages end
// (cmd/sealmail exports it to Prometheus). It is told the server's own
// reply codes and fixed command names, never anything a client sent.
// Its methods are called from connection goroutines: they must be cheap,
// must not block, and must be safe for concurrent use.
type Metrics interface {
	// Command is called after each command line with its verb (one the
	// server knows, upper case, or "other"; a line that does not parse
	// is "other" too) and the last reply it got.
	Command(verb string, code int, enhanced string)
	// Message is called once for each message whose data has ended (DATA
	// or the last BDAT chunk), with its reply (250 2.0.0 when delivered)
	// and the time from the end of the data to that reply: the checks,
	// sealing and the durable commit.
	Message(code int, enhanced string, d time.Duration)
}

// knownVerbs are the command names Metrics hears as they are.
var knownVerbs = map[string]bool{
	"EHLO": true, "HELO": true, "MAIL": true, "RCPT": true, "DATA": true, "BDAT": true, "RSET": true,
	"NOOP": true, "QUIT": true, "VRFY": true, "HELP": true, "STARTTLS": true, "AUTH": true, "EXPN": true,
}

// metricVerb is verb as Metrics hears it.
func metricVerb(verb string) string {
	if knownVerbs[verb] {
		return verb
	}
	return "other"
}

// countCommand tells Metrics how the command that got the last reply
// ended.
func (c *conn) countCommand(verb string) {
	if m := c.srv.opt.Metrics; m != nil && c.last != nil {
		m.Command(metricVerb(verb), c.last.Code, c.last.Enhanced)
	}
}

// countMessage tells Metrics how a message ended.
func (c *conn) countMessage(rep *Reply, dataEnd time.Time) {
	if m := c.srv.opt.Metrics; m != nil {
		code, enh := 250, "2.0.0"
		if rep != nil {
			code, enh = rep.Code, rep.Enhanced
		}
		m.Message(code, enh, time.Since(dataEnd))
	}
}
