"""The gateway's configuration through the real binary: `twoway gateway --check` on INI files
and flags (summary on success; file:line, key and reason on failure; exit codes 1 and 2), and
a gateway started from an INI file."""

import os
import subprocess
import textwrap

import pytest

from gateway_helpers import NOW, DAY, Gateway, MiniPki
from twoway_testlib import free_port, twoway_bin


def check(*args):
    return subprocess.run([twoway_bin(), "gateway", "--check"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def env(tmp_path):
    ca = MiniPki(tmp_path / "pki")
    api = ca.issue("api", kind="server", dns=["api.example.com"])
    web = ca.issue("web", kind="server", dns=["web.example.com", "www.example.com"])
    crl = tmp_path / "ca.crl"
    ca.write_crl(crl)
    return {"dir": tmp_path, "ca": ca, "api": api, "web": web, "crl": crl}


def write_conf(env, body):
    path = env["dir"] / "twoway.conf"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def two_services(env, port, extra_api=""):
    return write_conf(env, f"""
        [global]
        workers = 1
        access-log = off

        [service api]
        listen = 127.0.0.1:{port}
        backend = 127.0.0.1:9
        cert = {env['api'].cert_path}
        key = {env['api'].key_path}
        client-ca = {env['ca'].ca_path}
        crl = {env['crl']}
        allow = cn:alice
        {extra_api}
        [service web]
        listen = 127.0.0.1:{port}
        backend = 127.0.0.1:10
        cert = {env['web'].cert_path}
        key = {env['web'].key_path}
        client-ca = {env['ca'].ca_path}
        forward = xfcc
        """)


def test_check_explains_services_sharing_a_listener(env):
    port = free_port()
    p = check(two_services(env, port))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert f"127.0.0.1:{port} -> 127.0.0.1:9 (http mode, tcp backend)" in out
    assert "names (cert)    api.example.com" in out
    assert "names (cert)    web.example.com, www.example.com" in out
    assert "allow           cn:alice" in out
    assert "xfcc" in out
    assert f"127.0.0.1:{port} is shared by SNI: api (default) web" in out
    assert "configuration OK" in out


@pytest.mark.parametrize("extra, line, why", [
    ("listen = 127.0.0.1:99999", 'listen = "127.0.0.1:99999": port must be 1-65535', None),
    ("lisen = 127.0.0.1:1", "lisen: unknown key (did you mean listen?)", None),
    ("forward = proxy-v2", 'forward = "proxy-v2": proxy-v2 needs mode = tcp', None),
    ("allow = xx:alice", 'allow = "xx:alice": unknown rule type', None),
    ("idle-timeout = soon", 'idle-timeout = "soon": expected a duration', None),
])
def test_check_names_file_line_and_key(env, extra, line, why):
    path = two_services(env, free_port(), extra_api=extra)
    p = check(path)
    assert p.returncode == 1, p.stdout
    # The extra line is line 13 of the file.
    assert f"{path}:13: [service api] {line}" in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1  # one line


def test_check_refuses_readable_key(env):
    os.chmod(env["api"].key_path, 0o644)
    p = check(two_services(env, free_port()))
    assert p.returncode == 1
    assert "[service api] key" in p.stderr and "chmod 600" in p.stderr, p.stderr


def test_check_refuses_crl_of_another_ca(env):
    """A CRL naming the CA of client-ca but signed with another key. (A CRL from a CA that
    client-ca does not hold is kept: the intermediate of a root-only client-ca.)"""
    other = MiniPki(env["dir"] / "other", name=env["ca"].name)
    other.write_crl(env["crl"])
    p = check(two_services(env, free_port()))
    assert p.returncode == 1
    assert "[service api] crl" in p.stderr
    assert "not signed by any CA in client-ca" in p.stderr, p.stderr


def test_check_refuses_expired_server_certificate(env):
    env["api"] = env["ca"].issue("api", kind="server", dns=["api.example.com"],
                                 not_before=NOW - 3 * DAY, not_after=NOW - DAY)
    p = check(two_services(env, free_port()))
    assert p.returncode == 1
    assert "[service api] cert" in p.stderr and "expired" in p.stderr, p.stderr


def test_check_same_names_on_one_listener_refused(env):
    port = free_port()
    env["web"] = env["api"]
    p = check(two_services(env, port))
    assert p.returncode == 1
    assert "[service web]: server name api.example.com is also answered by service api" \
        in p.stderr, p.stderr


def test_check_flags_name_the_flag(env):
    p = check("--listen", f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:9",
              "--cert", env["api"].cert_path, "--key", env["api"].key_path,
              "--client-ca", env["ca"].ca_path, "--allow", "bogus:x")
    assert p.returncode == 2
    assert '--allow "bogus:x": unknown rule type' in p.stderr, p.stderr


def test_gateway_runs_from_ini_file(env):
    port = free_port()
    path = two_services(env, port)
    with Gateway(["--config", path]) as gw:
        assert gw.stop() == 0
