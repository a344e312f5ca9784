package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// verifyResult compares recorded Message-IDs with a mailbox.
type verifyResult struct {
	expected   int
	inMailbox  int      // messages in the mailbox
	found      int      // expected IDs present
	missing    []string // expected IDs absent
	duplicates int      // expected IDs present more than once (extra copies)
}

// maxListedMissing bounds how many missing Message-IDs verify prints.
const maxListedMissing = 20

func verifyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sealbench verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var login imapLogin
	login.register(fs)
	var idsPath, mailbox string
	fs.StringVar(&mailbox, "mailbox", "INBOX", "mailbox to check")
	fs.StringVar(&idsPath, "ids", "", "`file` of Message-IDs written by ingest -ids (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := login.check(); err != nil {
		fmt.Fprintf(stderr, "sealbench verify: %v\n", err)
		return errUsage
	}
	if idsPath == "" {
		fmt.Fprintln(stderr, "sealbench verify: -ids is required")
		return errUsage
	}
	ids, err := readIDs(idsPath)
	if err != nil {
		return err
	}
	res, err := runVerify(ctx, login, mailbox, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sealbench verify: %s %s: %d messages; %d of %d recorded Message-IDs found, %d missing, %d extra copies\n",
		login.user, mailbox, res.inMailbox, res.found, res.expected, len(res.missing), res.duplicates)
	for i, id := range res.missing {
		if i == maxListedMissing {
			fmt.Fprintf(stdout, "missing: … and %d more\n", len(res.missing)-i)
			break
		}
		fmt.Fprintf(stdout, "missing: <%s>\n", id)
	}
	if len(res.missing) > 0 {
		return fmt.Errorf("%d accepted messages did not arrive", len(res.missing))
	}
	return nil
}

// runVerify logs in, reads every envelope of the mailbox and compares.
func runVerify(ctx context.Context, login imapLogin, mailbox string, ids []string) (verifyResult, error) {
	c, err := login.login()
	if err != nil {
		return verifyResult{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return verifyResult{}, fmt.Errorf("select %s: %w", mailbox, err)
	}
	seen := make(map[string]int, sel.NumMessages)
	if sel.NumMessages > 0 {
		all := imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}} // 1:*
		cmd := c.Fetch(all, &imap.FetchOptions{Envelope: true})
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			buf, err := msg.Collect()
			if err != nil {
				cmd.Close()
				return verifyResult{}, fmt.Errorf("fetch: %w", err)
			}
			if buf.Envelope != nil {
				seen[strings.Trim(buf.Envelope.MessageID, "<>")]++
			}
		}
		if err := cmd.Close(); err != nil {
			return verifyResult{}, fmt.Errorf("fetch: %w", err)
		}
	}
	if err := c.Logout().Wait(); err != nil && ctx.Err() == nil {
		return verifyResult{}, fmt.Errorf("logout: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return verifyResult{}, fmt.Errorf("interrupted: %w", err)
	}
	return compareIDs(ids, seen, int(sel.NumMessages)), nil
}

// compareIDs checks the recorded ids against the Message-IDs seen.
func compareIDs(ids []string, seen map[string]int, inMailbox int) verifyResult {
	res := verifyResult{expected: len(ids), inMailbox: inMailbox}
	for _, id := range ids {
		switch n := seen[id]; {
		case n == 0:
			res.missing = append(res.missing, id)
		default:
			res.found++
			res.duplicates += n - 1
		}
	}
	return res
}
