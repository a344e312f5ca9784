"""An independent IMAP client for sealmail's tests: Python's imaplib.

Usage: imaplib_client.py HOST PORT CAFILE USER PASSWORD
Logs in with STARTTLS, lists, selects, fetches, searches and appends, and
prints one JSON object with what it saw. Exits non-zero on any failure.
"""
import imaplib
import json
import re
import ssl
import sys


def check(typ, data, what):
    if typ != "OK":
        raise SystemExit("%s failed: %s %r" % (what, typ, data))
    return data


def main():
    host, port, cafile, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    out = {}
    m = imaplib.IMAP4(host, int(port))
    out["logindisabled_before_tls"] = "LOGINDISABLED" in m.capabilities
    check(*m.starttls(ssl_context=ctx), what="STARTTLS")
    check(*m.login(user, password), what="LOGIN")
    boxes = check(*m.list(), what="LIST")
    out["list"] = [b.decode() for b in boxes]
    typ, data = m.select("INBOX")
    check(typ, data, "SELECT")
    out["exists"] = int(data[0])
    out["unseen_code"] = [u.decode() for u in m.untagged_responses.get("UNSEEN", [])]
    typ, data = m.fetch("1", "(UID RFC822.SIZE BODY.PEEK[])")
    check(typ, data, "FETCH")
    out["body"] = data[0][1].decode()
    out["fetch_meta"] = data[0][0].decode()
    typ, data = m.search(None, "TEXT", '"python canary"')
    out["search_text"] = check(typ, data, "SEARCH")[0].decode()
    typ, data = m.uid("SEARCH", "UNSEEN")
    out["uid_search_unseen"] = check(typ, data, "UID SEARCH")[0].decode()
    msg = b"From: py@example.org\r\nSubject: from python\r\n\r\nappended by imaplib\r\n"
    typ, data = m.append("INBOX", "(\\Seen)", None, msg)
    check(typ, data, "APPEND")
    out["appenduid"] = bool(re.search(rb"APPENDUID \d+ \d+", data[0]))
    typ, data = m.noop()
    typ, data = m.fetch("2", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    check(typ, data, "FETCH 2")
    out["appended_subject"] = data[0][1].decode().strip()
    out["appended_flags"] = data[0][0].decode()
    typ, data = m.store("1", "+FLAGS", "(\\Flagged)")
    out["store"] = check(typ, data, "STORE")[0].decode()
    typ, data = m.status("INBOX", "(MESSAGES UNSEEN SIZE)")
    out["status"] = check(typ, data, "STATUS")[0].decode()
    m.close()
    m.logout()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
