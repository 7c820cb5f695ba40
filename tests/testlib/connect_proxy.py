"""A small HTTP CONNECT proxy on 127.0.0.1 for tests of clients behind a company proxy.

    with ConnectProxy() as proxy:                      # open tunnels to anything
    with ConnectProxy(auth=("user", "pw")) as proxy:  # 407 until Proxy-Authorization matches
    with ConnectProxy(refuse=403) as proxy:           # answers every CONNECT with 403

proxy.url is "http://127.0.0.1:PORT" (proxy.url_with(user, pw) puts credentials in it);
proxy.requests lists each CONNECT it got as (target, Proxy-Authorization value or None), so a
test can assert that a client did (or did not) go through it. Only CONNECT is served. Every
connection has a deadline, and stop() ends them all.
"""

import base64
import select
import socket
import threading
import time

HEAD_MAX = 16 * 1024
DEADLINE = 60  # seconds a tunnel may live


class ConnectProxy:
    def __init__(self, auth=None, refuse=None):
        self.auth = auth
        self.refuse = refuse
        self.requests = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads = []
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    def url_with(self, user, password):
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def targets(self):
        with self._lock:
            return [t for t, _ in self.requests]

    def stop(self):
        self._stop.set()
        self._accepter.join(timeout=5)
        self._sock.close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _read_head(self, conn, deadline):
        data = b""
        while b"\r\n\r\n" not in data:
            if len(data) > HEAD_MAX or time.monotonic() > deadline or self._stop.is_set():
                return None
            r, _, _ = select.select([conn], [], [], 0.2)
            if not r:
                continue
            chunk = conn.recv(4096)
            if not chunk:
                return None
            data += chunk
        return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")

    def _answer(self, conn, status, reason, extra=""):
        conn.sendall(f"HTTP/1.1 {status} {reason}\r\n{extra}"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())

    def _serve(self, conn):
        deadline = time.monotonic() + DEADLINE
        try:
            head = self._read_head(conn, deadline)
            if head is None:
                return
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if len(parts) != 3 or parts[0] != "CONNECT":
                self._answer(conn, 405, "Method Not Allowed")
                return
            target = parts[1]
            with self._lock:
                self.requests.append((target, headers.get("proxy-authorization")))
            if self.refuse:
                self._answer(conn, self.refuse, "Forbidden")
                return
            if self.auth is not None:
                want = "Basic " + base64.b64encode(
                    f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
                if headers.get("proxy-authorization") != want:
                    self._answer(conn, 407, "Proxy Authentication Required",
                                 'Proxy-Authenticate: Basic realm="test proxy"\r\n')
                    return
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._relay(conn, upstream, deadline)
        except OSError:
            pass
        finally:
            conn.close()

    def _relay(self, a, b, deadline):
        try:
            while time.monotonic() < deadline and not self._stop.is_set():
                r, _, _ = select.select([a, b], [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        finally:
            b.close()


class Tinyproxy:
    """tinyproxy (a real, independent CONNECT proxy) on a free loopback port, in the
    foreground; saw(target) tells whether its log shows a CONNECT to target ("HOST:PORT").
    auth=(user, password) makes it require Basic credentials."""

    def __init__(self, workdir, auth=None):
        import shutil
        import subprocess
        from twoway_testlib import free_port, wait_for_line, stop
        self._stop_proc = stop
        self._wait = wait_for_line
        exe = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        self.port = free_port()
        conf = workdir / f"tinyproxy-{self.port}.conf"
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Allow 127.0.0.1", "Timeout 60",
                 "MaxClients 20", "LogLevel Info"]
        if auth:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([exe, "-d", "-c", str(conf)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        try:
            wait_for_line(self.proc, r"Accepting connections", timeout=10)
        except Exception:
            stop(self.proc)
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def url_with(self, user, password):
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def saw(self, target, timeout=5):
        """True once the log shows CONNECT target; False if it does not within timeout."""
        try:
            self._wait(self.proc, rf"Request .*: CONNECT {target} ", timeout=timeout)
            return True
        except (TimeoutError, RuntimeError):
            return False

    def stop(self):
        self._stop_proc(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
