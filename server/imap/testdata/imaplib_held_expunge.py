"""A removal held back from a QRESYNC client, and what it learns meanwhile.

Usage: imaplib_held_expunge.py HOST PORT CAFILE USER PASSWORD

Two rounds over implicit TLS, in the mailbox INBOX of at least 5
messages with UIDs 1 to 5. In each round session A (ENABLE QRESYNC,
SELECT INBOX) runs a command after which no EXPUNGE may be sent while
session B expunges a message and changes another one's flags, so that A
is told a MODSEQ above the removal's. A then drops the connection. A new
session resynchronises (SELECT INBOX (QRESYNC (uidvalidity modseq)))
from the mod-sequence A was left at, the way an RFC 7162 client keeps it:
the highest FETCH MODSEQ seen, replaced by any later HIGHESTMODSEQ
response code.

  round "fetch": B expunges UID 1 and flags UID 2; A runs
                 FETCH 2 (FLAGS) (CHANGEDSINCE m).
  round "store": B expunges UID 3 and flags UID 4; A runs
                 STORE * (UNCHANGEDSINCE m) +FLAGS (\\Seen), * being UID 5.

Prints one JSON object per round name: A's lines of that command, the
mod-sequence A was left at, whether A was told of the removal, and the
VANISHED (EARLIER) line of the resynchronisation ("" if none).
"""
import json
import re
import ssl
import sys

from qresync_client import connect, modseq_left, number


def run(m, name, *args):
    """Runs a raw command; returns its status and the lines it read."""
    start = len(m.lines)
    typ, _ = m._simple_command(name, *args)
    if name in ("SELECT", "EXAMINE") and typ == "OK":
        m.state = "SELECTED"
    return typ, m.lines[start:]


def told_of(uid, lines):
    for line in lines:
        g = re.match(r"^\* VANISHED (?:\(EARLIER\) )?(\S+)", line)
        if g and str(uid) in re.split(r"[,:]", g.group(1)):
            return True
    return False


def main():
    host, port, cafile, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    b = connect(host, port, ctx, user, password)
    typ, _ = run(b, "SELECT", "INBOX")
    assert typ == "OK", typ
    rounds = {
        "fetch": (1, 2, lambda m: ("FETCH", "2", "(FLAGS)", "(CHANGEDSINCE %d)" % m)),
        "store": (3, 4, lambda m: ("STORE", "*", "(UNCHANGEDSINCE %d)" % (m + 1000), "+FLAGS", "(\\Seen)")),
    }
    out = {}
    for name, (gone, flagged, command) in rounds.items():
        a = connect(host, port, ctx, user, password)
        typ, _ = run(a, "ENABLE", "QRESYNC")
        assert typ == "OK", typ
        typ, lines = run(a, "SELECT", "INBOX")
        assert typ == "OK", typ
        uidvalidity = number(lines, r"\[UIDVALIDITY (\d+)\]")
        selected = number(lines, r"\[HIGHESTMODSEQ (\d+)\]")

        typ, _ = run(b, "UID", "STORE", str(gone), "+FLAGS.SILENT", "(\\Deleted)")
        assert typ == "OK", typ
        typ, _ = run(b, "UID", "EXPUNGE", str(gone))
        assert typ == "OK", typ
        typ, _ = run(b, "UID", "STORE", str(flagged), "+FLAGS.SILENT", "(\\Flagged)")
        assert typ == "OK", typ

        typ, lines = run(a, *command(selected))
        left = modseq_left(selected, lines)
        # Gone without LOGOUT: the connection is lost.
        a.shutdown()

        c = connect(host, port, ctx, user, password)
        run(c, "ENABLE", "QRESYNC")
        rtyp, rlines = run(c, "SELECT", "INBOX", "(QRESYNC (%d %d))" % (uidvalidity, left))
        c.logout()
        out[name] = {
            "status": typ,
            "lines": lines,
            "selected": selected,
            "left": left,
            "told": told_of(gone, lines),
            "resync": rtyp,
            "vanished": next((l for l in rlines if l.startswith("* VANISHED (EARLIER)")), ""),
        }
    b.logout()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
