"""Session resumption in every trust layout users have, with the session store (in-memory
keys) and with stateless tickets (ticket-key-file), at TLS 1.2 and 1.3, checked by two peers:
Python ssl (`session_reused`) and `openssl s_client -sess_out/-sess_in` ("Reused"). The second
connection resumes, and after the intermediate's CRL revokes the client (reload), offering
the same session gets no resumption and the client is refused.

Layouts (what `client-ca` holds / what the client sends):
  root-only   the root / leaf + intermediate (the commonest: "trust our root")
  full-chain  intermediate + root / leaf + intermediate
  two-roots   another root + the root / leaf + intermediate
  leaf-only   the intermediate / its leaf alone
"""

import os
import signal
import ssl

import pytest

from backends import TcpEchoBackend
from gateway_helpers import (Gateway, MiniPki, access_lines, client_context, free_port,
                             gateway_flags, recv_exact, refused, s_client_output, tls_connect)

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

LAYOUTS = {  # client-ca certificates, client sends its intermediate, CRL issuers
    "root-only": (["root"], True, ["inter", "root"]),
    "full-chain": (["inter", "root"], True, ["inter", "root"]),
    "two-roots": (["root2", "root"], True, ["inter"]),
    "leaf-only": (["inter"], False, ["inter"]),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume-pki")
    root = MiniPki(d / "root", name="Layout Root")
    inter = MiniPki(d / "inter", name="Layout Issuing CA", parent=root)
    p = {"dir": d, "root": root, "inter": inter, "root2": MiniPki(d / "root2", name="Layout Root 2"),
         "server": root.server(), "alice": inter.issue("alice"), "backend": TcpEchoBackend()}
    # The same leaf without its intermediate, for the leaf-only layout.
    leaf_only = d / "alice-leaf.crt"
    leaf_only.write_bytes(p["alice"].cert_path.read_bytes().split(b"-----END CERTIFICATE-----")[0]
                          + b"-----END CERTIFICATE-----\n")
    p["alice_leaf"] = leaf_only
    yield p
    p["backend"].close()


def write_crls(pki, path, issuers, revoked=()):
    data = b"".join(pki[i].crl_bytes(revoked if i == "inter" else ()) for i in issuers)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.fixture(params=[(l, m) for l in LAYOUTS for m in ("store", "tickets")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def setup(request, pki, tmp_path):
    layout, mode = request.param
    cas, sends_inter, crl_issuers = LAYOUTS[layout]
    client_ca = tmp_path / "client-ca.pem"
    client_ca.write_bytes(b"".join(pki[c].ca_path.read_bytes() for c in cas))
    crl = tmp_path / "clients.crl"
    write_crls(pki, crl, crl_issuers)
    extra = ["--crl", crl, "--access-log", tmp_path / "access.log"]
    if mode == "tickets":
        keys = tmp_path / "tickets.key"
        keys.write_bytes(os.urandom(80))
        os.chmod(keys, 0o600)
        extra += ["--ticket-key-file", keys]
    port = free_port()
    args = gateway_flags(pki["root"], pki["server"], port, pki["backend"].address, extra=extra)
    args[args.index("--client-ca") + 1] = client_ca
    gw = Gateway(args)
    cert = pki["alice"].cert_path if sends_inter else pki["alice_leaf"]
    e = {"gw": gw, "port": port, "cert": cert, "key": pki["alice"].key_path, "crl": crl,
         "crl_issuers": crl_issuers, "log": tmp_path / "access.log", "dir": tmp_path,
         "sends_inter": sends_inter}
    yield e
    assert gw.stop() == 0, gw.output()


def python_ctx(pki, e, version):
    ctx = client_context(pki["root"], None, VERSIONS[version])
    ctx.load_cert_chain(str(e["cert"]), str(e["key"]))
    return ctx


def python_session(e, ctx, session=None):
    """One echo round trip; returns (session to offer next, whether this one resumed)."""
    with tls_connect(e["port"], ctx, session=session) as s:
        s.sendall(b"ping\n")
        assert recv_exact(s, 5) == b"ping\n"  # TLS 1.3: the ticket arrives with the data
        return s.session, s.session_reused


def s_client(pki, e, version, sess, flag):
    args = ["-connect", f"127.0.0.1:{e['port']}", "-CAfile", pki["root"].ca_path,
            "-servername", "localhost", "-verify_return_error", "-ign_eof",
            "-tls" + version.replace(".", "_"), "-cert", e["cert"], "-key", e["key"], flag, sess]
    if e["sends_inter"]:
        args += ["-cert_chain", pki["inter"].ca_path]
    return s_client_output(args)


def reload_with(e, pki, revoked, generation):
    write_crls(pki, e["crl"], e["crl_issuers"], revoked)
    e["gw"].signal(signal.SIGHUP)
    e["gw"].wait_line(rf"reload: generation {generation} serving", timeout=10)


def test_resumes_then_refused_after_revocation(pki, setup):
    e = setup
    sessions, ctxs = {}, {}
    for version in VERSIONS:
        ctxs[version] = python_ctx(pki, e, version)  # a session resumes with its own context
        sess, reused = python_session(e, ctxs[version])
        assert not reused
        sess, reused = python_session(e, ctxs[version], sess)
        assert reused, f"python ssl, TLS {version}: not resumed"
        sessions[version] = sess

        pem = e["dir"] / f"sess-{version}.pem"
        first = s_client(pki, e, version, pem, "-sess_out")
        assert "New, TLS" in first, first[-2000:]
        second = s_client(pki, e, version, pem, "-sess_in")
        assert "Reused, TLS" in second, f"openssl, TLS {version}:\n" + second[-2000:]
    # Each connection is logged when it closes: wait for all 8 (4 of them resumed).
    lines = access_lines(e["log"], timeout=15, n=8)
    resumed = [x for x in lines if x.get("resumed")]
    assert len(resumed) == 4 and all(x["verdict"] == "allow" for x in resumed), lines

    reload_with(e, pki, [pki["alice"].serial], 2)
    for version in VERSIONS:
        assert refused(e["port"], ctxs[version], session=sessions[version]), \
            f"python ssl, TLS {version}: a revoked client was served"
        out = s_client(pki, e, version, e["dir"] / f"sess-{version}.pem", "-sess_in")
        assert "Reused, TLS" not in out, out[-2000:]
        assert "^hi$" not in out and "\nhi\n" not in out, out[-2000:]
