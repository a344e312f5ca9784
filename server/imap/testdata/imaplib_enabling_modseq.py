"""The HIGHESTMODSEQ of a CONDSTORE enabling command without a FETCH
(UID SEARCH MODSEQ, STATUS of the selected mailbox with HIGHESTMODSEQ),
kept by a client that loses the connection right after it, and its
resync.

Usage: imaplib_enabling_modseq.py HOST PORT CAFILE USER PASSWORD

Over implicit TLS, in the mailbox INBOX with UIDs 1 to 4. For each
command, session A selects INBOX without enabling CONDSTORE, session B
flags one message (UID 2, then UID 3), and A runs the command, its first
CONDSTORE enabling command. A keeps its mod-sequence the way an RFC 7162
client does (qresync_client.modseq_left, and a STATUS HIGHESTMODSEQ of
the selected mailbox) over the lines up to the HIGHESTMODSEQ response
code or the STATUS response, and drops the connection there, as if it
had been lost. A new session resynchronises (SELECT INBOX (QRESYNC
(uidvalidity modseq))) from what A kept.

Prints a JSON list, one object per command: the command, A's lines,
whether they had a HIGHESTMODSEQ response code or STATUS response (if
not, A kept what it had after all of them), the mod-sequence A kept, and the VANISHED and FETCH lines of the
resynchronisation.
"""
import json
import re
import ssl
import sys

from qresync_client import connect, modseq_left, number, run_ok as run


def main():
    host, port, cafile, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False

    out = []
    for uid, cmd in (("2", ("UID", "SEARCH", "MODSEQ", "1")),
                     ("3", ("STATUS", "INBOX", "(HIGHESTMODSEQ)"))):
        a = connect(host, port, ctx, user, password)
        lines = run(a, "SELECT", "INBOX")
        uidvalidity = number(lines, r"\[UIDVALIDITY (\d+)\]")
        kept = number(lines, r"\[HIGHESTMODSEQ (\d+)\]")

        b = connect(host, port, ctx, user, password)
        run(b, "SELECT", "INBOX")
        run(b, "UID", "STORE", uid, "+FLAGS.SILENT", "(\\Flagged)")
        b.logout()

        got = run(a, *cmd)
        # The connection is lost right after the response code, or the
        # STATUS response: the client has what came before and that.
        upto = next((i for i, l in enumerate(got)
                     if "[HIGHESTMODSEQ " in l or l.startswith("* STATUS ")), None)
        announced = upto is not None
        if not announced:
            upto = len(got) - 1
        kept = modseq_left(kept, got[:upto + 1])
        g = re.search(r"^\* STATUS .*HIGHESTMODSEQ (\d+)", got[upto])
        if g:
            kept = int(g.group(1))
        a.shutdown()

        c = connect(host, port, ctx, user, password)
        run(c, "ENABLE", "QRESYNC")
        rlines = run(c, "SELECT", "INBOX", "(QRESYNC (%d %d))" % (uidvalidity, kept))
        c.logout()
        out.append({
            "command": " ".join(cmd),
            "announced": announced,
            "lines": [l.strip() for l in got],
            "kept": kept,
            "resync": [l.strip() for l in rlines if "VANISHED" in l or " FETCH " in l],
        })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
