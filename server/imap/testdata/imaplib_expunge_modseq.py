"""EXPUNGE's HIGHESTMODSEQ kept by a QRESYNC client, and its resync.

Usage: imaplib_expunge_modseq.py HOST PORT CAFILE USER PASSWORD

Over implicit TLS, in the mailbox INBOX with UIDs 1 to 6. Session A
(ENABLE QRESYNC, SELECT INBOX) keeps its mod-sequence the way an RFC
7162 client does: the highest FETCH MODSEQ seen, replaced by any later
HIGHESTMODSEQ response code, tagged ones included. Session B flags
UID 2 and expunges UID 3; A runs FETCH 1 (FLAGS), after which the
removal is held back from it, and STORE 4 +FLAGS.SILENT (\Deleted),
then expunges UID 4 with UID EXPUNGE.
A session with no mailbox selected reads STATUS INBOX (HIGHESTMODSEQ),
the store's value (B's own STATUS would give the value its client may
keep, below the removal its view still holds for it). A drops the
connection. B then
flags UID 5, expunges UID 6 and appends a message (UID 7). A new
session resynchronises (SELECT INBOX (QRESYNC (uidvalidity modseq)))
from what A kept.

Prints a JSON object: A's lines of FETCH and of UID EXPUNGE, the
mod-sequence A kept, that STATUS HIGHESTMODSEQ, and the VANISHED and
FETCH lines of the resynchronisation.
"""
import json
import ssl
import sys

from qresync_client import connect, modseq_left, number, run_ok as run


def main():
    host, port, cafile, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    b = connect(host, port, ctx, user, password)
    run(b, "SELECT", "INBOX")

    a = connect(host, port, ctx, user, password)
    run(a, "ENABLE", "QRESYNC")
    lines = run(a, "SELECT", "INBOX")
    uidvalidity = number(lines, r"\[UIDVALIDITY (\d+)\]")
    kept = number(lines, r"\[HIGHESTMODSEQ (\d+)\]")

    run(b, "UID", "STORE", "2", "+FLAGS.SILENT", "(\\Flagged)")
    run(b, "UID", "STORE", "3", "+FLAGS.SILENT", "(\\Deleted)")
    run(b, "UID", "EXPUNGE", "3")

    fetch = run(a, "FETCH", "1", "(FLAGS)")
    kept = modseq_left(kept, fetch)
    # By sequence number, so the removal stays held back (UID 4 is
    # message 4: UID 3 is still message 3 for A).
    kept = modseq_left(kept, run(a, "STORE", "4", "+FLAGS.SILENT", "(\\Deleted)"))
    expunge = run(a, "UID", "EXPUNGE", "4")
    kept = modseq_left(kept, expunge)
    d = connect(host, port, ctx, user, password)
    status = number(run(d, "STATUS", "INBOX", "(HIGHESTMODSEQ)"), r"HIGHESTMODSEQ (\d+)")
    d.logout()
    # Gone without LOGOUT: the connection is lost.
    a.shutdown()

    run(b, "UID", "STORE", "5", "+FLAGS.SILENT", "(\\Seen)")
    run(b, "UID", "STORE", "6", "+FLAGS.SILENT", "(\\Deleted)")
    run(b, "UID", "EXPUNGE", "6")
    msg = b"From: b@example.org\r\nSubject: seven\r\n\r\nseven\r\n"
    typ, _ = b.append("INBOX", None, None, msg)
    assert typ == "OK", typ
    b.logout()

    c = connect(host, port, ctx, user, password)
    run(c, "ENABLE", "QRESYNC")
    rlines = run(c, "SELECT", "INBOX", "(QRESYNC (%d %d))" % (uidvalidity, kept))
    c.logout()
    print(json.dumps({
        "fetch": fetch,
        "expunge": expunge,
        "kept": kept,
        "status": status,
        "resync": [l.strip() for l in rlines if "VANISHED" in l or " FETCH " in l],
    }))


if __name__ == "__main__":
    main()
