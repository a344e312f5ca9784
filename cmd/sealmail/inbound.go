package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/netip"
	"time"

	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/filter"
	imapserver "github.com/sealmail/sealmail/server/imap"
	"github.com/sealmail/sealmail/server/smtp/inbound"
	"github.com/sealmail/sealmail/server/smtp/resolver"
	"github.com/sealmail/sealmail/server/smtp/trace"
	"github.com/sealmail/sealmail/store"
)

// DNSConfig is the one DNS client of the mail paths.
type DNSConfig struct {
	// Resolver is the recursive resolver, host:port or an IP; "": the
	// first nameserver of /etc/resolv.conf.
	Resolver string        `yaml:"resolver" default:""`
	Timeout  time.Duration `yaml:"timeout" default:"5s" min:"1ms"`
	// DNSSEC trusts the resolver's DNSSEC validation (the AD bit) for
	// DANE and for REQUIRETLS over DNSSEC-signed MX records.
	DNSSEC bool `yaml:"dnssec" default:"true"`
}

// InboundConfig is the MX's inbound policy (server/smtp/inbound and
// policy.InboundOptions).
type InboundConfig struct {
	Checks          bool     `yaml:"checks" default:"true"`
	Trusted         []string `yaml:"trusted_networks" default:"127.0.0.0/8,::1/128"`
	SPFFail         string   `yaml:"spf_fail" default:"reject"`
	DMARCReject     string   `yaml:"dmarc_reject" default:"reject"`
	DMARCQuarantine string   `yaml:"dmarc_quarantine" default:"junk"`
	DMARCMarkOnly   []string `yaml:"dmarc_mark_only" default:""`
	DNSBL           []string `yaml:"dnsbl" default:""`
	DomainLists     []string `yaml:"domain_lists" default:""`
	CountryZone     string   `yaml:"country_zone" default:""`
	RefuseCountries []string `yaml:"refuse_countries" default:""`
	CountryScores   []string `yaml:"country_scores" default:""`
	ListReject      int      `yaml:"list_reject" default:"10"`
	JunkScore       int      `yaml:"junk_score" default:"5"`
	RejectScore     int      `yaml:"reject_score" default:"15"`
	SpamWeight      int      `yaml:"spam_weight" default:"10" min:"0"`
	Greylist        bool     `yaml:"greylist" default:"false"`
	// GreylistDelay is how long a new sender waits; GreylistAutoAllow
	// how many deliveries let its network skip greylisting (0: never).
	GreylistDelay     time.Duration `yaml:"greylist_delay" default:"5m"`
	GreylistAutoAllow int           `yaml:"greylist_auto_allow" default:"5" min:"0"`
	// ShareTraining makes users' training train the organisation's
	// model too.
	ShareTraining bool `yaml:"share_training" default:"false"`
	// TraceRetention is how long inbound verdicts stay in the delivery
	// trace (outbound.trace_retention is the queue's).
	TraceRetention time.Duration `yaml:"trace_retention" default:"720h"`
}

// validate checks the inbound policy as the packages will read it.
func (c *Config) validateInbound() error {
	if err := resolver.CheckServer(c.DNS.Resolver); err != nil {
		return fmt.Errorf("config: dns.resolver: %w", err)
	}
	if _, err := c.Inbound.policy(); err != nil {
		return fmt.Errorf("config: inbound: %w", err)
	}
	if _, err := c.Inbound.trusted(); err != nil {
		return fmt.Errorf("config: inbound.trusted_networks: %w", err)
	}
	if _, err := zones(c.Inbound.DNSBL, float64(c.Inbound.ListReject)); err != nil {
		return fmt.Errorf("config: inbound.dnsbl: %w", err)
	}
	if _, err := zones(c.Inbound.DomainLists, float64(c.Inbound.ListReject)); err != nil {
		return fmt.Errorf("config: inbound.domain_lists: %w", err)
	}
	if c.Inbound.CountryZone != "" {
		if _, err := policy.NormalizeDomain(c.Inbound.CountryZone); err != nil {
			return fmt.Errorf("config: inbound.country_zone: %w", err)
		}
	} else if len(c.Inbound.RefuseCountries) > 0 || len(c.Inbound.CountryScores) > 0 {
		return errors.New("config: inbound.refuse_countries and inbound.country_scores need inbound.country_zone")
	}
	return nil
}

