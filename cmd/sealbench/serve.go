package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sealmail/sealmail/crypto"
	"github.com/sealmail/sealmail/policy"
	"github.com/sealmail/sealmail/server/account"
	imapserver "github.com/sealmail/sealmail/server/imap"
	"github.com/sealmail/sealmail/server/listener"
	smtpserver "github.com/sealmail/sealmail/server/smtp"
	"github.com/sealmail/sealmail/store/badgerstore"
)

// serveConfig is what one serve run starts.
type serveConfig struct {
	data     string // data directory; the store is in <data>/store
	smtpAddr string // SMTP listen address
	imapAddr string // IMAP listen address
	// imapsAddr is an implicit-TLS IMAP listen address (imaptest speaks
	// no STARTTLS); "" means none.
	imapsAddr string
	hostname  string   // greeting and certificate name
	accounts  []string // canonical addresses to create (if missing)
	passFile  string   // password of every account
	kdf       crypto.KDFParams
	maxConns  int // SMTP connections in total and per address
	// unlockCache is the account service's unlock cache idle time; 0
	// disables it.
	unlockCache time.Duration
	// messageBytes is the SMTP server's Limits.MessageBytes.
	messageBytes int64
	// lat, if not nil, hears every IMAP command and store commit.
	lat *latencies
}

// Default serve settings.
const (
	defaultBenchDomain = "sealbench.test" // RFC 2606 reserved
	passFileName       = "sealbench-password"
	// defaultMaxConns: the load tool connects from one address, so the
	// server's per-address default (20) would refuse -c 32.
	defaultMaxConns = 4096
)

// benchServers are the running servers of one serve run.
type benchServers struct {
	smtpAddr, imapAddr net.Addr
	imapsAddr          net.Addr // nil without -imaps
	accounts           []string
	passFile           string

	st   *badgerstore.DB
	acc  *account.Service
	smtp *smtpserver.Server
	imap *imapserver.Server
	wg   sync.WaitGroup
	errc chan error // a Serve that failed
}

func serveMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sealbench serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	var domain, userList, cpuProfile, heapProfile, traceFile string
	var users int
	var fastKDF, verbose, latency bool
	fs.StringVar(&cfg.data, "data", "", "data `directory` (required; created if missing)")
	fs.StringVar(&cfg.smtpAddr, "smtp", "127.0.0.1:2525", "SMTP listen `address`")
	fs.StringVar(&cfg.imapAddr, "imap", "127.0.0.1:1143", "IMAP listen `address`")
	fs.StringVar(&cfg.imapsAddr, "imaps", "", "IMAP listen `address` with implicit TLS (for imaptest); empty: none")
	fs.StringVar(&cfg.hostname, "hostname", "localhost", "server host name")
	fs.StringVar(&domain, "domain", defaultBenchDomain, "mail domain of the -users accounts")
	fs.IntVar(&users, "users", 1, "create `N` accounts bench1@<domain> … benchN@<domain>")
	fs.StringVar(&userList, "user", "", "comma-separated account `addresses` to create instead of -users")
	fs.StringVar(&cfg.passFile, "pass-file", "", "password `file` of every account; made with a random password if missing (default <data>/"+passFileName+")")
	fs.BoolVar(&fastKDF, "fast-kdf", false, "cheap argon2id for new accounts (tests only; LOGIN then measures no real unlock)")
	fs.IntVar(&cfg.maxConns, "max-conns", defaultMaxConns, "SMTP connections allowed in total and per remote address")
	fs.DurationVar(&cfg.unlockCache, "unlock-cache", 15*time.Minute, "idle time of the unlock cache, as sealmail's auth.unlock_cache (0 makes every LOGIN run argon2id)")
	fs.Int64Var(&cfg.messageBytes, "message-bytes", smtpserver.DefaultMessageBytes, "largest message the SMTP server accepts, in `bytes`")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to `file`")
	fs.StringVar(&heapProfile, "heapprofile", "", "on SIGUSR1, collect garbage, print the goroutine count and heap and stack memory, and write a heap profile to `file`")
	fs.StringVar(&traceFile, "trace", "", "write an execution trace of the whole run to `file` (go tool trace)")
	fs.BoolVar(&latency, "latency", false, "at exit, print each IMAP command's latency (count, mean, p50, p90, p99, max) and the store's commits")
	fs.BoolVar(&verbose, "v", false, "log every transaction (slows the servers down)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var setUsers bool
	fs.Visit(func(f *flag.Flag) { setUsers = setUsers || f.Name == "users" })
	accounts, err := benchAccounts(domain, users, userList, setUsers)
	if err == nil && cfg.data == "" {
		err = errors.New("-data is required")
	}
	if err == nil && cfg.maxConns <= 0 {
		err = errors.New("-max-conns must be positive")
	}
	if err != nil {
		fmt.Fprintf(stderr, "sealbench serve: %v\n", err)
		return errUsage
	}
	cfg.accounts = accounts
	if cfg.passFile == "" {
		cfg.passFile = filepath.Join(cfg.data, passFileName)
	}
	if fastKDF {
		cfg.kdf = crypto.TestKDF()
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if heapProfile != "" {
		// Every 4 KiB allocated is sampled, not every 512 KiB: the heap
		// profile of a few hundred idle sessions is then exact enough to
		// read per session.
		runtime.MemProfileRate = 4 << 10
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if traceFile != "" {
		f, err := os.Create(traceFile)
		if err != nil {
			return fmt.Errorf("trace: %w", err)
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return fmt.Errorf("trace: %w", err)
		}
		defer trace.Stop()
	}
	if latency {
		cfg.lat = newLatencies()
	}

	srv, err := startServe(ctx, cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sealbench serve: pid %d, data %s\n", os.Getpid(), cfg.data)
	fmt.Fprintf(stdout, "smtp %s (STARTTLS)\nimap %s (STARTTLS, self-signed: clients need -insecure)\n", srv.smtpAddr, srv.imapAddr)
	if srv.imapsAddr != nil {
		fmt.Fprintf(stdout, "imaps %s (implicit TLS, self-signed)\n", srv.imapsAddr)
	}
	fmt.Fprintf(stdout, "accounts: %s (password in %s)\n", strings.Join(srv.accounts, ","), srv.passFile)
	fmt.Fprintln(stdout, "ready; stop with Ctrl-C or SIGTERM")

	if heapProfile != "" {
		stopDump := dumpOnSignal(ctx, heapProfile, stdout, stderr)
		defer stopDump()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-srv.errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.shutdown(sctx); err != nil && runErr == nil {
		runErr = err
	}
	if runErr == nil {
		fmt.Fprintln(stdout, "sealbench serve: stopped")
	}
	if cfg.lat != nil {
		cfg.lat.print(stdout)
	}
	return runErr
}

// benchAccounts returns the canonical addresses to create: list if given,
// else bench1…benchN at domain.
func benchAccounts(domain string, n int, list string, setN bool) ([]string, error) {
	var out []string
	if list != "" {
		if setN {
			return nil, errors.New("-user and -users exclude each other")
		}
		for a := range strings.SplitSeq(list, ",") {
			if a = strings.TrimSpace(a); a == "" {
				continue
			}
			c, err := policy.CanonicalAddress(a)
			if err != nil {
				return nil, fmt.Errorf("-user %q: %v", a, err)
			}
			out = append(out, c)
		}
		if len(out) == 0 {
			return nil, errors.New("-user names no address")
		}
		slices.Sort(out)
		return slices.Compact(out), nil
	}
	if n <= 0 || n > 100000 {
		return nil, errors.New("-users must be between 1 and 100000")
	}
	for i := 1; i <= n; i++ {
		c, err := policy.CanonicalAddress(fmt.Sprintf("bench%d@%s", i, domain))
		if err != nil {
			return nil, fmt.Errorf("-domain %q: %v", domain, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// startServe opens the store, creates the missing accounts and starts the
// servers. The caller must call shutdown.
func startServe(ctx context.Context, cfg serveConfig, log *slog.Logger) (_ *benchServers, err error) {
	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	password, err := loadOrMakePassword(cfg.passFile)
	if err != nil {
		return nil, err
	}
	stOpt := badgerstore.Options{Logger: log}
	imapOpt := imapserver.Options{Logger: log}
	if cfg.lat != nil {
		stOpt.OnCommit = cfg.lat.commit
		imapOpt.Metrics = cfg.lat
	}
	st, err := badgerstore.Open(filepath.Join(cfg.data, "store"), stOpt)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &benchServers{st: st, accounts: cfg.accounts, passFile: cfg.passFile, errc: make(chan error, 3)}
	var lns []net.Listener
	defer func() {
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			s.shutdown(context.Background())
		}
	}()
	var domains []string
	for _, a := range cfg.accounts {
		_, d, _ := policy.SplitAddress(a)
		domains = append(domains, d)
	}
	slices.Sort(domains)
	domains = slices.Compact(domains)
	s.acc, err = account.New(account.Options{
		Store: st, Domains: domains, KDF: cfg.kdf, Logger: log, UnlockCache: cfg.unlockCache,
	})
	if err != nil {
		return nil, err
	}
	for _, a := range cfg.accounts {
		if err := ensureAccount(ctx, s.acc, a, password); err != nil {
			return nil, err
		}
	}
	tlsConf, err := benchTLS(cfg.hostname)
	if err != nil {
		return nil, err
	}
	for _, addr := range []string{cfg.smtpAddr, cfg.imapAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
	}
	imapOpt.Store, imapOpt.Accounts, imapOpt.TLSConfig = st, s.acc, tlsConf
	s.imap, err = imapserver.New(imapOpt)
	if err != nil {
		return nil, err
	}
	s.smtp, err = smtpserver.New(smtpserver.Options{
		Hostname:  cfg.hostname,
		Domains:   domains,
		Store:     st,
		TLSConfig: tlsConf,
		Logger:    log,
		OnDeliver: s.imap.Delivered,
		SpoolDir:  filepath.Join(cfg.data, "spool"),
		// The load tool sends everything from one address: per-client
		// rates would measure the limiter, not the server.
		Limits: smtpserver.Limits{MessageBytes: cfg.messageBytes, RateMessages: 1 << 30, RateBytes: 1 << 50},
	})
	if err != nil {
		return nil, err
	}
	// As the binary does: connection caps are the listener's.
	lns[0] = listener.New(lns[0], listener.Options{
		Name:    "smtp",
		Limiter: listener.NewLimiter(listener.LimiterOptions{Connections: cfg.maxConns, PerClient: cfg.maxConns}),
		Refuse:  s.smtp.Refuse,
		Logger:  log,
	})
	s.smtpAddr, s.imapAddr = lns[0].Addr(), lns[1].Addr()
	runs := []struct {
		name  string
		serve func(net.Listener) error
		ln    net.Listener
	}{{"smtp", s.smtp.Serve, lns[0]}, {"imap", s.imap.Serve, lns[1]}}
	if cfg.imapsAddr != "" {
		ln, err := net.Listen("tcp", cfg.imapsAddr)
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		s.imapsAddr = ln.Addr()
		runs = append(runs, struct {
			name  string
			serve func(net.Listener) error
			ln    net.Listener
		}{"imaps", s.imap.Serve, tls.NewListener(ln, tlsConf)})
	}
	for _, run := range runs {
		s.wg.Go(func() {
			if err := run.serve(run.ln); err != nil {
				s.errc <- fmt.Errorf("%s on %s: %w", run.name, run.ln.Addr(), err)
			}
		})
	}
	return s, nil
}

// shutdown stops both servers, waits for their Serve calls and closes the
// store.
func (s *benchServers) shutdown(ctx context.Context) error {
	var errs []error
	if s.smtp != nil {
		errs = append(errs, s.smtp.Shutdown(ctx))
	}
	if s.imap != nil {
		errs = append(errs, s.imap.Shutdown(ctx))
	}
	s.wg.Wait()
	if s.acc != nil {
		s.acc.Close()
	}
	errs = append(errs, s.st.Close())
	return errors.Join(errs...)
}

// ensureAccount creates addr with password unless it exists.
func ensureAccount(ctx context.Context, acc *account.Service, addr, password string) error {
	_, err := acc.Create(ctx, addr, []byte(password))
	if errors.Is(err, account.ErrExists) {
		return nil
	}
	return err
}

// loadOrMakePassword reads the password file, or writes a new random
// password to it (mode 0600) if it does not exist.
func loadOrMakePassword(path string) (string, error) {
	pw, err := readPassword(path)
	if err == nil {
		if pw == "" {
			return "", fmt.Errorf("password file %s: empty first line", path)
		}
		return pw, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var raw [18]byte // 144 bits
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	pw = base64.RawURLEncoding.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	if _, err := fmt.Fprintln(f, pw); err != nil {
		f.Close()
		return "", fmt.Errorf("password file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("password file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	return pw, nil
}
