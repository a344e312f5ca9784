package keyserver

import (
	"bytes"
	"encoding/xml"
	"net/http"
)

// wellKnownAutoconfig is where Thunderbird looks on the mail domain itself;
// on autoconfig.<domain> it first tries /mail/config-v1.1.xml.
const wellKnownAutoconfig = "/.well-known/autoconfig/mail/config-v1.1.xml"

// The clientConfig document, version 1.1, as Thunderbird's account setup
// reads it (comm-central mailnews/…/accountcreation readFromXML). Fields
// written, and what Thunderbird requires of them:
//
//   - clientConfig@version "1.1".
//   - emailProvider@id: a non-empty string; we use the domain.
//   - emailProvider/domain: one or more host names the file is valid for.
//   - displayName, displayShortName: labels shown to the user.
//   - incomingServer@type "imap", one per endpoint; the first is used and
//     the rest are offered as alternatives. At least one is required.
//     POP3 endpoints follow as incomingServer@type "pop3" alternatives.
//   - outgoingServer@type "smtp": at least one is required, or Thunderbird
//     rejects the whole file.
//   - hostname: a host name; port: 1–65535.
//   - socketType: "SSL" (implicit TLS) or "STARTTLS"; "plain" is never
//     written because sealmail refuses authentication without TLS.
//   - authentication: "password-cleartext" (SASL PLAIN inside TLS, the
//     only password mechanism sealmail offers).
//   - username: "%EMAILADDRESS%", which Thunderbird replaces with the
//     address the user typed: sealmail's login is the full address.
type clientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider emailProvider `xml:"emailProvider"`
}

type emailProvider struct {
	ID               string         `xml:"id,attr"`
	Domain           []string       `xml:"domain"`
	DisplayName      string         `xml:"displayName"`
	DisplayShortName string         `xml:"displayShortName"`
	Incoming         []clientServer `xml:"incomingServer"`
	Outgoing         []clientServer `xml:"outgoingServer"`
}

type clientServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}

func socketType(m TLSMode) string {
	if m == StartTLS {
		return "STARTTLS"
	}
	return "SSL"
}

func clientServers(kind string, eps []Endpoint) []clientServer {
	out := make([]clientServer, 0, len(eps))
	for _, e := range eps {
		out = append(out, clientServer{
			Type:           kind,
			Hostname:       e.Host,
			Port:           e.Port,
			SocketType:     socketType(e.TLS),
			Authentication: "password-cleartext",
			Username:       "%EMAILADDRESS%",
		})
	}
	return out
}

// autoconfigXML renders the clientConfig document for domain.
func (c *config) autoconfigXML(domain string) ([]byte, error) {
	doc := clientConfig{
		Version: "1.1",
		Provider: emailProvider{
			ID:               domain,
			Domain:           []string{domain},
			DisplayName:      domain,
			DisplayShortName: domain,
			Incoming:         append(clientServers("imap", c.imap), clientServers("pop3", c.pop3)...),
			Outgoing:         clientServers("smtp", c.submission),
		},
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func (h *Handler) serveAutoconfig(w http.ResponseWriter, domain string) {
	body, ok := h.config[domain]
	if !ok {
		httpError(w, http.StatusNotFound)
		return
	}
	writeBody(w, "application/xml; charset=utf-8", body)
}