func (ic *InboundConfig) policy() (*policy.Inbound, error) {
	return policy.NewInbound(policy.InboundOptions{
		SPFFail:         policy.MarkAction(ic.SPFFail),
		DMARCReject:     policy.MarkAction(ic.DMARCReject),
		DMARCQuarantine: policy.MarkAction(ic.DMARCQuarantine),
		DMARCMarkOnly:   ic.DMARCMarkOnly,
		ListReject:      float64(ic.ListReject),
		JunkScore:       float64(ic.JunkScore),
		RejectScore:     float64(ic.RejectScore),
		SpamWeight:      float64(ic.SpamWeight),
		RefuseCountries: ic.RefuseCountries,
		CountryScores:   ic.CountryScores,
	})
}

func (ic *InboundConfig) trusted() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ic.Trusted {
		p, err := inbound.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		out = append(out, p)
	}
	return out, nil
}

func zones(list []string, def float64) ([]inbound.Zone, error) {
	var out []inbound.Zone
	for _, s := range list {
		z, err := inbound.ParseZone(s, def)
		if err != nil {
			return nil, err
		}
		out = append(out, z)
	}
	return out, nil
}

// inboundParts are the inbound policy's pieces that serve builds and the
// CLI's local admin uses.
type inboundParts struct {
	filter  *filter.Service
	checker *inbound.Checker   // nil when inbound.checks is off
	res     *resolver.Resolver // the checker's; nil when inbound.checks is off
	codec   *trace.Codec
	writer  *trace.Writer // nil outside serve
}

// close stops the trace writer, writing what is queued.
func (p *inboundParts) close() {
	if p != nil && p.writer != nil {
		p.writer.Close()
	}
}

// newFilter builds the classifier over st.
func newFilter(c *Config, st filter.Store, log *slog.Logger) (*filter.Service, error) {
	return filter.New(filter.Options{Store: st, Logger: log, ShareTraining: c.Inbound.ShareTraining})
}

// newInboundParts builds the classifier, the trace codec and, for serve
// (withChecks), the trace writer and the checker.
func newInboundParts(c *Config, st store.Store, fs *filter.Service, log *slog.Logger, withChecks bool) (*inboundParts, error) {
	key, err := loadServerKey(c)
	if err != nil {
		return nil, err
	}
	codec, err := trace.NewCodec(key)
	clear(key)
	if err != nil {
		return nil, err
	}
	p := &inboundParts{filter: fs, codec: codec}
	if !withChecks {
		return p, nil
	}
	p.writer = trace.NewWriter(trace.WriterOptions{Codec: codec, Store: st, Retention: c.Inbound.TraceRetention,
		Kinds: []store.TraceKind{store.TraceInbound}, Logger: log})
	if !c.Inbound.Checks {
		log.Warn("inbound.checks is off: no SPF, DKIM, DMARC, lists or spam filtering")
		return p, nil
	}
	res, err := newResolver(c, log)
	if err != nil {
		p.close()
		return nil, err
	}
	p.res = res
	pol, _ := c.Inbound.policy() // validated
	trusted, _ := c.Inbound.trusted()
	ipz, _ := zones(c.Inbound.DNSBL, float64(c.Inbound.ListReject))
	dz, _ := zones(c.Inbound.DomainLists, float64(c.Inbound.ListReject))
	auto := c.Inbound.GreylistAutoAllow
	if auto == 0 {
		auto = -1 // never
	}
	p.checker, err = inbound.New(inbound.Options{
		Hostname: c.Hostname, Domains: c.Domains, Resolver: res, Store: st, Classifier: fs, Tracer: p.writer,
		Policy: pol, IPZones: ipz, DomainZones: dz, CountryZone: c.Inbound.CountryZone, Trusted: trusted,
		Greylist: inbound.GreylistOptions{Enabled: c.Inbound.Greylist, Delay: c.Inbound.GreylistDelay, AutoAllow: auto},
		Logger:   log,
	})
	if err != nil {
		p.close()
		return nil, err
	}
	log.Info("inbound checks on", "resolver", res.Server(), "dnsbl", len(ipz), "domain_lists", len(dz),
		"country_zone", c.Inbound.CountryZone, "greylist", c.Inbound.Greylist)
	return p, nil
}

// trainer adapts the filter to server/imap's Trainer.
type trainer struct{ fs *filter.Service }

func (t trainer) Learn(ctx context.Context, account string, keys imapserver.IndexKeys, spam bool, msgs iter.Seq2[io.Reader, error]) error {
	_, err := t.fs.Learn(ctx, account, keys, spam, msgs)
	return err
}
