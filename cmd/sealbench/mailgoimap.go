package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// goIMAPMailbox is mailbox with go-imap's client, which parses every
// response (ENVELOPE included), for comparison with the raw client.
func (p *phase) goIMAPMailbox(user, password string, f func(mailClient) error) error {
	c, err := imapclient.DialTLS(p.srv.imaps, &imapclient.Options{
		TLSConfig: &tls.Config{InsecureSkipVerify: true},
		Dialer:    &net.Dialer{Timeout: p.cfg.timeout},
	})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	login := func() (rawCounts, error) { return rawCounts{}, c.Login(user, password).Wait() }
	if err := p.time(rowLogin, login); err != nil {
		return err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	if err := f(goIMAPClient{c}); err != nil {
		return err
	}
	return c.Logout().Wait()
}

// goIMAPClient runs the mailbox rows' commands with go-imap's client,
// counting what it parsed as the raw client counts.
type goIMAPClient struct{ c *imapclient.Client }

var goIMAPAll = imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}

func (g goIMAPClient) fetchEnvelopes() (rawCounts, error) {
	var n rawCounts
	cmd := g.c.Fetch(goIMAPAll, &imap.FetchOptions{UID: true, Flags: true, Envelope: true, RFC822Size: true})
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		n.fetch++
		buf, err := m.Collect()
		if err != nil {
			cmd.Close()
			return n, err
		}
		if buf.Envelope != nil && buf.RFC822Size > 0 {
			n.complete++
		}
	}
	return n, cmd.Close()
}

func (g goIMAPClient) fetchBodies() (rawCounts, error) {
	var n rawCounts
	cmd := g.c.Fetch(goIMAPAll, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		n.fetch++
		for it := m.Next(); it != nil; it = m.Next() {
			if b, ok := it.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
				k, err := io.Copy(io.Discard, b.Literal)
				n.literals += k
				if err != nil {
					cmd.Close()
					return n, err
				}
			}
		}
	}
	return n, cmd.Close()
}

func (g goIMAPClient) searchText(word string) (rawCounts, error) {
	data, err := g.c.UIDSearch(&imap.SearchCriteria{Text: []string{word}}, nil).Wait()
	if err != nil {
		return rawCounts{}, err
	}
	return rawCounts{hits: len(data.AllUIDs())}, nil
}
