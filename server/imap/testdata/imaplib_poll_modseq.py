"""A FETCH MODSEQ told ahead of a change not yet told, kept by a QRESYNC
client, and its resync.

Usage: imaplib_poll_modseq.py HOST PORT CAFILE USER PASSWORD

Over implicit TLS, in the mailbox INBOX with UIDs 1 to 6. Session A
(ENABLE QRESYNC, SELECT INBOX) keeps its mod-sequence the way an RFC
7162 client does (qresync_client.modseq_left). The script prints
"selected" and waits for a line on its standard input: meanwhile the
test commits a flag change to UID 2 straight to the store, without
telling the server. Session B flags UID 3; A runs NOOP, which tells it
B's change, and drops the connection. A new session resynchronises
(SELECT INBOX (QRESYNC (uidvalidity modseq))) from what A kept.

Prints a JSON object: A's lines of NOOP, the mod-sequence A kept, and
the VANISHED and FETCH lines of the resynchronisation.
"""
import json
import ssl
import sys

from qresync_client import connect, modseq_left, number, run_ok as run


def main():
    host, port, cafile, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False

    a = connect(host, port, ctx, user, password)
    run(a, "ENABLE", "QRESYNC")
    lines = run(a, "SELECT", "INBOX")
    uidvalidity = number(lines, r"\[UIDVALIDITY (\d+)\]")
    kept = number(lines, r"\[HIGHESTMODSEQ (\d+)\]")
    print("selected", flush=True)
    sys.stdin.readline()

    b = connect(host, port, ctx, user, password)
    run(b, "SELECT", "INBOX")
    run(b, "UID", "STORE", "3", "+FLAGS.SILENT", "(\\Flagged)")
    b.logout()

    noop = run(a, "NOOP")
    kept = modseq_left(kept, noop)
    # Gone without LOGOUT: the connection is lost.
    a.shutdown()

    c = connect(host, port, ctx, user, password)
    run(c, "ENABLE", "QRESYNC")
    rlines = run(c, "SELECT", "INBOX", "(QRESYNC (%d %d))" % (uidvalidity, kept))
    c.logout()
    print(json.dumps({
        "noop": [l.strip() for l in noop],
        "kept": kept,
        "resync": [l.strip() for l in rlines if "VANISHED" in l or " FETCH " in l],
    }))


if __name__ == "__main__":
    main()
