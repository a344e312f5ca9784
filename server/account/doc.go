// Package account is the one place that creates, unlocks, re-keys and
// destroys sealmail accounts. The CLI (directly or through the running
// server's control socket), IMAP login, and later POP3 and submission all
// go through a Service; nothing else calls crypto.NewAccount, opens a slot
// or deletes an account. It is the choke point where a legal hold
// (Options.DeleteGuard: a held account cannot be crypto-shredded) and the
// audit log (Options.Auditor) hook in. Monitoring hears logins and
// unlocks through Options.Metrics, which is told outcomes only, never an
// address or a secret.
//
// # Secrets and slots
//
// An account's master secret M is wrapped in unlock slots (package
// crypto). Three kinds of secret open them:
//
//   - The password: chosen by the person, at least MinPasswordChars
//     characters. It logs in and manages the account. A password change
//     adds the new slot, then removes the old password slots.
//   - Recovery codes (AddRecoveryCode): 32 random characters printed once.
//     They manage the account (a forgotten password is changed with one)
//     but do not log in: they are for regaining an account, not daily use.
//   - App passwords (AddAppPassword): 20 random characters printed once,
//     labelled with the device they are for. They log in (IMAP, later POP3
//     and submission) but cannot manage the account, so a device that
//     holds one cannot change the password or make more.
//
// Codes are read however a person types them (crypto.ParseCode: case,
// spaces, dashes, look-alikes). Their first characters name their slot,
// so an unlock runs argon2id on the password slot(s) and at most one more
// slot, whatever the number of codes (at most maxLoginDerivations runs).
// An account has at most MaxSlots slots. RevokeSlot refuses to remove the
// last password or recovery code ("typeable" slots): without one nobody
// could change the account again.
//
// # Sessions
//
// Login returns a Session holding the unlocked crypto.Keyring. It lives
// as long as the slot it unlocked: deleting the account ends every
// session, revoking a slot or changing the password ends the sessions
// that logged in with the removed slot(s), Close ends all. Ending wipes
// the keyring and cancels Session.Context with a cause; protocols watch it
// (context.AfterFunc) and drop the connection. Each account's in-memory
// state carries a generation that every such change increments; a login
// that read the account before a change cannot register its session
// after it.
//
// # Unlock cache
//
// With Options.UnlockCache > 0, a successful login leaves the account's M
// wrapped under HMAC-SHA256(random salt, secret) (crypto.CachedSecret),
// in memory only, tied to the slot it opened. A returning client's login
// first tries the account's cache entries: a hit still proves the secret
// (only the right one opens the entry) but costs microseconds instead of
// an argon2id run. A miss, a wrong secret included, falls through to the
// argon2id path, so a wrong secret takes the same path and the same time
// whether or not an entry exists. Entries go after the idle time, and at
// once on any change of the account's slots, on deletion and at Close; an
// entry whose slot has disappeared from the store (changed by another
// process) is dropped at its next use.
//
// # Throttle
//
// Every login attempt is counted when it starts to run (it has its place
// among the few attempts in flight of its client address, IPv4 address
// or IPv6 /64, and of its account), per address and per account, and
// refunded if it succeeds, so parallel guesses cost what sequential ones
// do and a success on one account never clears failures against another.
// Attempts waiting for a place are not counted yet, and attempts refused,
// or ended before any secret was tried (the client left, the unlock queue
// shed them), are not counted at all: a busy address of correct logins
// (a NAT after a restart, when nothing is cached and no pair is known)
// is admitted as fast as the unlocks run instead of earning gaps from
// its own queue. An address and an account each have few attempts in
// flight (an address's until answered, failure delay included; an
// account's until checked) and a short queue; beyond it attempts are
// refused before any work (ErrThrottled). Attempts that did not succeed
// earn gaps that double up to a bound: refused beyond a wait per address,
// never refused per account, so guessing from many addresses slows down
// without locking the owner out. A known pair (an address the account
// logged in from within 30 days, with fewer than five failures since)
// skips those limits and goes first in the unlock queue. argon2id runs are bounded by
// Options.MaxUnlocks (the gate); when its queue is full the waiter whose
// address has failed most is shed first. Failures are answered
// FailureDelay after the work started, identically for unknown accounts
// (which burn the derivations a real account would run) and wrong
// secrets.
//
// Implementation notes:
//
//   - Lock order: the per-account change lock (keyedMutex), then
//     Service.mu, then the unlock cache's mu. The throttle's and the
//     gate's mutexes are leaves. No store call or argon2id run happens
//     under Service.mu or a leaf mutex.
//   - Changes to one account are serialised by its keyedMutex, so slot
//     counts, selectors and "last typeable slot" are checked against the
//     current slots. Across processes, badger lets only one open the
//     store: the CLI uses the running server's Service through the control
//     socket.
//   - Errors meant for the operator are *Error values wrapping a sentinel,
//     with a message that names addresses and slot IDs but no secret or
//     storage detail. Protocols map the sentinels (ErrBadCredentials,
//     ErrThrottled, ErrUnavailable) to their own answers.
//   - Logs use the fixed keys (account, duration, err; proto, cid and
//     remote come with LoginRequest.Log) and never contain secrets.
package account
