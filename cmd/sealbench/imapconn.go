package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// passwordEnv names the environment variable read for the password when no
// -pass-file is given: a password on the command line would show in ps.
const passwordEnv = "SEALBENCH_PASSWORD"

// maxPasswordFile bounds what readPassword reads.
const maxPasswordFile = 4 << 10

// imapLogin is how verify and imap reach and log in to an IMAP server.
type imapLogin struct {
	addr     string // host:port
	tls      bool   // implicit TLS
	startTLS bool   // STARTTLS
	insecure bool   // skip certificate verification
	user     string
	passFile string
	password string        // from passFile or $SEALBENCH_PASSWORD
	timeout  time.Duration // to connect
}

// register adds the connection flags to fs.
func (l *imapLogin) register(fs *flag.FlagSet) {
	fs.StringVar(&l.addr, "imap", "127.0.0.1:1143", "IMAP server `host:port`")
	fs.BoolVar(&l.tls, "tls", false, "connect with implicit TLS (IMAPS)")
	fs.BoolVar(&l.startTLS, "starttls", false, "use STARTTLS before LOGIN")
	fs.BoolVar(&l.insecure, "insecure", false, "do not verify the server certificate")
	fs.StringVar(&l.user, "user", "", "account to log in as (required)")
	fs.StringVar(&l.passFile, "pass-file", "", "`file` holding the password (default: $"+passwordEnv+")")
	fs.DurationVar(&l.timeout, "dial-timeout", 30*time.Second, "timeout to connect")
}

// check validates the flags and loads the password. It returns a message
// for the user on error.
func (l *imapLogin) check() error {
	if l.user == "" {
		return errors.New("-user is required")
	}
	if l.tls && l.startTLS {
		return errors.New("-tls and -starttls exclude each other")
	}
	if _, _, err := net.SplitHostPort(l.addr); err != nil {
		return fmt.Errorf("-imap: %v", err)
	}
	if l.passFile != "" {
		pw, err := readPassword(l.passFile)
		if err != nil {
			return err
		}
		l.password = pw
	} else {
		l.password = os.Getenv(passwordEnv)
	}
	if l.password == "" {
		return fmt.Errorf("no password: give -pass-file or set $%s", passwordEnv)
	}
	return nil
}

// readPassword returns the first line of a small file.
func readPassword(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, maxPasswordFile+1)
	n, err := f.Read(buf)
	if err != nil {
		return "", fmt.Errorf("password file %s: %w", path, err)
	}
	if n > maxPasswordFile {
		return "", fmt.Errorf("password file %s: longer than %d bytes", path, maxPasswordFile)
	}
	line, _, _ := bytes.Cut(buf[:n], []byte("\n"))
	return string(bytes.TrimRight(line, "\r")), nil
}

// dial connects (and runs STARTTLS or TLS as configured), not yet logged
// in.
func (l *imapLogin) dial() (*imapclient.Client, error) {
	host, _, err := net.SplitHostPort(l.addr)
	if err != nil {
		return nil, err
	}
	opts := &imapclient.Options{
		TLSConfig: &tls.Config{ServerName: host, InsecureSkipVerify: l.insecure},
		Dialer:    &net.Dialer{Timeout: l.timeout},
	}
	switch {
	case l.tls:
		return imapclient.DialTLS(l.addr, opts)
	case l.startTLS:
		return imapclient.DialStartTLS(l.addr, opts)
	}
	return imapclient.DialInsecure(l.addr, opts)
}

// login dials and logs in.
func (l *imapLogin) login() (*imapclient.Client, error) {
	c, err := l.dial()
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := c.Login(l.user, l.password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login: %w", err)
	}
	return c, nil
}
