package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sealmail/sealmail/server/audit"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // an operation failed
	exitUsage = 2 // the command line was wrong
)

func main() {
	// Everything sealmail writes (store, certificates, the control socket)
	// is private to the user it runs as.
	syscall.Umask(0o077)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, inFile: os.Stdin})
	stop()
	os.Exit(code)
}

// stdio is where a command reads and writes. inFile is the terminal to
// prompt on; nil when input is not a terminal file (tests).
type stdio struct {
	in     io.Reader
	out    io.Writer
	err    io.Writer
	inFile *os.File
}

// usageError is a mistake on the command line: exit code 2 and the
// command's usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// command is one subcommand.
type command struct {
	name    string // "user add"
	args    string // positional arguments for the usage line
	summary string
	flags   func(fs *flag.FlagSet, f *cmdFlags)
	run     func(ctx context.Context, e *env, args []string) error
}

// cmdFlags holds every flag any command defines; each command registers
// the ones it takes.
type cmdFlags struct {
	config        string
	dataDir       string
	passwordStdin bool
	wkd           string
	quota         string
	yes           bool
	json          bool
	// filter and trace commands
	user, note              string
	org, spam, ham          bool
	from, to, ip            string
	since, until, direction string
	limit                   int
	// audit and escrow commands (audit.go, escrow.go)
	audit  auditFlags
	escrow escrowFlags
	all    bool // queue retry --all
}

// hint renders the global flags given, for a command line printed as
// advice ("--config FILE --data-dir DIR "), so that it acts on the same
// data directory.
func (f *cmdFlags) hint() string {
	var b strings.Builder
	if f.config != "" {
		fmt.Fprintf(&b, "--config %s ", shellQuote(f.config))
	}
	if f.dataDir != "" {
		fmt.Fprintf(&b, "--data-dir %s ", shellQuote(f.dataDir))
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell unless it is plainly safe.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// env is what a command runs with.
type env struct {
	// ctx ends on SIGINT/SIGTERM; prompts give up then (interruptible).
	ctx   context.Context
	io    *stdio
	flags *cmdFlags
	// lines reads --password-stdin input line by line; shared so several
	// secrets can be read in turn.
	lines *lineReader
	// configFile is the file config() read; "" for defaults and
	// environment only.
	configFile string
}

var commands []*command

func init() {
	// Other files' init functions may have run first and registered
	// their commands (filtercmd.go): keep them, after these.
	commands = append([]*command{
		{name: "serve", summary: "run the mail server until SIGINT or SIGTERM", run: runServe},
		{name: "config show", summary: "print the effective configuration as YAML", run: runConfigShow},
		{name: "user add", args: "ADDRESS", summary: "create an account, its key pair and its first unlock slot",
			flags: passwordFlag, run: runUserAdd},
		{name: "user list", summary: "list accounts", flags: jsonFlag, run: runUserList},
		{name: "user passwd", args: "ADDRESS", summary: "change the password (needs the current password or a recovery code)",
			flags: passwordFlag, run: runUserPasswd},
		{name: "user delete", args: "ADDRESS", summary: "crypto-shred an account and all its mail",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
			}, run: runUserDelete},
		{name: "user recovery-code", args: "ADDRESS", summary: "add a recovery code (printed once)",
			flags: passwordFlag, run: runUserRecoveryCode},
		{name: "user app-password", args: "ADDRESS LABEL", summary: "add an app password for one device (printed once; logs in, cannot change the account)",
			flags: passwordFlag, run: runUserAppPassword},
		{name: "user slots", args: "ADDRESS", summary: "list an account's unlock slots (password, recovery codes, app passwords)",
			flags: jsonFlag, run: runUserSlots},
		{name: "user revoke", args: "ADDRESS SLOT-ID", summary: "destroy one unlock slot and end the sessions that used it",
			run: runUserRevoke},
		{name: "user set", args: "ADDRESS [--wkd=true|false] [--quota SIZE]", summary: "change account settings",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.wkd, "wkd", "", "publish the public key in the Web Key Directory (true|false)")
				fs.StringVar(&f.quota, "quota", "", "quota in sealed bytes (`SIZE`: 500MiB, 2GiB, …; 0 or none for no limit; default for limits.quota)")
			}, run: runUserSet},
		{name: "key export", args: "ADDRESS", summary: "print the armored public key", run: runKeyExport},
		{name: "key export-secret", args: "ADDRESS", summary: "print the armored secret key, protected by the account password",
			flags: passwordFlag, run: runKeyExportSecret},
		{name: "dns", args: "DOMAIN", summary: "print the DNS records to publish for DOMAIN", run: runDNS},
		{name: "queue list", summary: "list the outbound queue", flags: jsonFlag, run: runQueueList},
		{name: "queue show", args: "ID", summary: "show a queued message (its ID, or an entry's) and its delivery trace",
			flags: jsonFlag, run: runQueueShow},
		{name: "queue retry", args: "ID|--all", summary: "try a queued message (or every one) again now",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.all, "all", false, "retry every queued message")
			}, run: runQueueRetry},
		{name: "queue drop", args: "ID", summary: "destroy a queued message (or one entry of it), with no notice to the sender",
			run: runQueueDrop},
	}, commands...)
}

