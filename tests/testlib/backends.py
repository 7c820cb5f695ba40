"""Small threaded loopback backends for gateway tests.

Every backend binds and listens on 127.0.0.1 (or ::1) on a free port before its constructor
returns (no sleeps needed), exposes `.port`, `.host` and `.close()`, and can be used as a
context manager. Pass `ssl_context` (a server-side ssl.SSLContext) to speak TLS; the peer's
certificate (DER) of each connection is then recorded in `.peer_certs`.

    TcpEchoBackend()      echoes every byte back.
    HttpEchoBackend()     answers every request with a JSON body describing it:
                          {"method", "path", "version", "headers": [[name, value], ...],
                           "body": <text>, "body_len", "chunked", "conn": <n>, "seq": <n>}
                          keep-alive, pipelining, chunked request bodies, Expect: 100-continue,
                          Upgrade: websocket (answers 101, then echoes raw bytes).
                          `delay=` seconds before answering (backend timeout tests),
                          `refuse_upgrade=True` answers an Upgrade with 426.
    ProxyV2Backend()      reads a PROXY protocol v2 header, records it parsed in `.headers`
                          (see parse_proxy_v2), then echoes the rest of the stream.
    unused_port()         a port with nothing listening (backend-down tests).

Helpers for assertions: `header_values(resp_json, name)` (case-insensitive),
`parse_proxy_v2(bytes)`.
"""

import json
import socket
import ssl
import struct
import threading
import time

__all__ = [
    "TcpEchoBackend",
    "HttpEchoBackend",
    "ProxyV2Backend",
    "unused_port",
    "header_values",
    "parse_proxy_v2",
    "PP2_SIGNATURE",
]

PP2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_NAMES = {
    0x21: "version",
    0x22: "cn",
    0x23: "cipher",
    0x24: "sig_alg",
    0x25: "key_alg",
}
PP2_TYPE_CLIENT_CERT = 0x28

MAX_HEAD = 256 * 1024


def unused_port(host="127.0.0.1"):
    """A port that was free a moment ago and has nothing listening on it."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def header_values(resp, name):
    """All values of header `name` (any case) in an HttpEchoBackend JSON reply."""
    lname = name.lower()
    return [v for (n, v) in resp["headers"] if n.lower() == lname]


class _Backend:
    """Listening socket + accept thread + one thread per connection."""

    def __init__(self, host="127.0.0.1", ssl_context=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self._ssl = ssl_context
        self._lock = threading.Lock()
        self._conns = []
        self._threads = []
        self._closed = False
        self.peer_certs = []
        self.connections = 0
        self.errors = []
        self._sock = socket.socket(fam, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    @property
    def address(self):
        return "[%s]:%d" % (self.host, self.port) if ":" in self.host else "%s:%d" % (
            self.host, self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self.connections += 1
                seq = self.connections
                self._conns.append(conn)
            t = threading.Thread(target=self._run, args=(conn, seq), daemon=True)
            with self._lock:
                self._threads.append(t)
            t.start()

    def _run(self, conn, seq):
        try:
            if self._ssl is not None:
                conn.settimeout(10)
                tconn = self._ssl.wrap_socket(conn, server_side=True)
                tconn.settimeout(None)
                der = tconn.getpeercert(binary_form=True)
                with self._lock:
                    self.peer_certs.append(der)
                    self._conns.append(tconn)
                conn = tconn
            self.handle(conn, seq)
        except (OSError, ValueError, ssl.SSLError) as e:
            if not self._closed:
                with self._lock:
                    self.errors.append(repr(e))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle(self, conn, seq):
        raise NotImplementedError

    def close(self):
        with self._lock:
            self._closed = True
            conns = list(self._conns)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        self._accepter.join(5)
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(5)


def _echo(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


class TcpEchoBackend(_Backend):
    """Echoes every byte; `.received` counts bytes received over all connections."""

    def __init__(self, host="127.0.0.1", ssl_context=None):
        self.received = 0
        super().__init__(host, ssl_context)

    def handle(self, conn, seq):
        while True:
            data = conn.recv(65536)
            if not data:
                return
            with self._lock:
                self.received += len(data)
            conn.sendall(data)


class _Reader:
    """Buffered reads from a socket: lines and exact byte counts."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = b""

    def _fill(self):
        data = self.conn.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise ValueError("line too long")
            self._fill()
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def take_all(self):
        out, self.buf = self.buf, b""
        return out


