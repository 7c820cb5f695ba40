"""A small HTTP/2 client over a Python ssl socket (the `h2` package), for tests that need exact
frames: test_gateway_h2*.py."""

import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events


class H2Client:
    def __init__(self, env, port, settings=None, alpn=("h2",), cert=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(env.root.ca_path))
        cert = cert or env.alice
        ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))
        ctx.set_alpn_protocols(list(alpn))
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        self.alpn = self.s.selected_alpn_protocol()
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False)
        self.c = h2.connection.H2Connection(config=cfg)
        self.c.initiate_connection()
        if settings:
            self.c.update_settings(settings)
        self.flush()
        self.events = []
        self.closed = False

    def flush(self):
        data = self.c.data_to_send()
        if data:
            self.s.sendall(data)

    def request(self, path="/", method="GET", headers=(), body=None, authority="localhost",
                end=True):
        sid = self.c.get_next_available_stream_id()
        hs = [(":method", method), (":scheme", "https"), (":authority", authority),
              (":path", path)] + list(headers)
        self.c.send_headers(sid, hs, end_stream=end and body is None)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end)
        return sid

    def send_body(self, sid, data, end=True, timeout=30):
        """Send data within the flow-control windows the gateway grants."""
        deadline = time.monotonic() + timeout
        if not data and end:
            self.c.end_stream(sid)
            self.flush()
        while data:
            n = min(len(data), self.c.local_flow_control_window(sid),
                    self.c.max_outbound_frame_size)
            if n == 0:
                assert time.monotonic() < deadline, "window never opened"
                self.pump(1)
                continue
            self.c.send_data(sid, data[:n], end_stream=end and n == len(data))
            data = data[n:]
            self.flush()

    def pump(self, timeout=15):
        """Read once; return new events ([] on timeout, raises EOFError on close)."""
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(65536)
        except socket.timeout:
            return []
        if not data:
            self.closed = True
            raise EOFError
        ev = self.c.receive_data(data)
        self.flush()
        self.events += ev
        return ev

    def response(self, sid, timeout=15):
        """(status, headers dict, body, trailers) once the stream ended or was reset."""
        deadline = time.monotonic() + timeout
        status, headers, body, trailers = None, {}, b"", {}
        while time.monotonic() < deadline:
            for e in self.events:
                if getattr(e, "stream_id", None) != sid:
                    continue
                if isinstance(e, h2.events.ResponseReceived):
                    headers = dict(e.headers)
                    status = int(headers[":status"])
                elif isinstance(e, h2.events.DataReceived):
                    body += e.data
                    self.c.acknowledge_received_data(e.flow_controlled_length, sid)
                elif isinstance(e, h2.events.TrailersReceived):
                    trailers = dict(e.headers)
                elif isinstance(e, h2.events.StreamEnded):
                    self.flush()
                    return status, headers, body, trailers
                elif isinstance(e, h2.events.StreamReset):
                    return "reset", e.error_code, body, trailers
            self.events = [e for e in self.events if getattr(e, "stream_id", None) != sid]
            self.flush()
            self.pump(max(0.1, deadline - time.monotonic()))
        raise TimeoutError(f"stream {sid} did not end")

    def close(self):
        self.s.close()

    def wait_goaway(self, timeout=15):
        """The ConnectionTerminated event (GOAWAY) the gateway sent, or None when the
        connection closed without one. Raises TimeoutError when neither happens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if isinstance(e, h2.events.ConnectionTerminated):
                    return e
            try:
                self.pump(max(0.1, deadline - time.monotonic()))
            except (EOFError, ConnectionError, ssl.SSLError):
                for e in self.events:
                    if isinstance(e, h2.events.ConnectionTerminated):
                        return e
                return None
        raise TimeoutError("no GOAWAY and no close")
