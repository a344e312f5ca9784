// Package dnstest runs a small DNS server on 127.0.0.1 for tests: it
// answers from records given in zone-file syntax, over UDP and TCP on one
// port, and can be told to fail, stay silent or claim DNSSEC validation.
// Tests of SPF, DKIM, DMARC, block lists, MX delivery, MTA-STS and DANE
// point Options.Server of package resolver (or dns.resolver of the
// binary) at Server.Addr.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running test DNS server.
type Server struct {
	// Addr is host:port, the same for UDP and TCP.
	Addr string

	udp, tcp *dns.Server
	queries  atomic.Int64

	mu        sync.Mutex
	records   map[key][]dns.RR // guarded by mu
	names     map[string]bool  // guarded by mu; names that exist
	rcodes    map[string]int   // guarded by mu; lower-case fqdn → forced rcode
	silent    map[string]bool  // guarded by mu; lower-case fqdn → never answer
	authentic bool             // guarded by mu; set AD in answers
	truncate  bool             // guarded by mu; set TC on UDP answers
}

type key struct {
	name  string
	qtype uint16
}

// Start runs a server answering records (zone-file lines such as
// "example.org. 300 IN MX 10 mx.example.org."); it stops when the test
// ends.
func Start(tb testing.TB, records ...string) *Server {
	tb.Helper()
	s := &Server{
		records: make(map[key][]dns.RR),
		names:   make(map[string]bool),
		rcodes:  make(map[string]int),
		silent:  make(map[string]bool),
	}
	if err := s.Add(records...); err != nil {
		tb.Fatal(err)
	}
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	// Bind UDP on a free port, then TCP on the same one; retry if another
	// process took the TCP side meanwhile.
	for range 20 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		tb.Fatalf("dnstest: no port free for UDP and TCP: %v", err)
	}
	s.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: ln, Handler: h}
	started := make(chan struct{}, 2)
	s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	<-started
	<-started
	tb.Cleanup(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
	return s
}

// Add adds records (zone-file syntax, absolute names).
func (s *Server) Add(records ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range records {
		rr, err := dns.NewRR(line)
		if err != nil {
			return fmt.Errorf("dnstest: %q: %w", line, err)
		}
		if rr == nil {
			continue
		}
		h := rr.Header()
		name := strings.ToLower(h.Name)
		k := key{name, h.Rrtype}
		s.records[k] = append(s.records[k], rr)
		s.names[name] = true
	}
	return nil
}

// Replace removes every record of name and type qtype (dns.TypeMX, …),
// then adds records.
func (s *Server) Replace(name string, qtype uint16, records ...string) error {
	s.mu.Lock()
	delete(s.records, key{strings.ToLower(dns.Fqdn(name)), qtype})
	s.mu.Unlock()
	return s.Add(records...)
}

// Fail makes every query for name answer rcode (dns.RcodeServerFailure,
// dns.RcodeRefused, …); 0 restores normal answers.
func (s *Server) Fail(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := strings.ToLower(dns.Fqdn(name))
	if rcode == 0 {
		delete(s.rcodes, n)
		return
	}
	s.rcodes[n] = rcode
}

// Silence makes the server drop every query for name (a timeout for the
// client); false restores it.
func (s *Server) Silence(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent[strings.ToLower(dns.Fqdn(name))] = on
}

// SetAuthentic sets whether answers claim DNSSEC validation (the AD bit),
// as a validating resolver does for signed zones.
func (s *Server) SetAuthentic(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authentic = on
}

// SetTruncate makes UDP answers come back truncated, so clients must
// retry over TCP.
func (s *Server) SetTruncate(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = on
}

// Queries is how many queries the server has received.
func (s *Server) Queries() int64 { return s.queries.Load() }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	silent := s.silent[name]
	rcode, failed := s.rcodes[name]
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.AuthenticatedData = s.authentic
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	truncate := s.truncate && isUDP
	switch {
	case failed:
		m.Rcode = rcode
	default:
		// Follow CNAMEs within our records, as a recursive resolver would.
		cur := name
		for range 8 {
			if cn, ok := s.records[key{cur, dns.TypeCNAME}]; ok && q.Qtype != dns.TypeCNAME {
				m.Answer = append(m.Answer, cn[0])
				cur = strings.ToLower(cn[0].(*dns.CNAME).Target)
				continue
			}
			m.Answer = append(m.Answer, s.records[key{cur, q.Qtype}]...)
			break
		}
		if len(m.Answer) == 0 && !s.names[name] {
			m.Rcode = dns.RcodeNameError
		}
		if len(m.Answer) == 0 {
			m.Ns = []dns.RR{&dns.SOA{
				Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
				Ns:  "ns.test.", Mbox: "hostmaster.test.", Serial: 1,
				Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60,
			}}
		}
	}
	s.mu.Unlock()
	if silent {
		return
	}
	if truncate {
		m.Answer, m.Ns = nil, nil
		m.Truncated = true
	}
	w.WriteMsg(m)
}
