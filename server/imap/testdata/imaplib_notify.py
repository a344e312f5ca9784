"""One IMAP session in Python's imaplib, driven step by step, to watch what
sealmail says while no command runs (NOTIFY, RFC 5465).

Usage: imaplib_notify.py HOST PORT CAFILE USER PASSWORD

Connects with implicit TLS and logs in with imaplib, then reads one JSON
object per line on standard input and answers each with one JSON line:

  {"op": "cmd", "line": "NOTIFY SET ..."}
      sends the command with a new tag (raw, as written) and reads to its
      tagged response: {"status": "OK", "text": ..., "lines": [untagged]}
  {"op": "send", "data": "..."}
      writes data as it is (a command in parts, a literal): {}
  {"op": "wait", "match": REGEX, "secs": N}
      reads what the server sends unasked until a line matches REGEX
      (case-insensitive) or N seconds pass: {"matched": bool, "lines": [...]}
      A wait that times out ends the session (imaplib's socket file cannot
      be read after a timeout): later requests answer {"error": ...}.

A closed standard input logs out.
"""
import imaplib
import json
import re
import socket
import ssl
import sys


def line(m):
    raw = m.readline()
    if not raw:
        raise EOFError("server closed the connection")
    return raw.decode("utf-8", "replace").rstrip("\r\n")


def main():
    host, port, cafile, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
    m.login(user, password)
    n = 0
    dead = False
    for req in sys.stdin:
        req = json.loads(req)
        if dead:
            out = {"error": "session ended by a timed-out wait"}
        elif req["op"] == "cmd":
            n += 1
            tag = "N%d" % n
            m.sock.settimeout(30)
            m.send(("%s %s\r\n" % (tag, req["line"])).encode())
            lines = []
            while True:
                l = line(m)
                if l.startswith(tag + " "):
                    status, _, text = l[len(tag) + 1:].partition(" ")
                    out = {"status": status, "text": text, "lines": lines}
                    break
                lines.append(l)
        elif req["op"] == "send":
            m.send(req["data"].encode())
            out = {}
        elif req["op"] == "wait":
            m.sock.settimeout(float(req["secs"]))
            lines, matched = [], False
            try:
                while True:
                    l = line(m)
                    lines.append(l)
                    if re.search(req["match"], l, re.I):
                        matched = True
                        break
            except (socket.timeout, TimeoutError):
                dead = True
            out = {"matched": matched, "lines": lines}
        else:
            out = {"error": "unknown op"}
        print(json.dumps(out), flush=True)
    if not dead:
        m.sock.settimeout(30)
        m.logout()


if __name__ == "__main__":
    main()
