package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: sealbench <command> [flags]

commands:
  ingest   send messages over SMTP and report throughput and latency
  verify   check over IMAP that every accepted message arrived
  imap     time LOGIN, SELECT, FETCH, SEARCH and idle sessions over IMAP
  mailbox  measure issue 11's mailbox targets against fresh server processes
  serve    run sealmail's SMTP and IMAP servers for benchmarking
  probe    probe for recipient addresses as a harvester would, and count
  filter   measure the spam filter's precision and recall on a corpus
  send     submit messages for remote domains and time their delivery to a sink

Run "sealbench <command> -h" for the flags of a command.
`

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "ingest":
		err = ingestMain(ctx, args[1:], stdout, stderr)
	case "verify":
		err = verifyMain(ctx, args[1:], stdout, stderr)
	case "imap":
		err = imapBenchMain(ctx, args[1:], stdout, stderr)
	case "mailbox":
		err = mailBenchMain(ctx, args[1:], stdout, stderr)
	case "serve":
		err = serveMain(ctx, args[1:], stdout, stderr)
	case "probe":
		err = probeMain(ctx, args[1:], stdout, stderr)
	case "filter":
		err = filterMain(ctx, args[1:], stdout, stderr)
	case "send":
		err = sendMain(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sealbench: unknown command %q\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "sealbench %s: %v\n", args[0], err)
	return 1
}

// errUsage marks a flag error already reported by the flag package.
var errUsage = errors.New("usage")

// parseFlags parses args into fs, mapping flag errors to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		return errUsage
	}
	return nil
}