class HttpEchoBackend(_Backend):
    """HTTP/1.1 backend answering each request with a JSON description of it.

    `.requests` lists every request's description (same dict as the JSON body)."""

    def __init__(self, host="127.0.0.1", ssl_context=None, delay=0.0, refuse_upgrade=False):
        self.delay = delay
        self.refuse_upgrade = refuse_upgrade
        self.requests = []
        super().__init__(host, ssl_context)

    def handle(self, conn, seq):
        rd = _Reader(conn)
        n = 0
        while True:
            try:
                start = rd.line()
            except EOFError:
                return
            if start in (b"\r\n", b"\n"):
                continue
            parts = start.decode("latin-1").rstrip("\r\n").split(" ")
            if len(parts) != 3:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            method, path, version = parts
            headers = []
            while True:
                line = rd.line()
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
                headers.append([name, value.strip()])
            lower = {}
            for name, value in headers:
                lower.setdefault(name.lower(), []).append(value)
            n += 1
            desc = {"method": method, "path": path, "version": version, "headers": headers,
                    "conn": seq, "seq": n, "chunked": False}
            if "100-continue" in [v.lower() for v in lower.get("expect", [])]:
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            te = ",".join(lower.get("transfer-encoding", [])).lower()
            body = b""
            if "chunked" in te:
                desc["chunked"] = True
                body = self._read_chunked(rd, desc)
            elif "content-length" in lower:
                body = rd.exact(int(lower["content-length"][0]))
            desc["body"] = body.decode("utf-8", "replace")
            desc["body_len"] = len(body)
            with self._lock:
                self.requests.append(desc)
            if self.delay:
                time.sleep(self.delay)
            upgrade = [v.lower() for v in lower.get("upgrade", [])]
            if upgrade:
                if self.refuse_upgrade:
                    self._respond(conn, desc, status="426 Upgrade Required", close=True)
                    return
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " +
                             upgrade[0].encode() + b"\r\nConnection: Upgrade\r\n\r\n")
                rest = rd.take_all()
                if rest:
                    conn.sendall(rest)
                _echo(conn)
                return
            conn_hdr = ",".join(lower.get("connection", [])).lower()
            close = "close" in conn_hdr or (version == "HTTP/1.0" and "keep-alive" not in conn_hdr)
            self._respond(conn, desc, close=close, head=(method == "HEAD"))
            if close:
                return

    @staticmethod
    def _read_chunked(rd, desc):
        body = b""
        while True:
            size_line = rd.line().decode("latin-1").strip()
            size = int(size_line.split(";")[0], 16)
            if size == 0:
                break
            body += rd.exact(size)
            rd.exact(2)
        trailers = []
        while True:
            line = rd.line()
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
            trailers.append([name, value.strip()])
        desc["trailers"] = trailers
        return body

    @staticmethod
    def _respond(conn, desc, status="200 OK", close=False, head=False):
        body = json.dumps(desc).encode()
        out = ("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
               % (status, len(body))).encode()
        if close:
            out += b"Connection: close\r\n"
        out += b"\r\n"
        if not head:
            out += body
        conn.sendall(out)


