// Command sealmail is the one sealmail binary: the mail server (`sealmail
// serve`) and its administration (`sealmail user …`, `sealmail key …`,
// `sealmail status`, `sealmail filter …`, `sealmail trace search`,
// `sealmail dns`, `sealmail config show`, retention: `sealmail policy …`,
// `hold …`, `vault …`, `retention …`, `compliance erase|report`, …). It
// is the only package that
// reads configuration files, flags and the environment; it builds plain
// Options structs for server/smtp, server/imap, keyserver and the store.
//
// Configuration comes, lowest precedence first, from built-in defaults, an
// optional YAML file (--config FILE, else ./sealmail.yaml if present),
// SEALMAIL_<KEY> environment variables (dots become underscores:
// SEALMAIL_LISTEN_SMTP) and flags (--config, --data-dir). Unknown keys and
// bad values are errors that name the key. docs/configuration.md lists
// every command and key; TestConfigDocMatchesKeys keeps it exact.
//
// Implementation notes:
//   - Commands register themselves (register, registerGroup in main.go)
//     from the init function of the file that defines them; a two-word
//     name puts a command in a group, which has its own help. Operations
//     that must run on the running server's state when it runs register
//     with registerOp (ops.go) and are called with env.callOp, which
//     sends them over the control socket or, when no server runs, runs
//     them on a backend the CLI builds over the store it opens. Long jobs
//     report with store.ReportProgress; env.progress draws it on a
//     terminal (progress.go) and the control socket forwards it as
//     progress lines before the answer.
//   - Accounts are created, unlocked, changed and deleted only by
//     server/account. `serve` builds one account.Service for the control
//     socket and every protocol, so a change made with the CLI reaches live
//     IMAP sessions and the unlock cache; the CLI without a server builds
//     its own over the store it opens. auth.unlock_cache sets the cache's
//     idle time.
//   - Administration while the server runs: badger lets one process open
//     a directory, so `serve` listens on <data_dir>/control.sock and runs
//     each CLI request with the same code (localAdmin) the CLI uses when no
//     server runs. One JSON request per connection, at most 64 KiB, one
//     JSON response. The socket is bound under umask 0177 (0600 from the
//     first instant) before any other goroutine starts, and each accepted
//     connection must come from the server's own uid (SO_PEERCRED). A
//     socket nobody listens on (left by a crash) is removed by the next
//     CLI run or server start. Passwords cross only this socket.
//     Registered operations may send a body after the request (import)
//     and receive a raw stream after the answer (backup, export); the
//     request line must arrive within 30 s, after which each side may
//     be silent for at most that long (long jobs bound silence, not
//     their whole duration).
//   - The CLI tells a running server from a stale socket by connecting and
//     hanging up; the server takes a connection closed before its first
//     byte for that probe and neither answers nor logs it. Commands read
//     their secrets before they open the store or contact the server, so a
//     prompt never holds the store's lock.
//   - Only adminError text (operator mistakes: bad address, wrong password,
//     unknown account; the account service's *account.Error messages)
//     crosses the socket; other causes stay in the server log and the
//     client reads a generic message.
//   - A password cannot be reset without the current password or a
//     recovery code: a slot wraps the master secret under the password, so
//     without it there is nothing to rewrap. `user passwd` adds the new
//     slot before it removes the old password slots, so a crash in between
//     leaves both passwords working, never none.
//   - `user delete` ends the account's sessions, then relies on
//     store.DeleteAccount's crypto-shredding: the slots and the wrapped
//     private key go in the first durable transaction; after that the
//     sealed mail cannot be opened by anyone.
//   - App passwords and recovery codes are printed once, alone on the last
//     line of output, for scripts. `user revoke` needs no secret (it only
//     destroys access) and refuses the last password or recovery code.
//   - Shutdown order: stop accepting everywhere and drain each protocol
//     concurrently (bounded by shutdownTimeout), then close the store, so
//     every message that got 250 is committed before the store closes.
//   - The process umask is 0077: everything sealmail writes is private.
//     Files written here (the self-signed certificate) go temp → fsync →
//     rename → fsync(dir), mode 0600.
//   - Autoconfig (config-v1.1.xml) needs an outgoing server, which sealmail
//     does not run yet: autoconfig.submission names one (usually an existing
//     relay) and only then does the keyserver serve the file and `dns`
//     print its CNAME. The IMAP endpoints are the listeners at hostname:
//     serve advertises the ports it bound (so ":0" works), dns the
//     configured ones.
//   - Inbound policy (inbound.go): serve builds the spam filter before
//     the account service, whose OnLogin hands each login's keyring to
//     it; the checker (server/smtp/inbound) over the shared DNS resolver
//     (dns.resolver), the store and the filter; the trace writer, sealed
//     under the server key (server_key_file, else <data_dir>/server.key
//     made at first use), closed before the store. IMAP gets the filter
//     as its Trainer. Clients in inbound.trusted_networks (the loopback
//     by default, for local tools) are not checked.
//   - `filter train` sends the mbox file's path, not its bytes, to a
//     running server: the server serves only its own user (SO_PEERCRED),
//     so it reads what that user may read. An account's model is trained
//     after a login with its password (account.Service.Login), as IMAP
//     trains it. `trace search` opens sealed records with the server key,
//     in the server or, without one, in the CLI.
//   - The audit log (server/audit): serve builds one audit.Service and
//     hands it to the account service (accountAuditor maps its events),
//     so every account change made here or through the control socket is
//     recorded, as done by the OS user that ran the command (cliActor; the
//     server takes it from the socket peer's uid). `audit export` and
//     `audit verify` read the log through auditAdmin; with a server, as a
//     stream over the control socket (control_stream.go), and verify runs
//     in the CLI either way.
//   - Escrow: `escrow init` makes the key pair in the CLI, writes the
//     private half to the officer's file and hands only the public half
//     to the store (escrowKeys caches the key in use for delivery).
//     `escrow export` opens the private key in the CLI; the server (or
//     localAdmin without one) audits the start and streams the sealed
//     messages of the scope that are sealed to that key, in pieces, and
//     the CLI audits what it wrote. Refused attempts are audited too.
//   - Retention (`policy`, `hold`, `vault`, `retention`, `compliance`;
//     retention.go, retention_ops.go): registered operations (ops.go)
//     with one argument type, retArgs, run on the backend's
//     retention.Service: the server's through the control socket (long
//     ones bounded by silence, with progress lines), or one the CLI builds
//     over the store. A policy change refused for what it would destroy
//     answers with that impact. `serve` builds the service first: every protocol and the
//     account service use its store (deliveries are stamped with their
//     retention), its MayDelete is the account service's DeleteGuard, and
//     it sweeps every retention.sweep_interval until shutdown, before the
//     store closes. Its acts go to the audit log (retentionAuditor), as
//     done by the OS user who ran the command (audit.ActorFrom; never
//     what a request claims), the sweeper's as "sweeper"; its Producible
//     decides which classes escrow seals to the organisation key.
//   - kdf.time/kdf.memory_kib lower the argon2id cost of new slots. They
//     exist for end-to-end tests and log a warning when below the
//     default; zero means crypto.DefaultKDF(), whose values `config show`
//     prints (reading them back changes nothing).
package main
