"""What the QRESYNC client scripts share (imaplib_held_expunge.py,
imaplib_expunge_modseq.py, imaplib_announce_modseq.py,
imaplib_enabling_modseq.py, imaplib_poll_modseq.py): a client that
keeps every line it reads, a raw command that must succeed, and the
mod-sequence an RFC 7162 client keeps."""
import imaplib
import re
import sys


class Recorder(imaplib.IMAP4_SSL):
    """IMAP4_SSL that keeps every response line it reads, in order."""

    def __init__(self, *a, **kw):
        self.lines = []
        super().__init__(*a, **kw)

    def _get_line(self):
        line = super()._get_line()
        self.lines.append(line.decode("utf-8", "replace"))
        return line


def connect(host, port, ctx, user, password):
    m = Recorder(host, int(port), ssl_context=ctx)
    imaplib.Commands.setdefault("ENABLE", ("NONAUTH", "AUTH", "SELECTED"))
    m.login(user, password)
    return m


def number(lines, pattern):
    """The first number pattern's group finds in lines, or 0."""
    for line in lines:
        g = re.search(pattern, line)
        if g:
            return int(g.group(1))
    return 0


def modseq_left(start, lines):
    """The HIGHESTMODSEQ a client keeps after lines (RFC 7162 §3.2): the
    highest FETCH MODSEQ, replaced by any later HIGHESTMODSEQ response
    code, tagged ones included."""
    ms = start
    for line in lines:
        g = re.search(r"\[HIGHESTMODSEQ (\d+)\]", line)
        if g:
            ms = int(g.group(1))
            continue
        g = re.search(r"^\* \d+ FETCH .*MODSEQ \((\d+)\)", line)
        if g:
            ms = max(ms, int(g.group(1)))
    return ms


def run_ok(m, name, *args):
    """Runs a raw command, which must succeed; returns the lines it read."""
    start = len(m.lines)
    typ, _ = m._simple_command(name, *args)
    if typ != "OK":
        sys.exit("%s %s: %s %s" % (name, args, typ, m.lines[start:]))
    if name in ("SELECT", "EXAMINE"):
        m.state = "SELECTED"
    return m.lines[start:]
