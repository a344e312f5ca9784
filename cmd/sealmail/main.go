package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
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
	code := run(ctx, os.Args[1:], &stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, inFile: os.Stdin, errFile: os.Stderr})
	stop()
	os.Exit(code)
}

// stdio is where a command reads and writes. inFile is the terminal to
// prompt on, errFile the one to draw progress on; nil when they are not
// files (tests).
type stdio struct {
	in      io.Reader
	out     io.Writer
	err     io.Writer
	inFile  *os.File
	errFile *os.File
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
	autocrypt     string
	force         bool
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
	// import and export
	mailbox string
	restart bool
	ret     retFlags // retention commands (retention.go)
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

// commands are every command of the binary, in registration order;
// groups are the summaries of command groups, by group name. Both are
// filled by init functions (register, registerGroup) and read-only
// afterwards.
var (
	commands []*command
	groups   = map[string]string{}
)

// register adds commands. Each file that defines commands registers them
// from its own init function, so that a new command needs no edit
// anywhere else:
//
//	func init() {
//		registerGroup("hold", "legal holds: accounts whose mail cannot be destroyed")
//		register(&command{name: "hold add", args: "ADDRESS", summary: "…", run: runHoldAdd})
//	}
//
// A name of two or three words ("hold add", "filter allow add") puts the
// command in the group named by its first word: `sealmail hold`,
// `sealmail hold --help` and `sealmail help hold` list the group's
// commands, and `sealmail help` shows the group on one line with
// registerGroup's summary. Within a group commands are listed in
// registration order. No name may be the start of another ("hold" and
// "hold add"). docs/configuration.md must list every command
// (TestCommandsDocumented).
func register(cs ...*command) {
	for _, c := range cs {
		words := strings.Fields(c.name)
		if c.run == nil || len(words) == 0 || len(words) > maxCommandWords || strings.Join(words, " ") != c.name || isHelp(words[0]) {
			panic(fmt.Sprintf("sealmail: bad command registration %q", c.name))
		}
		for _, o := range commands {
			if o.name == c.name || strings.HasPrefix(o.name, c.name+" ") || strings.HasPrefix(c.name, o.name+" ") {
				panic(fmt.Sprintf("sealmail: command %q registered twice, or one name starts another (%q)", c.name, o.name))
			}
		}
		commands = append(commands, c)
	}
}

// maxCommandWords is the most words a command name has.
const maxCommandWords = 3

// registerGroup gives the group name (the first word of its commands) a
// summary for `sealmail help`.
func registerGroup(name, summary string) {
	if _, ok := groups[name]; ok {
		panic(fmt.Sprintf("sealmail: group %q registered twice", name))
	}
	groups[name] = summary
}

func init() {
	registerGroup("user", "accounts and their passwords, recovery codes and app passwords")
	registerGroup("key", "export an account's OpenPGP keys")
	registerGroup("config", "the configuration")
	registerGroup("queue", "the outbound queue: list, show, retry and drop queued messages")
	register(
		&command{name: "serve", summary: "run the mail server until SIGINT or SIGTERM", run: runServe},
		&command{name: "config show", summary: "print the effective configuration as YAML", run: runConfigShow},
		&command{name: "user add", args: "ADDRESS", summary: "create an account, its key pair and its first unlock slot",
			flags: passwordFlag, run: runUserAdd},
		&command{name: "user list", summary: "list accounts", flags: jsonFlag, run: runUserList},
		&command{name: "user passwd", args: "ADDRESS", summary: "change the password (needs the current password or a recovery code)",
			flags: passwordFlag, run: runUserPasswd},
		&command{name: "user delete", args: "ADDRESS", summary: "crypto-shred an account and all its mail",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
			}, run: runUserDelete},
		&command{name: "user recovery-code", args: "ADDRESS", summary: "add a recovery code (printed once)",
			flags: passwordFlag, run: runUserRecoveryCode},
		&command{name: "user app-password", args: "ADDRESS LABEL", summary: "add an app password for one device (printed once; logs in, cannot change the account)",
			flags: passwordFlag, run: runUserAppPassword},
		&command{name: "user slots", args: "ADDRESS", summary: "list an account's unlock slots (password, recovery codes, app passwords)",
			flags: jsonFlag, run: runUserSlots},
		&command{name: "user revoke", args: "ADDRESS SLOT-ID", summary: "destroy one unlock slot and end the sessions that used it",
			run: runUserRevoke},
		&command{name: "user set", args: "ADDRESS [--wkd=true|false] [--quota SIZE] [--autocrypt=true|false]", summary: "change account settings",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.StringVar(&f.wkd, "wkd", "", "publish the public key in the Web Key Directory (true|false)")
				fs.StringVar(&f.autocrypt, "autocrypt", "", "add an Autocrypt header with the public key to outgoing mail (true|false)")
				fs.StringVar(&f.quota, "quota", "", "quota in sealed bytes (`SIZE`: 500MiB, 2GiB, …; 0 or none for no limit; default for limits.quota)")
			}, run: runUserSet},
		&command{name: "key export", args: "ADDRESS", summary: "print the armored public key", run: runKeyExport},
		&command{name: "key export-secret", args: "ADDRESS", summary: "print the armored secret key, protected by the account password",
			flags: passwordFlag, run: runKeyExportSecret},
		&command{name: "dns", args: "DOMAIN", summary: "print the DNS records to publish for DOMAIN", run: runDNS},
		&command{name: "version", summary: "print the version, the commit it was built from and the Go version",
			flags: jsonFlag, run: runVersion},
		&command{name: "queue list", summary: "list the outbound queue", flags: jsonFlag, run: runQueueList},
		&command{name: "queue show", args: "ID", summary: "show a queued message (its ID, or an entry's) and its delivery trace",
			flags: jsonFlag, run: runQueueShow},
		&command{name: "queue retry", args: "ID|--all", summary: "try a queued message (or every one) again now",
			flags: func(fs *flag.FlagSet, f *cmdFlags) {
				fs.BoolVar(&f.all, "all", false, "retry every queued message")
			}, run: runQueueRetry},
		&command{name: "queue drop", args: "ID", summary: "destroy a queued message (or one entry of it), with no notice to the sender",
			run: runQueueDrop},
	)
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
	var version bool
	global := flag.NewFlagSet("sealmail", flag.ContinueOnError)
	global.SetOutput(io.err)
	commonFlags(global, &f)
	global.BoolVar(&version, "version", false, "print the version and exit")
	global.Usage = func() {}
	if err := global.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(io.out)
			return exitOK
		}
		writeUsage(io.err)
		return exitUsage
	}
	rest := global.Args()
	if version {
		rest = []string{"version"}
	}
	if len(rest) == 0 {
		writeUsage(io.err)
		return exitUsage
	}
	if isHelp(rest[0]) {
		return runHelp(io, rest[1:])
	}
	c, args := findCommand(rest)
	if c == nil {
		if _, ok := groupCommands(rest[0]); ok {
			// A group, or a group's word followed by help: the group's
			// usage ("filter", "filter --help", "filter allow --help").
			words := rest
			if i := slices.IndexFunc(rest, isHelp); i >= 0 {
				words = rest[:i]
				if len(words) <= maxCommandWords-1 {
					writeGroupUsage(io.out, rest[0])
					return exitOK
				}
			}
			if len(rest) == 1 {
				writeGroupUsage(io.err, rest[0])
				return exitUsage
			}
			fmt.Fprintf(io.err, "sealmail: unknown command %q\n", strings.Join(words[:min(len(words), maxCommandWords)], " "))
			writeGroupUsage(io.err, rest[0])
			return exitUsage
		}
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
	// Asked-for help goes to standard output; help after a mistake to
	// standard error, after flag's own message.
	fs.Usage = func() {}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeCommandUsage(io.out, c)
			return exitOK
		}
		writeCommandUsage(io.err, c)
		return exitUsage
	}
	// What this command changes is audited as done by the OS user running
	// it (through the control socket the server learns that user itself).
	ctx = audit.WithActor(ctx, cliActor(os.Getuid()))
	e := &env{ctx: ctx, io: io, flags: &f, lines: newLineReader(io.in)}
	err = c.run(ctx, e, pos)
	var ue *usageError
	var ee *exitCodeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(io.err, "sealmail %s: %s\n", c.name, ue.msg)
		writeCommandUsage(io.err, c)
		return exitUsage
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(io.err, "sealmail %s: %s\n", c.name, ee.msg)
		}
		return ee.code
	default:
		fmt.Fprintf(io.err, "sealmail %s: %s\n", c.name, err)
		return exitError
	}
}

