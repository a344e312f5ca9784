// Package queue is sealmail's outbound queue and delivery engine: mail
// that local users submit for remote recipients waits here, sealed under
// the server key, until a remote server takes it or it bounces.
//
// Submission (server/smtp) hands a message to Prepare, which seals it
// once into a body shared by one entry per destination domain, and
// commits the entries with the message's local copies in one store
// transaction (store.Queue.UpdateQueue) before it answers 250. From
// then on the scheduler delivers each entry: by MX (RFC 5321 §5.1: MX
// records by preference, equal ones in random order, the domain's own
// address without MX, none for a null MX, RFC 7505), through a
// configured transport (Options.Transports: a domain to a fixed
// host:port, as Postfix's transport maps), or through a smarthost
// (Options.Smarthost, with AUTH over verified TLS only).
//
// # Outcomes
//
//   - A 2xx at the end of data delivers the recipients it covers; a 5xx
//     (or a destination that cannot take mail: null MX, no such domain,
//     a size or SMTPUTF8 the server does not offer) fails them at once;
//     a 4xx, or no server reachable, defers them: the entry is tried
//     again after RetryBase, doubling per attempt up to RetryMax, with
//     ±10% spread, the last attempt at the end of Lifetime. Recipients
//     still deferred then fail with 5.4.7.
//   - The sender hears of failures (and, once, after DelayWarning, of
//     delays; and of successes it asked for that the next server will
//     not report) in a delivery status notification (RFC 3464; RFC 6533
//     for SMTPUTF8 mail), as RCPT's NOTIFY asked (RFC 3461; without
//     NOTIFY: failures and delays). A notice for a local sender is
//     sealed to its account (and to the escrow keys Options.Escrow
//     names, as the MX's mail) and delivered into its INBOX in the same
//     transaction that records the outcome; one for a remote sender is
//     queued with the null sender. Mail with the null sender is never
//     bounced.
//   - RET, ENVID, NOTIFY and ORCPT go on to servers that offer DSN.
//
// # Crash safety
//
// Every state change is one durable transaction: an entry is in the
// store from before the client's 250 until the transaction that records
// its last recipient's outcome. A restart, a crash or SIGKILL loses no
// queued message: entries are simply due again. A message is sent twice
// only in the window SMTP itself leaves open (RFC 5321 §4.1.1.4 and
// RFC 1047): after the remote server's final 250 and before our commit
// of it (a crash, a store failure or a Shutdown that cuts deliveries
// off in that moment). An entry whose outcome could not be committed is
// held out of the schedule for holdAfterFailure, so a failing store does
// not make it be sent again at once.
//
// # What is sealed
//
// The store keeps, in the clear, only what scheduling needs: each
// entry's ID (the message's transaction id and a number), when it was
// queued and is due, how many attempts it had and its body's sealed
// size. Bodies and envelopes (sender, recipients, DSN parameters, the
// last failure) are sealed under keys derived from the server key
// (seal.go), and so are trace records (package trace). The server key
// must be readable by the running server — it delivers unattended — so
// whoever holds the data directory and that key can read queued mail;
// SECURITY.md says so. A body is destroyed in the transaction that
// removes its last entry; its bytes then leave the store's files when
// badger's value-log GC and compaction rewrite them.
//
// # Memory
//
// The scheduler holds at most Options.Active entries' envelopes, and each
// delivery streams its body from the store one sealed record (64 KiB)
// at a time: memory is bounded by Active and Connections, never by the
// queue's length. Queueing seals small bodies in memory and stages large
// ones in the store in pieces.
//
// # The SMTP client
//
// client.go is sealmail's own SMTP client (see there why not
// go-smtp's): EHLO with the server's host name, STARTTLS when offered
// (opportunistic: any certificate, and a failed handshake is retried
// once in plaintext, RFC 7435) or required (Options.TLSPolicy: MTA-STS,
// DANE, REQUIRETLS), PIPELINING, every reply bounded in lines and bytes,
// every wait bounded (RFC 5321 §4.5.3.2), a server that talks without
// being asked cut off (boundedConn).
//
// Implementation notes:
//   - Lock order: Queue.mu is a leaf; no store call, network or sealing
//     happens under it.
//   - One goroutine schedules (loop); each delivery runs on its own, and
//     owns its entry (item) from dispatch to finish: nothing else
//     changes the entry meanwhile but Drop, which cuts the delivery off
//     first and makes it record nothing.
//   - Logs name entries, domains and counts, never local parts of
//     remote recipients or message content.
package queue
