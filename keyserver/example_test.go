package keyserver_test

import (
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/sealmail/sealmail/keyserver"
)

func ExampleWKDHash() {
	// The example of draft-koch-openpgp-webkey-service §3.1; GnuPG's
	// `gpg-wks-client --print-wkd-hash Joe.Doe@Example.ORG` agrees.
	fmt.Println(keyserver.WKDHash("Joe.Doe"))
	// Output: iy9q119eutrkn8s1mk4r39qejnbu3n5q
}

func ExampleNew() {
	h, err := keyserver.New(keyserver.Options{
		Keys:       nil, // a store.Store, e.g. *badgerstore.DB; nil turns WKD off
		Hostname:   "mail.example.org",
		Domains:    []string{"example.org"},
		IMAP:       []keyserver.Endpoint{{Port: 993, TLS: keyserver.ImplicitTLS}},
		Submission: []keyserver.Endpoint{{Port: 465, TLS: keyserver.ImplicitTLS}},
		MTASTS:     &keyserver.MTASTSPolicy{Mode: "enforce", MX: []string{"mail.example.org"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	m := keyserver.NewAutocert(keyserver.AutocertOptions{
		Dir:      "/var/lib/sealmail/acme",
		Hostname: "mail.example.org",
		Domains:  []string{"example.org"},
	})
	srv := &http.Server{
		Addr:              ":443",
		Handler:           h,
		TLSConfig:         m.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	_ = srv // srv.ListenAndServeTLS("", "") serves it
}

func ExampleDNSRecords() {
	zone, err := keyserver.DNSRecords("example.org", keyserver.Options{
		Hostname:   "mail.example.org",
		Domains:    []string{"example.org"},
		IMAP:       []keyserver.Endpoint{{Port: 993, TLS: keyserver.ImplicitTLS}},
		Submission: []keyserver.Endpoint{{Port: 465, TLS: keyserver.ImplicitTLS}},
		MTASTS:     &keyserver.MTASTSPolicy{Mode: "enforce", MX: []string{"mail.example.org"}},
		DKIM: []keyserver.DKIMKey{{Domain: "example.org", Selector: "ed-20261201", Status: "active",
			Record: "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(zone)
	// Output:
	// ; DNS records for example.org, served by sealmail on mail.example.org.
	// ; mail.example.org needs A and/or AAAA records for this server, and matching PTR records.
	// example.org.                        3600 IN MX    10 mail.example.org.
	// example.org.                        3600 IN TXT   "v=spf1 mx -all"
	// ed-20261201._domainkey.example.org. 3600 IN TXT   "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	// _dmarc.example.org.                 3600 IN TXT   "v=DMARC1; p=reject; rua=mailto:postmaster@example.org"
	// openpgpkey.example.org.             3600 IN CNAME mail.example.org.
	// autoconfig.example.org.             3600 IN CNAME mail.example.org.
	// mta-sts.example.org.                3600 IN CNAME mail.example.org.
	// _mta-sts.example.org.               3600 IN TXT   "v=STSv1; id=d06fe1c1cd7004a7686c;"
	// _smtp._tls.example.org.             3600 IN TXT   "v=TLSRPTv1; rua=mailto:postmaster@example.org"
	// _imaps._tcp.example.org.            3600 IN SRV   0 1 993 mail.example.org.
	// _submissions._tcp.example.org.      3600 IN SRV   0 1 465 mail.example.org.
	// _pop3._tcp.example.org.             3600 IN SRV   0 0 0 .
	// _pop3s._tcp.example.org.            3600 IN SRV   0 0 0 .
	// ; DMARC p=reject: mail claiming to be from example.org that neither SPF nor DKIM vouches for is refused.
	// ; Start with p=none if other services send mail as example.org and you have not listed them yet.
	// ; The WKD direct method is https://example.org/.well-known/openpgpkey/: proxy or redirect it
	// ; to this server if example.org's web server is elsewhere; clients try openpgpkey.example.org first.
}