// exitCodeError ends a command with a given exit code and an optional
// message (for `status`, whose exit code says whether a server runs).
type exitCodeError struct {
	code int
	msg  string
}

func (e *exitCodeError) Error() string { return e.msg }

func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// runHelp answers `sealmail help [COMMAND|GROUP]`.
func runHelp(io *stdio, words []string) int {
	if len(words) == 0 {
		writeUsage(io.out)
		return exitOK
	}
	if c, rest := findCommand(words); c != nil && len(rest) == 0 {
		writeCommandUsage(io.out, c)
		return exitOK
	}
	if _, ok := groupCommands(words[0]); ok && len(words) < maxCommandWords {
		writeGroupUsage(io.out, words[0])
		return exitOK
	}
	fmt.Fprintf(io.err, "sealmail help: unknown command %q\n", strings.Join(words, " "))
	writeUsage(io.err)
	return exitUsage
}

// findCommand matches the longest command name at the start of words.
func findCommand(words []string) (*command, []string) {
	for n := maxCommandWords; n >= 1; n-- {
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

// groupCommands returns the commands of group name (the commands named
// "name …"), in registration order, and whether there is such a group.
func groupCommands(name string) ([]*command, bool) {
	var cs []*command
	for _, c := range commands {
		if g, _, ok := strings.Cut(c.name, " "); ok && g == name {
			cs = append(cs, c)
		}
	}
	return cs, len(cs) > 0
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

// usageWidth is the width of the first column of command lists.
const usageWidth = 34

func writeUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage: sealmail [--config FILE] [--data-dir DIR] COMMAND [ARGS]\n       sealmail --version\n\ncommands:\n")
	// One line per command, and one per group of several commands,
	// alphabetically.
	type entry struct{ left, right string }
	var entries []entry
	seen := map[string]bool{}
	for _, c := range commands {
		g, _, grouped := strings.Cut(c.name, " ")
		if cs, _ := groupCommands(g); grouped && len(cs) > 1 {
			if seen[g] {
				continue
			}
			seen[g] = true
			subs := make([]string, len(cs))
			for i, gc := range cs {
				subs[i] = strings.TrimPrefix(gc.name, g+" ")
			}
			summary := groups[g]
			if summary == "" {
				summary = "commands"
			}
			entries = append(entries, entry{g + " COMMAND", summary + "\n" + strings.Repeat(" ", usageWidth+2) +
				"(" + strings.Join(subs, ", ") + ")"})
			continue
		}
		entries = append(entries, entry{strings.TrimSpace(c.name + " " + c.args), c.summary})
	}
	entries = append(entries, entry{"help [COMMAND]", "show help: of a command, or of a group of commands"})
	slices.SortStableFunc(entries, func(a, b entry) int { return strings.Compare(a.left, b.left) })
	for _, e := range entries {
		writeEntry(&b, e.left, e.right)
	}
	b.WriteString("\nRun `sealmail help GROUP` for the commands of a group (`sealmail help user`),\n")
	b.WriteString("`sealmail help COMMAND` for a command's flags (`sealmail help user add`).\n")
	b.WriteString("\nConfiguration: defaults, then the YAML file, then SEALMAIL_<KEY> environment\n")
	b.WriteString("variables (dots as underscores, e.g. SEALMAIL_DATA_DIR), then flags.\n")
	io.WriteString(w, b.String())
}

// writeEntry writes one line of a command list, the summary on the next
// line when the left column is too wide.
func writeEntry(b *strings.Builder, left, right string) {
	if len(left) >= usageWidth-2 {
		fmt.Fprintf(b, "  %s\n  %-*s%s\n", left, usageWidth, "", right)
		return
	}
	fmt.Fprintf(b, "  %-*s%s\n", usageWidth, left, right)
}

// writeGroupUsage lists the commands of group g.
func writeGroupUsage(w io.Writer, g string) {
	cs, _ := groupCommands(g)
	var b strings.Builder
	fmt.Fprintf(&b, "usage: sealmail [--config FILE] [--data-dir DIR] %s COMMAND [ARGS]\n", g)
	if s := groups[g]; s != "" {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	b.WriteString("\ncommands:\n")
	for _, c := range cs {
		writeEntry(&b, strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(&b, "\nRun `sealmail help %s COMMAND` for a command's flags.\n", g)
	io.WriteString(w, b.String())
}

// writeCommandUsage writes c's usage line, summary and flags.
func writeCommandUsage(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: sealmail %s [flags] %s\n  %s\n", c.name, c.args, c.summary)
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	var f cmdFlags
	commonFlags(fs, &f)
	if c.flags != nil {
		c.flags(fs, &f)
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

func runConfigShow(ctx context.Context, e *env, args []string) error {
	if len(args) != 0 {
		return usagef("no arguments expected")
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	if err := writeConfigYAML(e.io.out, c); err != nil {
		return err
	}
	// Warnings go to standard error, so that standard output stays a
	// configuration file. A store that cannot be read now (another
	// command holds it) only costs the warnings.
	if err := e.checkAccounts(ctx, c); err != nil {
		fmt.Fprintf(e.io.err, "warning: could not check that the postmaster and alias targets have accounts: %v\n", err)
	}
	return nil
}