func passwordFlag(fs *flag.FlagSet, f *cmdFlags) {
	fs.BoolVar(&f.passwordStdin, "password-stdin", false, "read secrets from standard input, one per line, instead of prompting")
}

func jsonFlag(fs *flag.FlagSet, f *cmdFlags) {
	fs.BoolVar(&f.json, "json", false, "print JSON for scripts")
}

// commonFlags are accepted before the command and by every command.
func commonFlags(fs *flag.FlagSet, f *cmdFlags) {
	fs.StringVar(&f.config, "config", f.config, "configuration `file` (default ./"+defaultConfigFile+" if present)")
	fs.StringVar(&f.dataDir, "data-dir", f.dataDir, "data `directory` (overrides data_dir)")
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, argv []string, io *stdio) int {
	var f cmdFlags
	global := flag.NewFlagSet("sealmail", flag.ContinueOnError)
	global.SetOutput(io.err)
	commonFlags(global, &f)
	global.Usage = func() { writeUsage(io.err) }
	if err := global.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := global.Args()
	if len(rest) == 0 {
		writeUsage(io.err)
		return exitUsage
	}
	if rest[0] == "help" || rest[0] == "-h" || rest[0] == "--help" {
		if len(rest) > 1 {
			if c, _ := findCommand(rest[1:]); c != nil {
				writeCommandUsage(io.out, c, nil)
				return exitOK
			}
		}
		writeUsage(io.out)
		return exitOK
	}
	c, args := findCommand(rest)
	if c == nil {
		fmt.Fprintf(io.err, "sealmail: unknown command %q\n", strings.Join(rest[:min(2, len(rest))], " "))
		writeUsage(io.err)
		return exitUsage
	}
	fs := flag.NewFlagSet("sealmail "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	commonFlags(fs, &f)
	if c.flags != nil {
		c.flags(fs, &f)
	}
	fs.Usage = func() { writeCommandUsage(io.err, c, fs) }
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	// What this command changes is audited as done by the OS user running
	// it (through the control socket the server learns that user itself).
	ctx = audit.WithActor(ctx, cliActor(os.Getuid()))
	e := &env{ctx: ctx, io: io, flags: &f, lines: newLineReader(io.in)}
	err = c.run(ctx, e, pos)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(io.err, "sealmail %s: %s\n", c.name, ue.msg)
		writeCommandUsage(io.err, c, fs)
		return exitUsage
	default:
		fmt.Fprintf(io.err, "sealmail %s: %s\n", c.name, err)
		return exitError
	}
}

// findCommand matches the longest command name at the start of words.
func findCommand(words []string) (*command, []string) {
	for _, n := range []int{3, 2, 1} {
		if len(words) < n {
			continue
		}
		name := strings.Join(words[:n], " ")
		for _, c := range commands {
			if c.name == name {
				return c, words[n:]
			}
		}
	}
	return nil, nil
}

// parseInterspersed parses flags wherever they appear among positional
// arguments ("user add a@b --password-stdin"); "--" ends flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func writeUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: sealmail [--config FILE] [--data-dir DIR] COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-22s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "  help [COMMAND]         show help")
	fmt.Fprintln(w, "\nConfiguration: defaults, then the YAML file, then SEALMAIL_<KEY> environment")
	fmt.Fprintln(w, "variables (dots as underscores, e.g. SEALMAIL_DATA_DIR), then flags.")
}

func writeCommandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: sealmail %s [flags] %s\n  %s\n", c.name, c.args, c.summary)
	if fs == nil {
		fs = flag.NewFlagSet(c.name, flag.ContinueOnError)
		var f cmdFlags
		commonFlags(fs, &f)
		if c.flags != nil {
			c.flags(fs, &f)
		}
	}
	fmt.Fprintln(w, "flags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// config loads the configuration with this command line's overrides.
func (e *env) config() (*Config, error) {
	over := map[string]string{}
	if e.flags.dataDir != "" {
		over["data_dir"] = e.flags.dataDir
	}
	c, file, err := loadConfig(loadOptions{File: e.flags.config, Overrides: over})
	e.configFile = file
	return c, err
}

func runConfigShow(_ context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	return writeConfigYAML(e.io.out, c)
}
