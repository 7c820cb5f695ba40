"""Steps the hardware key tests share: a server certificate whose key `twoway enroll
--key-store` makes in a token or TPM, and curl over TLS 1.3 and 1.2 through a gateway."""

import json

from est_helpers import enroll, token
from twoway_testlib import run_cmd


def enroll_server(srv, name, out, store):
    """A server certificate for 127.0.0.1 from `ca serve` srv (EST's server profile path),
    its key made in store; (key file, chain file)."""
    tok, _ = token(srv.pki, name, "--profile", "server", "--san", "ip:127.0.0.1")

    class ServerEst:
        url = srv.url + "/.well-known/est/server"
        pki = srv.pki

    r = enroll(ServerEst, name, tok, out, "--key-store", store, "--san", "ip:127.0.0.1")
    assert r.returncode == 0, r.stderr
    return out / f"{name}.key", out / f"{name}.chain.pem"


def curl_tls13_and_tls12(port, root, cert, key, path="/x"):
    """TLS 1.3 (the server key signs CertificateVerify) and TLS 1.2 (it signs the ECDHE
    parameters): both handshakes need the server's key; the backend echoes the path."""
    for version in (["--tlsv1.3"], ["--tlsv1.2", "--tls-max", "1.2"]):
        r = run_cmd(["curl", "-sS", "--fail", *version, "--cacert", root, "--cert", cert,
                     "--key", key, f"https://127.0.0.1:{port}{path}"], check=True)
        assert json.loads(r.stdout)["path"] == path