def parse_proxy_v2(data):
    """Parse a PROXY v2 header at the start of data.

    Returns (header_dict, consumed) or raises ValueError. header_dict has: version, command
    ("PROXY"/"LOCAL"), family ("TCP4"/"TCP6"/"UNSPEC"), src and dst as (ip, port) or None,
    tlvs: list of (type, bytes), authority (str or None), ssl (dict or None: client, verify,
    version, cn, cipher, sig_alg, key_alg, sub: {subtype: bytes}), cert_der (bytes or None)."""
    if len(data) < 16:
        raise ValueError("short header")
    if data[:12] != PP2_SIGNATURE:
        raise ValueError("bad signature")
    ver_cmd, fam, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise ValueError("bad version %d" % (ver_cmd >> 4))
    if len(data) < 16 + length:
        raise ValueError("short header")
    body = data[16:16 + length]
    h = {"version": 2, "command": {0: "LOCAL", 1: "PROXY"}.get(ver_cmd & 0xF, "?"),
         "family": "UNSPEC", "src": None, "dst": None, "tlvs": [], "authority": None,
         "ssl": None, "cert_der": None, "raw": data[:16 + length]}
    pos = 0
    if fam == 0x11:
        if length < 12:
            raise ValueError("short TCP4 addresses")
        src, dst = socket.inet_ntop(socket.AF_INET, body[0:4]), socket.inet_ntop(
            socket.AF_INET, body[4:8])
        sp, dp = struct.unpack("!HH", body[8:12])
        h.update(family="TCP4", src=(src, sp), dst=(dst, dp))
        pos = 12
    elif fam == 0x21:
        if length < 36:
            raise ValueError("short TCP6 addresses")
        src, dst = socket.inet_ntop(socket.AF_INET6, body[0:16]), socket.inet_ntop(
            socket.AF_INET6, body[16:32])
        sp, dp = struct.unpack("!HH", body[32:36])
        h.update(family="TCP6", src=(src, sp), dst=(dst, dp))
        pos = 36
    elif fam != 0x00:
        raise ValueError("unsupported family 0x%02x" % fam)
    h["tlvs"] = _parse_tlvs(body[pos:])
    for t, v in h["tlvs"]:
        if t == PP2_TYPE_AUTHORITY:
            h["authority"] = v.decode("utf-8", "replace")
        elif t == PP2_TYPE_SSL:
            if len(v) < 5:
                raise ValueError("short PP2_TYPE_SSL")
            ssl_info = {"client": v[0], "verify": struct.unpack("!I", v[1:5])[0], "sub": {}}
            for st, sv in _parse_tlvs(v[5:]):
                ssl_info["sub"][st] = sv
                if st in PP2_SUBTYPE_NAMES:
                    ssl_info[PP2_SUBTYPE_NAMES[st]] = sv.decode("utf-8", "replace")
            h["ssl"] = ssl_info
        elif t == PP2_TYPE_CLIENT_CERT:
            h["cert_der"] = v
    return h, 16 + length


def _parse_tlvs(data):
    out = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 3:
            raise ValueError("truncated TLV")
        t = data[pos]
        n = struct.unpack("!H", data[pos + 1:pos + 3])[0]
        if len(data) - pos - 3 < n:
            raise ValueError("TLV 0x%02x length %d overruns header" % (t, n))
        out.append((t, data[pos + 3:pos + 3 + n]))
        pos += 3 + n
    return out


class ProxyV2Backend(_Backend):
    """Reads a PROXY v2 header from each connection, records it in `.headers` (parse_proxy_v2's
    dict, or {"error": "..."} when it is malformed, then the connection is closed), and echoes
    the rest of the stream. `wait_headers(n, timeout)` waits until n headers were recorded."""

    def __init__(self, host="127.0.0.1", ssl_context=None):
        self.headers = []
        self._cond = threading.Condition()
        super().__init__(host, ssl_context)

    def _record(self, h):
        with self._cond:
            self.headers.append(h)
            self._cond.notify_all()

    def wait_headers(self, n=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.headers) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("PROXY v2 backend got %d headers, wanted %d"
                                       % (len(self.headers), n))
                self._cond.wait(left)
            return list(self.headers)

    def handle(self, conn, seq):
        buf = b""
        try:
            while True:
                if len(buf) >= 16:
                    if buf[:12] != PP2_SIGNATURE:
                        raise ValueError("bad signature")
                    need = 16 + struct.unpack("!H", buf[14:16])[0]
                    if len(buf) >= need:
                        break
                data = conn.recv(65536)
                if not data:
                    raise ValueError("connection closed inside the PROXY header")
                buf += data
            h, used = parse_proxy_v2(buf)
        except ValueError as e:
            self._record({"error": str(e), "raw": buf})
            return
        h["conn"] = seq
        self._record(h)
        rest = buf[used:]
        if rest:
            conn.sendall(rest)
        _echo(conn)
