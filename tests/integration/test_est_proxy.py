"""`twoway enroll` and `twoway renew` behind a company proxy: HTTPS_PROXY / https_proxy send
every EST request through an HTTP CONNECT tunnel (with the proxy's own Basic credentials when
it wants them), NO_PROXY goes around it, and a proxy that refuses or is down gives one clear
line. TLS stays end to end: the CA is verified (and the client certificate presented) through
the tunnel exactly as without it. Two proxies: a small Python one that records each CONNECT,
and tinyproxy."""

import base64

import pytest

from connect_proxy import ConnectProxy, Tinyproxy
from est_helpers import CaServer, token
from twoway_testlib import Pki, run, run_cmd
from x509_checks import cn, load_cert

# Every proxy variable the tests set, removed first so the machine's own settings never leak in.
CLEAN = {v: None for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                           "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")}


def proxied(**env):
    return {**CLEAN, **env}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("proxy"))
    with CaServer(pki) as srv:
        yield pki, srv


def target(srv):
    return f"{srv.host}:{srv.port}"


def enroll_via(srv, name, out, environ, *extra):
    tok, _ = token(srv.pki, name)
    return run(["enroll", srv.url, "--name", name, "--token", tok,
                "--ca-fingerprint", srv.pki.root_sha256, "--out", out, *extra], env=environ)


def renew_via(srv, got, environ):
    return run(["renew", "--cert", got.cert, "--key", got.key, "--server", srv.url], env=environ)


def issue(pki, tmp_path, name):
    out = tmp_path / name
    got = pki.issue_client(name, out=out, days="2h")
    (out / "ca.pem").write_bytes(pki.root.read_bytes())
    return got


def test_the_test_proxy_tunnels_for_curl(env):
    """The Python proxy is a working CONNECT proxy for an independent client (curl)."""
    pki, srv = env
    with ConnectProxy() as proxy:
        r = run_cmd(["curl", "-sS", "--fail", "--proxy", proxy.url, "--cacert", pki.root,
                     f"{srv.url}/.well-known/est/cacerts"], env=CLEAN)
        assert r.returncode == 0, r.stderr
        assert proxy.targets() == [target(srv)]


@pytest.mark.parametrize("var", ["HTTPS_PROXY", "https_proxy"])
def test_enroll_through_a_proxy(env, tmp_path, var):
    pki, srv = env
    with ConnectProxy() as proxy:
        r = enroll_via(srv, "via-proxy", tmp_path, proxied(**{var: proxy.url}))
        assert r.returncode == 0, r.stderr
        # The bootstrap's /cacerts and the simpleenroll: both through the tunnel.
        assert proxy.targets() == [target(srv)] * 2
    assert cn(load_cert(tmp_path / "via-proxy.crt")) == "via-proxy"


def test_no_proxy_goes_around_the_proxy(env, tmp_path):
    pki, srv = env
    with ConnectProxy() as proxy:
        r = enroll_via(srv, "direct", tmp_path,
                       proxied(HTTPS_PROXY=proxy.url, NO_PROXY=f"localhost,{srv.host}"))
        assert r.returncode == 0, r.stderr
        assert proxy.requests == []
        got = issue(pki, tmp_path, "direct-renew")
        r = renew_via(srv, got, proxied(https_proxy=proxy.url, no_proxy=srv.host))
        assert r.returncode == 0, r.stderr
        assert proxy.requests == []


def test_proxy_with_basic_credentials(env, tmp_path):
    pki, srv = env
    with ConnectProxy(auth=("corp", "pr0xy:pw")) as proxy:
        r = enroll_via(srv, "authed", tmp_path / "a",
                       proxied(HTTPS_PROXY=proxy.url_with("corp", "pr0xy%3Apw")))
        assert r.returncode == 0, r.stderr
        want = "Basic " + base64.b64encode(b"corp:pr0xy:pw").decode()
        assert [a for t, a in proxy.requests if a is not None] == [want, want]
        assert all(t == target(srv) for t in proxy.targets())

        r = enroll_via(srv, "no-creds", tmp_path / "b", proxied(HTTPS_PROXY=proxy.url))
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.count("\n") == 1, r.stderr
        assert "HTTP 407" in r.stderr and "credentials" in r.stderr, r.stderr
        assert not (tmp_path / "b" / "no-creds.crt").exists()

        r = enroll_via(srv, "bad-creds", tmp_path / "c",
                       proxied(HTTPS_PROXY=proxy.url_with("corp", "wrong-secret")))
        assert r.returncode == 1 and "HTTP 407" in r.stderr, r.stderr
        assert "wrong-secret" not in r.stderr  # the proxy URL is named without its password


