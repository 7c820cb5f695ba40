"""The Debian package: CPack builds it from the tree under test (the same install rules as
`cmake --install`), lintian finds no errors (and every warning kept is explained in
docs/operations.md), dpkg installs it into a throw-away root with its maintainer scripts, and
the installed binary runs. `make deb` builds the same package in its own tree with Debian's
hardening flags.

The throw-away root: `dpkg --root=R --force-script-chrootless` unpacks into R and runs the
maintainer scripts on this machine with DPKG_ROOT=R, which they pass on to systemd-sysusers
and systemd-tmpfiles (--root); --force-depends because R holds no other package. The
installed binary runs from R with this machine's shared libraries."""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from twoway_testlib import twoway_bin

BUILD = Path(twoway_bin()).parent
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dpkg --root needs root")


def sh(*args, check=True, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    sh("cpack", "-G", "DEB", "--config", BUILD / "CPackConfig.cmake", "-B", out, cwd=BUILD)
    debs = list(out.glob("twoway_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


def dpkg_root(root, *args):
    return sh("dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
              *args, check=False)


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory):
    r = tmp_path_factory.mktemp("root")
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"):
        (r / d).mkdir(parents=True)
    for f in ("var/lib/dpkg/status", "var/lib/dpkg/available"):
        (r / f).touch()
    res = dpkg_root(r, "-i", deb)
    assert "Setting up twoway" in res.stdout, res.stdout + res.stderr
    assert sh("dpkg-query", f"--root={r}", "-W", "-f=${Status}", "twoway").stdout == \
        "install ok installed"
    return r


def test_file_name_version_and_fields(deb):
    version = sh(twoway_bin(), "version").stdout.split("\n")[0].split()[1]
    arch = sh("dpkg", "--print-architecture").stdout.strip()
    assert deb.name == f"twoway_{version}_{arch}.deb"
    fields = sh("dpkg-deb", "-f", deb).stdout
    depends = re.search(r"^Depends: (.*)$", fields, re.M).group(1)
    # Computed by dpkg-shlibdeps from the binary, with the versions the symbols need.
    for lib in ("libssl3 (>=", "libevent-core-2.1-7 (>=", "libsqlite3-0 (>=", "libpq5 (>=",
                "libjansson4 (>=", "libinih1 (>=", "libc6 (>="):
        assert lib in depends, depends
    control = Path(sh("mktemp", "-d").stdout.strip())
    try:
        sh("dpkg-deb", "-e", deb, control)
        assert (control / "conffiles").read_text().split() == ["/etc/twoway/twoway.conf"]
        for script in ("postinst", "prerm", "postrm"):
            assert stat.S_IMODE((control / script).stat().st_mode) == 0o755
    finally:
        shutil.rmtree(control)


def test_contents(deb):
    files = {l.split()[-1].lstrip(".") for l in sh("dpkg-deb", "-c", deb).stdout.splitlines()
             if not l.startswith("d")}
    expected = {"/usr/bin/twoway", "/etc/twoway/twoway.conf",
                "/lib/systemd/system/twoway-gateway@.service",
                "/lib/systemd/system/twoway-ca.service",
                "/lib/systemd/system/twoway-renew@.service",
                "/usr/lib/sysusers.d/twoway.conf", "/usr/lib/tmpfiles.d/twoway.conf",
                "/usr/share/bash-completion/completions/twoway",
                "/usr/share/doc/twoway/copyright", "/usr/share/doc/twoway/changelog.gz",
                "/usr/share/doc/twoway/examples/twoway.conf",
                "/usr/share/man/man5/twoway.conf.5.gz", "/usr/share/man/man1/twoway.1.gz"}
    for page in ("ca", "ca-serve", "gateway", "tunnel", "enroll", "renew", "doctor", "bench",
                 "demo"):
        expected.add(f"/usr/share/man/man1/twoway-{page}.1.gz")
    assert expected <= files, expected - files


def test_lintian(deb):
    r = sh("lintian", "--fail-on", "error", deb, check=False)
    tags = [l for l in r.stdout.splitlines() if re.match(r"^[EW]: ", l)]
    errors = [t for t in tags if t.startswith("E: ")]
    assert r.returncode == 0 and not errors, r.stdout + r.stderr
    ops = (REPO / "docs/operations.md").read_text()
    for t in tags:
        tag = t.split()[2]
        assert f"`{tag}`" in ops, f"lintian warning {tag} is not explained in docs/operations.md"


def test_maintainer_scripts_made_user_and_dirs(root):
    passwd = (root / "etc/passwd").read_text()
    m = re.search(r"^twoway:x:(\d+):(\d+):[^:]*:/var/lib/twoway:/usr/sbin/nologin$", passwd,
                  re.M)
    assert m, passwd
    uid, gid = int(m.group(1)), int(m.group(2))
    assert uid < 1000, "a system user"
    assert re.search(rf"^twoway:x:{gid}:", (root / "etc/group").read_text(), re.M)
    for path, mode, owner in (("etc/twoway", 0o750, (0, gid)),
                              ("var/lib/twoway", 0o700, (uid, gid)),
                              ("var/lib/twoway/certs", 0o700, (uid, gid))):
        st = (root / path).stat()
        assert (stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)) == (mode, owner), path


def test_installed_binary_runs(root, tmp_path):
    binary = root / "usr/bin/twoway"
    out = sh(binary, "version").stdout
    assert re.match(r"twoway \d+\.\d+\.\d+\n", out) and "OpenSSL" in out and "libpq" in out
    r = sh(binary, "demo", cwd=tmp_path, env=dict(os.environ, TWOWAY_ALLOW_ROOT="0"))
    assert "Every step behaved as narrated." in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    man = sh("man", "--warnings", "-l", root / "usr/share/man/man1/twoway-gateway.1.gz",
             env=dict(os.environ, MANWIDTH="80"))
    assert "is also a flag of the same name" in " ".join(man.stdout.split()) and not man.stderr


def test_units_verify_and_exposure(root):
    """systemd-analyze verify (in the root, which holds systemd's own units too) and an
    exposure score of 2.0 or less for every unit, offline: no systemd runs here."""
    units = root / "lib/systemd/system"
    shutil.copytree("/lib/systemd/system", units, dirs_exist_ok=True, symlinks=True,
                    ignore=shutil.ignore_patterns("twoway*"))
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2(shutil.which("kill"), root / "bin/kill")  # ExecReload's; R has no procps
    env = dict(os.environ, MANPATH=str(root / "usr/share/man"))
    for unit in ("twoway-gateway@main.service", "twoway-ca.service", "twoway-renew@alice.service"):
        r = sh("systemd-analyze", "verify", f"--root={root}", unit, check=False, env=env)
        assert r.returncode == 0 and not r.stderr.strip(), f"{unit}: {r.stdout}{r.stderr}"
    for unit in ("twoway-gateway@.service", "twoway-ca.service", "twoway-renew@.service"):
        r = sh("systemd-analyze", "security", "--offline=true", units / unit, check=False)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)", r.stdout)
        assert m, r.stdout + r.stderr
        assert float(m.group(1)) <= 2.0 and m.group(2) == "OK", f"{unit}: {m.group(0)}"


def test_conffile_kept_on_reinstall_and_purge_keeps_data(deb, root):
    conf = root / "etc/twoway/twoway.conf"
    conf.write_text(conf.read_text() + "\n; changed by the operator\n")
    (root / "var/lib/twoway/certs/alice.crt").write_text("kept\n")
    res = dpkg_root(root, "-i", deb)  # an upgrade to the same version, as far as dpkg goes
    assert "Setting up twoway" in res.stdout, res.stdout + res.stderr
    assert conf.read_text().endswith("; changed by the operator\n")
    res = dpkg_root(root, "--purge", "twoway")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not (root / "usr/bin/twoway").exists() and not conf.exists()
    assert (root / "var/lib/twoway/certs/alice.crt").read_text() == "kept\n"
