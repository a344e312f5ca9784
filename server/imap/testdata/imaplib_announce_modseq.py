"""The HIGHESTMODSEQ of a CONDSTORE enabling command, kept by a client
that loses the connection right after it, and its resync.

Usage: imaplib_announce_modseq.py HOST PORT CAFILE USER PASSWORD

Over implicit TLS, in the mailbox INBOX with UIDs 1 to 4. Session A
selects INBOX without enabling CONDSTORE. Session B flags UID 3. A runs
FETCH 1 (MODSEQ), its first CONDSTORE enabling command, whose output
has "* OK [HIGHESTMODSEQ n]" first and B's change after it. A keeps its
mod-sequence the way an RFC 7162 client does (qresync_client.modseq_left)
over the lines up to that response code and drops the connection there,
as if it had been lost. A new session resynchronises (SELECT INBOX
(QRESYNC (uidvalidity modseq))) from what A kept.

Prints a JSON object: A's lines of FETCH, the mod-sequence A kept, and
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
    lines = run(a, "SELECT", "INBOX")
    uidvalidity = number(lines, r"\[UIDVALIDITY (\d+)\]")
    kept = number(lines, r"\[HIGHESTMODSEQ (\d+)\]")

    b = connect(host, port, ctx, user, password)
    run(b, "SELECT", "INBOX")
    run(b, "UID", "STORE", "3", "+FLAGS.SILENT", "(\\Flagged)")
    b.logout()

    fetch = run(a, "FETCH", "1", "(MODSEQ)")
    # The connection is lost right after the response code: the client
    # has what came before it and the code itself.
    upto = next(i for i, l in enumerate(fetch) if "[HIGHESTMODSEQ " in l)
    kept = modseq_left(kept, fetch[:upto + 1])
    a.shutdown()

    c = connect(host, port, ctx, user, password)
    run(c, "ENABLE", "QRESYNC")
    rlines = run(c, "SELECT", "INBOX", "(QRESYNC (%d %d))" % (uidvalidity, kept))
    c.logout()
    print(json.dumps({
        "fetch": [l.strip() for l in fetch],
        "kept": kept,
        "resync": [l.strip() for l in rlines if "VANISHED" in l or " FETCH " in l],
    }))


if __name__ == "__main__":
    main()
