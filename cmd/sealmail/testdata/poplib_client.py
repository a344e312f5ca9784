"""A POP3 session with Python's poplib against sealmail, for TestPOP3Python.

Usage: poplib_client.py HOST PORT_STLS PORT_TLS CAFILE USER PASSWORD

Prints one JSON object with what the server answered. Message bodies are
base64 so that their bytes survive JSON unchanged.
"""
import base64
import json
import poplib
import ssl
import sys

host, port, tls_port, cafile, user, password = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
out = {}


def lines_bytes(lines):
    # poplib strips CRLF and undoes dot-stuffing; restore CRLF line ends.
    return b"".join(l + b"\r\n" for l in lines)


p = poplib.POP3(host, int(port), timeout=30)
out["welcome"] = p.getwelcome().decode()
out["capa_plain"] = sorted(p.capa().keys())
try:
    p.user(user)
    out["user_before_tls"] = "accepted"
except poplib.error_proto as e:
    out["user_before_tls"] = e.args[0].decode()
p.stls(context=ctx)
out["capa_tls"] = sorted(p.capa().keys())
try:
    p.user(user)
    p.pass_("wrong " + password)
    out["wrong_password"] = "accepted"
except poplib.error_proto as e:
    out["wrong_password"] = e.args[0].decode()
p.user(user)
out["pass"] = p.pass_(password).decode()
out["stat"] = list(p.stat())
resp, listing, _ = p.list()
out["list"] = [l.decode() for l in listing]
resp, uidls, _ = p.uidl()
out["uidl"] = [l.decode() for l in uidls]
out["top"] = []
out["retr"] = []
for i in range(1, len(listing) + 1):
    resp, lines, octets = p.top(i, 0)
    out["top"].append(base64.b64encode(lines_bytes(lines)).decode())
    resp, lines, octets = p.retr(i)
    out["retr"].append(base64.b64encode(lines_bytes(lines)).decode())
out["dele"] = p.dele(1).decode()
out["quit"] = p.quit().decode()

q = poplib.POP3_SSL(host, int(tls_port), context=ctx, timeout=30)
q.user(user)
q.pass_(password)
out["stat_after"] = list(q.stat())
resp, uidls, _ = q.uidl()
out["uidl_after"] = [l.decode() for l in uidls]
q.quit()
print(json.dumps(out))
