"""Python's imaplib against the wire layer (an independent client).

Usage: imaplib_wire.py HOST PORT
STARTTLS (certificate not checked: a throwaway test certificate), LOGIN,
then the commands below; prints one JSON object with what it saw and
exits non-zero on any failure.
"""
import imaplib
import json
import ssl
import sys


def check(typ, data, what):
    if typ != "OK":
        raise SystemExit("%s failed: %s %r" % (what, typ, data))
    return data


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = {}
    m = imaplib.IMAP4(host, port)
    out["logindisabled"] = "LOGINDISABLED" in m.capabilities
    check(*m.starttls(ssl_context=ctx), what="STARTTLS")
    check(*m.login("user", "pass"), what="LOGIN")
    caps = check(*m.capability(), what="CAPABILITY")[0].decode()
    out["caps"] = sorted(caps.upper().split())
    typ, data = m.select("INBOX")
    out["exists"] = int(check(typ, data, "SELECT")[0])
    data = check(*m.fetch("1", "(UID FLAGS BODY.PEEK[])"), what="FETCH")
    out["fetch_meta"] = data[0][0].decode()
    out["body"] = data[0][1].decode()
    msg = b"From: <py@example.org>\r\nSubject: from python\r\n\r\nappended by imaplib\r\n"
    typ, data = m.append("INBOX", "(\\Flagged)", None, msg)
    out["append"] = check(typ, data, "APPEND")[0].decode()
    out["search"] = check(*m.search(None, "TEXT", "imaplib"), what="SEARCH")[0].decode()
    check(*m.create("Entw&APw-rfe"), what="CREATE")
    out["list"] = [b.decode() for b in check(*m.list('""', "Entw*"), what="LIST")]
    typ, data = m.create('"Tom & Jerry"')
    out["bad_name"] = typ + " " + data[0].decode()
    out["store"] = check(*m.store("2", "+FLAGS", "\\Seen"), what="STORE")[0].decode()
    try:
        m._simple_command("FETCH", "4294967296", "(UID)")
        out["bad_number"] = "OK"
    except imaplib.IMAP4.error as e:
        out["bad_number"] = str(e)
    check(*m.noop(), what="NOOP after BAD")
    out["logout"] = m.logout()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
