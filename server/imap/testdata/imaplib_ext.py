"""Python's imaplib speaking raw commands of IMAP extensions to sealmail.

Usage: imaplib_ext.py HOST PORT CAFILE USER PASSWORD < commands.json

Connects with implicit TLS, logs in, and runs each command of the JSON
list on standard input: ["NAME", "arg", ...] (arguments are sent as they
are, joined by spaces; a literal is written inline as "{n+}\\r\\n..." with
LITERAL+; an argument "$TAG:n" is the tag of the n-th command, from 0).
Prints one JSON list: for each command, its tag, status and tagged text,
and the untagged responses that came with it, by name. Exits
non-zero on a protocol failure.
"""
import imaplib
import json
import re
import ssl
import sys


def text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, tuple):
        return [text(x) for x in v]
    return v


def untagged(m):
    out = {}
    for name, values in m.untagged_responses.items():
        out[name] = [text(v) for v in values if v is not None]
    m.untagged_responses.clear()
    return out


def main():
    host, port, cafile, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
    for name in ("SORT", "THREAD", "CANCELUPDATE", "ID", "ENABLE"):
        imaplib.Commands.setdefault(name, ("NONAUTH", "AUTH", "SELECTED"))
    m.login(user, password)
    m.untagged_responses.clear()
    results = []
    for cmd in json.load(sys.stdin):
        name = cmd[0]
        args = [re.sub(r"\$TAG:(\d+)", lambda g: results[int(g.group(1))]["tag"], a) for a in cmd[1:]]
        tag = m.tagpre + str(m.tagnum).encode()
        try:
            typ, data = m._simple_command(name, *args)
        except m.error as e:
            typ, data = "BAD", [str(e)]
        if typ == "OK" and name in ("SELECT", "EXAMINE"):
            m.state = "SELECTED"
        elif typ == "OK" and name in ("CLOSE", "UNSELECT"):
            m.state = "AUTH"
        results.append({"tag": text(tag), "status": typ, "text": text(data[-1]) if data else "", "untagged": untagged(m)})
    m.logout()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
