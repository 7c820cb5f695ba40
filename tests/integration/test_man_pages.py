"""The man pages are built (scdoc) and hold every flag and configuration key the program
knows: `twoway CMD --list-flags` is asked, not a copy of the list, so a new flag without
documentation fails here. The pages are made from docs/commands/*.md and docs/config.md, so
this holds the Markdown reference to the program as well."""

import re
from pathlib import Path

import pytest

from twoway_testlib import run, twoway_bin

MAN = Path(twoway_bin()).parent / "man"

# command words -> the page documenting them
PAGES = {
    ("ca", "init"): "twoway-ca.1", ("ca", "issue"): "twoway-ca.1",
    ("ca", "list"): "twoway-ca.1", ("ca", "show"): "twoway-ca.1",
    ("ca", "revoke"): "twoway-ca.1", ("ca", "crl"): "twoway-ca.1",
    ("ca", "export"): "twoway-ca.1", ("ca", "pending"): "twoway-ca.1",
    ("ca", "approve"): "twoway-ca.1", ("ca", "reject"): "twoway-ca.1",
    ("ca", "migrate"): "twoway-ca.1",
    ("ca", "serve"): "twoway-ca-serve.1", ("ca", "token"): "twoway-ca-serve.1",
    ("enroll",): "twoway-enroll.1", ("renew",): "twoway-renew.1",
    ("doctor",): "twoway-doctor.1", ("bench",): "twoway-bench.1", ("demo",): "twoway-demo.1",
    ("gateway",): "twoway-gateway.1", ("tunnel",): "twoway-tunnel.1",
}
# Flags of the gateway and the tunnel that are not configuration keys.
ENGINE_FLAGS = {"--config", "--check", "--allow-root", "--help"}


def text(page):
    """The page's roff source as plain text: hyphens, font changes and zero-width marks
    undone, so a flag reads as it is typed."""
    path = MAN / page
    assert path.exists(), f"{path} was not built (scdoc missing?)"
    assert (MAN / (page + ".gz")).exists()
    roff = path.read_text()
    return re.sub(r"\\f[BIRP]|\\&", "", roff).replace("\\-", "-")


def flags(*words):
    r = run([*words, "--list-flags"], check=True)
    got = r.stdout.split()
    assert got and all(f.startswith("--") for f in got), r.stdout
    return got


def has_flag(page_text, flag):
    return re.search(re.escape(flag) + r"(?![\w-])", page_text) is not None


def test_every_command_has_a_page():
    """Every command of `twoway` and of `twoway ca` is in PAGES (a new command needs a page),
    and twoway(1) names each."""
    top = set(run(["--list-flags"], check=True).stdout.split()) - {"ca", "version"}
    ca = set(run(["ca", "--list-flags"], check=True).stdout.split())
    assert {w[0] for w in PAGES if len(w) == 1} == top
    assert {w[1] for w in PAGES if w[0] == "ca"} == ca
    overview = text("twoway.1")
    for name in top | {"ca", "version"}:
        assert re.search(rf"^{name}$", overview, re.M), f"twoway(1) does not list {name}"
    for flag in ("--help", "--list-flags", "--version"):
        assert has_flag(overview, flag)


@pytest.mark.parametrize("words", [w for w in PAGES if w not in {("gateway",), ("tunnel",)}],
                         ids=" ".join)
def test_command_flags_in_man_page(words):
    page = text(PAGES[words])
    missing = [f for f in flags(*words) if f != "--help" and not has_flag(page, f)]
    assert not missing, f"{PAGES[words]} does not mention {missing} of twoway {' '.join(words)}"


def test_gateway_flags_and_config_keys():
    """The gateway's own flags are in twoway-gateway(1); each other flag is a config key,
    which has its own subsection in twoway.conf(5), and the gateway page says so."""
    gw = text("twoway-gateway.1")
    conf = text("twoway.conf.5")
    assert "is also a flag of the same name" in gw
    all_flags = flags("gateway")
    assert ENGINE_FLAGS <= set(all_flags)
    for f in sorted(ENGINE_FLAGS - {"--help"}):
        assert has_flag(gw, f), f"twoway-gateway(1) does not mention {f}"
    missing = [f for f in all_flags if f not in ENGINE_FLAGS
               and not re.search(rf"^\.SS {re.escape(f[2:])}$", conf, re.M)]
    assert not missing, f"twoway.conf(5) has no subsection for {missing}"


def test_tunnel_flags_and_keys():
    page = text("twoway-tunnel.1")
    assert "Flags are the keys with --" in page
    for f in flags("tunnel"):
        if f in ENGINE_FLAGS:
            assert f == "--help" or has_flag(page, f), f"twoway-tunnel(1) lacks {f}"
        else:
            assert re.search(rf"(?<![\w-]){re.escape(f[2:])}(?![\w-])", page), \
                f"twoway-tunnel(1) does not mention the key {f[2:]}"


def test_config_page_names_every_key_once_per_subsection():
    """twoway.conf(5) comes from docs/config.md: one subsection per key, nothing lost in the
    conversion (the number of keys is the number of gateway config flags)."""
    conf = text("twoway.conf.5")
    keys = [f[2:] for f in flags("gateway") if f not in ENGINE_FLAGS]
    subsections = set(re.findall(r"^\.SS (\S+)$", conf, re.M))
    assert set(keys) <= subsections
    assert re.search(r'^\.TH "twoway\.conf" "5"', conf, re.M)
