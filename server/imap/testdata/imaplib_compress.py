"""Python's imaplib with COMPRESS=DEFLATE (RFC 4978) against sealmail.

Usage: imaplib_compress.py HOST PORT CAFILE USER PASSWORD

Connects with implicit TLS, logs in, checks that COMPRESS=DEFLATE is
advertised, sends COMPRESS DEFLATE and from its OK on speaks raw DEFLATE
(zlib, no header) both ways: SELECT INBOX, FETCH 1 BODY.PEEK[], a second
COMPRESS (which must fail: COMPRESSIONACTIVE), NOOP, LOGOUT. Prints one
JSON object with what it saw and how many bytes crossed the socket each
way after COMPRESS. Exits non-zero on a protocol failure.
"""
import imaplib
import json
import ssl
import sys
import zlib


class DeflateIMAP(imaplib.IMAP4_SSL):
    """IMAP4_SSL whose send and read go through DEFLATE once enabled."""

    deflating = False
    wire_in = 0
    wire_out = 0

    def start_deflate(self):
        self.deflating = True
        self._comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._decomp = zlib.decompressobj(-15)
        self._plain = b""

    def send(self, data):
        if not self.deflating:
            return super().send(data)
        out = self._comp.compress(data) + self._comp.flush(zlib.Z_SYNC_FLUSH)
        self.wire_out += len(out)
        self.sock.sendall(out)

    def _fill(self):
        chunk = self.sock.recv(16384)
        if not chunk:
            raise self.abort("connection closed")
        self.wire_in += len(chunk)
        self._plain += self._decomp.decompress(chunk)

    def read(self, size):
        if not self.deflating:
            return super().read(size)
        while len(self._plain) < size:
            self._fill()
        out, self._plain = self._plain[:size], self._plain[size:]
        return out

    def readline(self):
        if not self.deflating:
            return super().readline()
        while b"\n" not in self._plain:
            self._fill()
        i = self._plain.index(b"\n") + 1
        out, self._plain = self._plain[:i], self._plain[i:]
        return out


def main():
    host, port, cafile, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))
    m = DeflateIMAP(host, int(port), ssl_context=ctx)
    m.login(user, password)
    typ, caps = m.capability()
    out = {"caps": caps[0].decode()}
    # imaplib reads the OK line before switching: the server sends it
    # uncompressed, then compresses everything after.
    typ, data = m._simple_command("COMPRESS", "DEFLATE")
    out["compress"] = typ
    if typ != "OK":
        print(json.dumps(out))
        return
    m.start_deflate()
    typ, data = m.select("INBOX")
    out["select"] = [typ, data[0].decode()]
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    out["fetch"] = [typ, data[0][1].decode() if typ == "OK" else ""]
    try:
        typ, data = m._simple_command("COMPRESS", "DEFLATE")
        out["again"] = [typ, data[-1].decode()]
    except m.error as e:
        out["again"] = ["NO", str(e)]
    typ, data = m.noop()
    out["noop"] = typ
    m.logout()
    out["wire_in"] = m.wire_in
    out["wire_out"] = m.wire_out
    print(json.dumps(out))


if __name__ == "__main__":
    main()
