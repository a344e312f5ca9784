package keyserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
)

// mtastsText renders an RFC 8461 §3.2 policy: "key: value" lines ending in
// CRLF, version first.
func mtastsText(p *MTASTSPolicy) []byte {
	var b bytes.Buffer
	b.WriteString("version: STSv1\r\n")
	b.WriteString("mode: " + p.Mode + "\r\n")
	for _, mx := range p.MX {
		b.WriteString("mx: " + mx + "\r\n")
	}
	b.WriteString("max_age: " + strconv.FormatInt(int64(p.MaxAge.Seconds()), 10) + "\r\n")
	return b.Bytes()
}

// mtastsID is the policy id for the _mta-sts TXT record (RFC 8461 §3.1:
// 1–32 alphanumerics, changed whenever the policy changes). Deriving it
// from the policy text changes it exactly then.
func mtastsID(policy []byte) string {
	sum := sha256.Sum256(policy)
	return hex.EncodeToString(sum[:10])
}

func (h *Handler) serveMTASTS(w http.ResponseWriter) {
	if h.mtasts == nil {
		httpError(w, http.StatusNotFound)
		return
	}
	// RFC 8461 §3.3: media type text/plain.
	writeBody(w, "text/plain; charset=utf-8", h.mtasts)
}