def test_proxy_refusing_is_one_clear_line(env, tmp_path):
    pki, srv = env
    with ConnectProxy(refuse=403) as proxy:
        r = enroll_via(srv, "refused", tmp_path, proxied(HTTPS_PROXY=proxy.url_with("u", "pw1")))
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.count("\n") == 1, r.stderr
        assert "proxy" in r.stderr and "refused to open a tunnel" in r.stderr
        assert "HTTP 403" in r.stderr and srv.url in r.stderr and proxy.url in r.stderr
        assert "pw1" not in r.stderr
        assert proxy.targets() == [target(srv)]
        got = issue(pki, tmp_path, "refused-renew")
        before = got.cert.read_bytes()
        r = renew_via(srv, got, proxied(HTTPS_PROXY=proxy.url))
        assert r.returncode == 1 and "HTTP 403" in r.stderr, r.stderr
        assert got.cert.read_bytes() == before


def test_proxy_down_is_named(env, tmp_path):
    pki, srv = env
    proxy = ConnectProxy()
    dead = proxy.url
    proxy.stop()  # nothing listens there any more
    r = enroll_via(srv, "proxy-down", tmp_path, proxied(HTTPS_PROXY=dead))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1, r.stderr
    assert f"cannot connect to {srv.url}" in r.stderr and f"proxy: {dead}" in r.stderr


def test_renew_through_a_proxy_presents_the_certificate_end_to_end(env, tmp_path):
    pki, srv = env
    got = issue(pki, tmp_path, "renew-proxied")
    old = load_cert(got.cert)
    with ConnectProxy() as proxy:
        r = renew_via(srv, got, proxied(HTTPS_PROXY=proxy.url))
        assert r.returncode == 0, r.stderr
        assert proxy.targets() == [target(srv)]
    new = load_cert(got.cert)
    assert new.serial_number != old.serial_number and cn(new) == "renew-proxied"


def test_server_is_still_verified_through_the_tunnel(env, tmp_path):
    """The proxy does not change who is trusted: a CA file that is not this CA's fails the
    handshake (in plain words), and so does a fingerprint that is not the root's."""
    pki, srv = env
    other = Pki(tmp_path / "other", name="Other CA")
    with ConnectProxy() as proxy:
        tok, _ = token(pki, "mitm")
        r = run(["enroll", srv.url, "--name", "mitm", "--token", tok, "--ca", other.root,
                 "--out", tmp_path / "o"], env=proxied(HTTPS_PROXY=proxy.url))
        assert r.returncode == 1, r.stderr
        assert "TLS handshake with" in r.stderr and "trusted CA" in r.stderr, r.stderr
        r = run(["enroll", srv.url, "--name", "mitm", "--token", tok, "--ca-fingerprint",
                 other.root_sha256, "--out", tmp_path / "o2"], env=proxied(HTTPS_PROXY=proxy.url))
        assert r.returncode == 1 and "refusing to trust" in r.stderr, r.stderr
        assert proxy.targets() == [target(srv)] * 2


def test_enroll_and_renew_through_tinyproxy(env, tmp_path):
    pki, srv = env
    with Tinyproxy(tmp_path, auth=("corp", "tiny-pw")) as proxy:
        r = enroll_via(srv, "tiny", tmp_path / "e",
                       proxied(HTTPS_PROXY=proxy.url_with("corp", "tiny-pw")))
        assert r.returncode == 0, r.stderr
        assert proxy.saw(target(srv))
        got = issue(pki, tmp_path, "tiny-renew")
        r = renew_via(srv, got, proxied(https_proxy=proxy.url_with("corp", "tiny-pw")))
        assert r.returncode == 0, r.stderr
        assert proxy.saw(target(srv))
        r = renew_via(srv, got, proxied(https_proxy=proxy.url))
        assert r.returncode == 1 and "HTTP 407" in r.stderr, r.stderr
