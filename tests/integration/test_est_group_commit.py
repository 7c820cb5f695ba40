"""Group commit in `ca serve`: enrollments that arrive together share one transaction, each
still answered only after its row is committed, and a request that fails inside a group
(a used token, a token for another name) is rolled back alone while the others are issued."""

import base64
import re
import socket
import ssl

from est_helpers import CaServer, b64_lines, make_csr_der, make_key, p7_certs, token
from twoway_testlib import Pki

EST = "/.well-known/est"
BURST = 12
GROUPS = r"ca serve: (\d+) enrollments in (\d+) group commits"


def request_bytes(name, tok):
    body = b64_lines(make_csr_der(make_key(), name)).encode()
    auth = base64.b64encode(f"{name}:{tok}".encode()).decode()
    head = (f"POST {EST}/simpleenroll HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/pkcs10\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


def read_answer(conn):
    data = b""
    while True:  # bounded by the socket timeout and Connection: close
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def burst(srv, requests):
    """Handshake every connection first, send all but the last byte of each request, then the
    last bytes back to back: the server finds them ready in the same loop turns."""
    ctx = ssl.create_default_context(cafile=str(srv.pki.chain))
    conns = []
    try:
        for _ in requests:
            raw = socket.create_connection((srv.host, srv.port), timeout=30)
            conns.append(ctx.wrap_socket(raw, server_hostname="127.0.0.1"))
        for c, req in zip(conns, requests):
            c.sendall(req[:-1])
        for c, req in zip(conns, requests):
            c.sendall(req[-1:])
        return [read_answer(c) for c in conns]
    finally:
        for c in conns:
            c.close()


def test_a_burst_shares_commits_and_a_failure_inside_stays_alone(tmp_path):
    pki = Pki(tmp_path)
    used, _ = token(pki, "used")
    for attempt in range(5):  # bounded: the scheduler may still split a burst every time
        names = [f"g{attempt}-{i}" for i in range(BURST)]
        toks = [token(pki, n)[0] for n in names]
        srv = CaServer(pki)
        try:
            if attempt == 0:
                status, _ = burst(srv, [request_bytes("used", used)])[0]
                assert status == 200
            reqs = [request_bytes(n, t) for n, t in zip(names, toks)]
            reqs.insert(3, request_bytes("used", used))            # already used: 401
            reqs.insert(7, request_bytes("someone-else", toks[0]))  # token of another name
            answers = burst(srv, reqs)
        finally:
            srv.stop()
        out = srv.output()
        statuses = [s for s, _ in answers]
        assert statuses[3] == 401 and statuses[7] == 401, statuses
        good = [a for i, a in enumerate(answers) if i not in (3, 7)]
        assert all(s == 200 for s, _ in good), statuses
        # Every answered certificate has its committed row, under the name its token allows.
        for (status, body), name in zip(good, names):
            cert = p7_certs(body)[0]
            serial = "%X" % cert.serial_number
            shown = pki.ca("show", serial, check=True).stdout
            assert name in shown
        listed = pki.ca("list", "--name", "someone-else", "--json", check=True).stdout
        assert '"serial"' not in listed
        m = re.search(GROUPS, out)
        assert m, out[-2000:]
        run, groups = int(m.group(1)), int(m.group(2))
        assert run == len(reqs) + (1 if attempt == 0 else 0)
        if groups < run:
            return
    raise AssertionError(f"no burst of {BURST} was ever committed in fewer groups: {out[-2000:]}")
