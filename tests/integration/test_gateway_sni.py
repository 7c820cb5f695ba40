"""Several services behind one listen address: SNI picks the service (its certificate,
policy and backend); a Host that names another service gets 421."""

import json
import subprocess

import pytest

from backends import HttpEchoBackend
from gateway_helpers import Gateway, MiniPki, free_port


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-sni")
    ca = MiniPki(d / "ca")
    a_srv = ca.issue("a.test", kind="server", dns=["a.test"])
    b_srv = ca.issue("b.test", kind="server", dns=["b.test"])
    alice, bob = ca.issue("alice"), ca.issue("bob")
    a_back, b_back = HttpEchoBackend(), HttpEchoBackend()
    port = free_port()
    cfg = d / "twoway.conf"
    cfg.write_text(f"""
[global]
workers = 2
access-log = {d / 'access.log'}

[service a]
listen = 127.0.0.1:{port}
backend = {a_back.address}
mode = http
cert = {a_srv.cert_path}
key = {a_srv.key_path}
client-ca = {ca.ca_path}
allow = cn:alice

[service b]
listen = 127.0.0.1:{port}
backend = {b_back.address}
mode = http
cert = {b_srv.cert_path}
key = {b_srv.key_path}
client-ca = {ca.ca_path}
allow = cn:bob
""")
    gw = Gateway(["--config", cfg])
    yield {"ca": ca, "alice": alice, "bob": bob, "a": a_back, "b": b_back, "port": port,
           "gw": gw}
    assert gw.stop() == 0, gw.output()
    a_back.close()
    b_back.close()


def curl(env, who, name, host=None):
    port = env["port"]
    cmd = ["curl", "-sS", "-i", "--cacert", str(env["ca"].ca_path), "--cert",
           str(env[who].cert_path), "--key", str(env[who].key_path), "--resolve",
           f"{name}:{port}:127.0.0.1", f"https://{name}:{port}/x"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20)


def body(p):
    return json.loads(p.stdout.split("\n\n", 1)[1])


def test_sni_selects_service_and_backend(env):
    before_a, before_b = env["a"].connections, env["b"].connections
    p = curl(env, "alice", "a.test")
    assert p.returncode == 0 and " 200 " in p.stdout.splitlines()[0], p.stdout + p.stderr
    assert body(p)["path"] == "/x"
    q = curl(env, "bob", "b.test")
    assert q.returncode == 0 and " 200 " in q.stdout.splitlines()[0], q.stdout + q.stderr
    assert env["a"].connections == before_a + 1
    assert env["b"].connections == before_b + 1


def test_each_service_has_its_own_policy(env):
    assert curl(env, "bob", "a.test").returncode != 0
    assert curl(env, "alice", "b.test").returncode != 0


def test_host_of_another_service_gets_421(env):
    p = curl(env, "alice", "a.test", host="b.test")
    # curl speaks HTTP/2 (ALPN h2): its Host header becomes :authority, checked the same way
    assert p.stdout.startswith("HTTP/2 421"), p.stdout
