"""The known HTTP/2 attacks, each performed against the real binary, and the gateway's limits
that stop them: rapid reset (CVE-2023-44487), CONTINUATION flood (CVE-2024-28182), an HPACK
bomb (a small block that decodes to a huge header list), SETTINGS and PING floods from a
client that does not read, a zero-window stall against a big response, too many concurrent
streams, and the per-connection stream budget. After each attack the gateway still serves a
well-behaved client. Frames are written raw (hyperframe + hpack) over an ssl socket where the
h2 package would refuse to send them."""

import socket
import ssl
import threading
import time

import pytest

pytest.importorskip("h2.connection")
import h2.errors  # noqa: E402
import h2.settings  # noqa: E402
import h2.events  # noqa: E402
import hpack  # noqa: E402
from hyperframe.frame import (ContinuationFrame, HeadersFrame, PingFrame,  # noqa: E402
                              RstStreamFrame, SettingsFrame)

from backends import HttpEchoBackend  # noqa: E402
from gateway_helpers import Gateway, MiniPki, free_port  # noqa: E402
from h2_helpers import H2Client  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-h2-abuse")
    e = type("Env", (), {})()
    e.root = MiniPki(d)
    e.server = e.root.server()
    e.alice = e.root.issue("alice")
    e.backend = HttpEchoBackend()
    e.gateways = []

    def gateway(*extra, backend_port=None):
        port = free_port()
        gw = Gateway(["--listen", f"127.0.0.1:{port}", "--backend",
                      f"127.0.0.1:{backend_port or e.backend.port}", "--cert",
                      e.server.cert_path, "--key", e.server.key_path, "--client-ca",
                      e.root.ca_path, "--workers", "1"] + list(extra))
        e.gateways.append(gw)
        return port

    e.gateway = gateway
    e.port = gateway()
    yield e
    codes = [gw.stop() for gw in e.gateways]
    e.backend.close()
    for gw, rc in zip(e.gateways, codes):
        assert rc == 0, gw.output()


def raw_conn(env, port, rcvbuf=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(env.root.ca_path))
    ctx.load_cert_chain(str(env.alice.cert_path), str(env.alice.key_path))
    ctx.set_alpn_protocols(["h2"])
    raw = socket.socket()
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(15)
    raw.connect(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    assert s.selected_alpn_protocol() == "h2"
    s.sendall(PREFACE + SettingsFrame(0).serialize())
    return s


def request_block(path="/", enc=None):
    return (enc or hpack.Encoder()).encode([(":method", "GET"), (":scheme", "https"),
                                            (":authority", "localhost"), (":path", path)])


def get_frame(sid, path, enc):
    """A complete GET request: one HEADERS frame with END_HEADERS and END_STREAM."""
    hf = HeadersFrame(sid, request_block(path, enc))
    hf.flags.add("END_HEADERS")
    hf.flags.add("END_STREAM")
    return hf.serialize()


def closed_with_goaway(s, timeout=15):
    """Read until the gateway closes; True when a GOAWAY frame (type 7) came before the close.
    Scans the frames it reads (9-byte headers) so DATA bytes are never mistaken for one."""
    s.settimeout(timeout)
    buf, goaway = b"", False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = s.recv(65536)
        except (ConnectionError, ssl.SSLError):
            return goaway
        except socket.timeout:
            raise TimeoutError("the gateway kept the connection open")
        if not data:
            return goaway
        buf += data
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            goaway = goaway or buf[3] == 7
            buf = buf[9 + length:]
    raise TimeoutError("the gateway kept the connection open")


def still_serves(env, port):
    c = H2Client(env, port)
    sid = c.request("/after")
    assert c.response(sid)[0] == 200
    c.close()


def test_rapid_reset_is_cut_off(env):
    s = raw_conn(env, env.port)
    enc = hpack.Encoder()
    frames = b""
    for i in range(2000):
        sid = 2 * i + 1
        frames += get_frame(sid, "/r", enc) + RstStreamFrame(sid, error_code=8).serialize()
    try:
        s.sendall(frames)
    except (ConnectionError, ssl.SSLError):
        pass  # cut off while still sending: also the expected outcome
    assert closed_with_goaway(s)
    s.close()
    still_serves(env, env.port)


def test_continuation_flood_is_cut_off(env):
    s = raw_conn(env, env.port)
    hf = HeadersFrame(1, request_block())  # no END_HEADERS: CONTINUATION frames follow
    out = hf.serialize()
    for i in range(1000):
        out += ContinuationFrame(1, hpack.Encoder().encode([(f"x-c{i}", "v" * 10)])).serialize()
    try:
        s.sendall(out)
    except (ConnectionError, ssl.SSLError):
        pass
    assert closed_with_goaway(s)
    s.close()
    still_serves(env, env.port)


def test_hpack_bomb_gets_431_without_decoding_into_memory(env):
    c = H2Client(env, env.port)
    # One 4000-byte field added to the dynamic table, then referenced 5000 times by its
    # 1-byte index: ~40 kB on the wire, 20 MB once decoded.
    enc = hpack.Encoder()
    block = enc.encode([(":method", "GET"), (":scheme", "https"), (":authority", "localhost"),
                        (":path", "/bomb"), ("x-bomb", "b" * 4000)])
    index = bytes([0x80 | 62])  # RFC 7541 §6.1: indexed field, first dynamic entry
    block += index * 5000
    sid = c.c.get_next_available_stream_id()
    frames = b""
    chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
    for i, chunk in enumerate(chunks):
        f = HeadersFrame(sid, chunk) if i == 0 else ContinuationFrame(sid, chunk)
        if i == 0:
            f.flags.add("END_STREAM")
        if i == len(chunks) - 1:
            f.flags.add("END_HEADERS")
        frames += f.serialize()
    c.s.sendall(frames)
    # the h2 client's own decoder never saw this block; read raw until the response arrives
    c.s.settimeout(15)
    data = b""
    deadline = time.monotonic() + 15
    while b"431" not in data and time.monotonic() < deadline:
        chunk = c.s.recv(65536)
        if not chunk:
            break
        data += chunk
    assert b"431" in data, data[:200]
    c.close()
    still_serves(env, env.port)


@pytest.mark.parametrize("frame", [SettingsFrame(0), PingFrame(0, opaque_data=b"12345678")],
                         ids=["settings", "ping"])
def test_ack_flood_from_a_client_that_does_not_read(env, frame):
    s = raw_conn(env, env.port, rcvbuf=4096)
    one = frame.serialize()
    batch = one * 4096
    sent, cut = 0, False
    deadline = time.monotonic() + 60
    s.settimeout(5)
    while time.monotonic() < deadline and sent < 2_000_000:
        try:
            s.sendall(batch)
            sent += 4096
        except (ConnectionError, ssl.SSLError, socket.timeout):
            cut = True
            break
    if not cut:
        try:
            cut = closed_with_goaway(s) is not None
        except TimeoutError:
            cut = False
    assert cut, f"the gateway kept reading {sent} frames while its acks were not read"
    s.close()
    still_serves(env, env.port)


class BigBackend:
    """Answers with a 64 MB body and counts how much of it the gateway took."""

    SIZE = 64 * 1024 * 1024

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        conn, _ = self.sock.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.SIZE)
            chunk = b"z" * 65536
            try:
                while self.sent < self.SIZE:
                    self.sent += conn.send(chunk)
            except OSError:
                pass
        self.done.set()

    def close(self):
        self.sock.close()


def test_zero_window_stall_buffers_little_and_times_out(env):
    big = BigBackend()
    try:
        port = env.gateway("--idle-timeout", "3s", backend_port=big.port)
        c = H2Client(env, port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        c.request("/big")
        started = time.monotonic()
        # the client never opens its window: the gateway must stop reading the backend, then
        # give up on the connection at idle-timeout
        with pytest.raises((EOFError, ConnectionError, ssl.SSLError)):
            while time.monotonic() - started < 30:
                c.pump(1)
        assert time.monotonic() - started < 20
        assert big.done.wait(15)
        assert big.sent < 16 * 1024 * 1024, f"the gateway read {big.sent} bytes"
        c.close()
    finally:
        big.close()


def read_frames(s, timeout=15):
    """Every frame the gateway sends until it closes: (type, flags, stream, payload)."""
    s.settimeout(timeout)
    buf, frames = b"", []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = s.recv(65536)
        except (ConnectionError, ssl.SSLError):
            data = b""
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            n = int.from_bytes(buf[:3], "big")
            frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF,
                           buf[9:9 + n]))
            buf = buf[9 + n:]
        if not data:
            return frames
        buf += data
    raise TimeoutError("the gateway kept the connection open")


GOAWAY, HEADERS = 7, 1


def goaways(frames):
    return [(int.from_bytes(p[:4], "big"), int.from_bytes(p[4:8], "big"))
            for t, _, _, p in frames if t == GOAWAY]


def test_streams_over_the_concurrency_limit(env):
    slow = HttpEchoBackend(delay=1.5)
    try:
        port = env.gateway("--h2-max-concurrent-streams", "4", backend_port=slow.port)
        # A client that honours the limit (the h2 package does) gets every request answered.
        c = H2Client(env, port)
        c.pump(2)  # the gateway's SETTINGS
        assert c.c.remote_settings.max_concurrent_streams == 4
        for _ in range(2):
            sids = [c.request(f"/s{i}") for i in range(4)]
            assert [c.response(sid, timeout=20)[0] for sid in sids] == [200] * 4
        c.close()
        # One that acknowledged the limit and opens 8 at once breaks the protocol (RFC 9113
        # §5.1.2): GOAWAY PROTOCOL_ERROR, connection closed.
        s = raw_conn(env, port)
        s.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
        time.sleep(0.3)
        enc = hpack.Encoder()
        s.sendall(b"".join(get_frame(2 * i + 1, f"/x{i}", enc) for i in range(8)))
        g = goaways(read_frames(s, timeout=30))
        assert g and g[-1][1] == 1, g  # PROTOCOL_ERROR
        s.close()
        still_serves(env, port)
    finally:
        slow.close()


def test_stream_budget_ends_with_goaway(env):
    port = env.gateway("--h2-max-streams", "3")
    s = raw_conn(env, port)
    enc = hpack.Encoder()
    s.sendall(b"".join(get_frame(2 * i + 1, f"/b{i}", enc) for i in range(4)))
    frames = read_frames(s, timeout=20)
    # GOAWAY NO_ERROR naming stream 5 as the last; streams 1, 3, 5 answered, 7 ignored
    assert goaways(frames) == [(5, 0)]
    answered = sorted({sid for t, _, sid, _ in frames if t == HEADERS})
    assert answered == [1, 3, 5]
    s.close()
    still_serves(env, port)
