"""Helpers shared by twoway's integration tests.

- twoway_bin()                 the binary under test (env TWOWAY_BIN)
- run(args, ...)               run `twoway ARGS...`, text output, bounded time
- run_cmd(cmd, ...)            the same for any other program (openssl, curl, ...)
- free_port(), wait_for_port() loopback ports and readiness
- wait_for_line(proc, pattern) read a child's output until a readiness line appears
- Pki(tmpdir)                  a throwaway CA made with `twoway ca init`, issuing client and
                               server certificates with `twoway ca issue`

Everything is loopback-only and every wait has a timeout, so a broken binary fails a test
instead of hanging it.
"""

import os
import queue
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DEFAULT_TIMEOUT = 60  # seconds any single command may take


def twoway_bin() -> str:
    """Path of the twoway binary under test: $TWOWAY_BIN, else build/twoway in the repo."""
    path = os.environ.get("TWOWAY_BIN")
    if not path:
        path = str(Path(__file__).resolve().parents[2] / "build" / "twoway")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"twoway binary not found at {path}; set TWOWAY_BIN")
    return path


def _merged_env(env):
    merged = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = str(v)
    return merged


def run_cmd(cmd, check=False, input=None, env=None, cwd=None, timeout=DEFAULT_TIMEOUT):
    """Run cmd (a list), capture stdout/stderr as text. env entries add to (None: remove
    from) the current environment. check=True raises with both outputs shown on failure."""
    cmd = [str(c) for c in cmd]
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True,
                          env=_merged_env(env), cwd=cwd, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run(args, check=False, input=None, env=None, cwd=None, timeout=DEFAULT_TIMEOUT):
    """Run `twoway ARGS...` (args: list) and return the CompletedProcess (text)."""
    return run_cmd([twoway_bin()] + list(args), check=check, input=input, env=env, cwd=cwd,
                   timeout=timeout)


def free_port(host="127.0.0.1") -> int:
    """A TCP port free on host right now (the kernel picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=10.0, proc=None):
    """Wait until something accepts TCP connections on host:port. If proc is given and exits
    first, fail at once rather than waiting out the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before {host}:{port} opened")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
        time.sleep(0.05)


def _line_reader(proc):
    """One background thread per process copies its stdout lines into a queue, so several
    wait_for_line calls can share the stream and the child never blocks on a full pipe."""
    reader = getattr(proc, "_tw_reader", None)
    if reader is None:
        lines = queue.Queue()

        def pump():
            for line in iter(proc.stdout.readline, "" if _is_text(proc) else b""):
                lines.put(line if isinstance(line, str) else line.decode("utf-8", "replace"))
            lines.put(None)  # EOF

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        reader = {"queue": lines, "seen": [], "eof": False}
        proc._tw_reader = reader
    return reader


def _is_text(proc):
    return hasattr(proc.stdout, "encoding")


def wait_for_line(proc, pattern, timeout=10.0) -> str:
    """Read proc's stdout (start it with stdout=PIPE; merge stderr with stderr=STDOUT if the
    line goes there) until a line matches the regex pattern; return that line. Raises
    TimeoutError, or RuntimeError at EOF, with everything read so far."""
    reader = _line_reader(proc)
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or reader["eof"]:
            seen = "".join(reader["seen"])
            kind = RuntimeError if reader["eof"] else TimeoutError
            raise kind(f"no line matching {pattern!r} (output so far:\n{seen})")
        try:
            line = reader["queue"].get(timeout=min(left, 0.2))
        except queue.Empty:
            continue
        if line is None:
            reader["eof"] = True
            continue
        reader["seen"].append(line)
        if regex.search(line):
            return line


def output_so_far(proc) -> str:
    """Everything wait_for_line has read from proc, for assertion messages."""
    reader = getattr(proc, "_tw_reader", None)
    return "".join(reader["seen"]) if reader else ""


def stop(proc, timeout=5.0):
    """Terminate a child started by a test (it alone), killing it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


@dataclass
class Issued:
    """Files and facts of one `twoway ca issue`."""
    name: str
    serial: str
    cert: Path
    chain: Path            # leaf then intermediate
    key: Optional[Path]    # None when issued from a CSR
    p12: Optional[Path]
    stdout: str


class Pki:
    """A throwaway CA in tmpdir, made with `twoway ca init`.

    pki = Pki(tmp_path)                        # ec:P-256, no passphrase
    srv = pki.issue_server("localhost", san="ip:127.0.0.1")
    cli = pki.issue_client("alice")
    openssl verify -CAfile pki.root -untrusted pki.intermediate cli.cert

    Servers verifying clients install pki.chain (intermediate + root) or pki.root.
    """

    def __init__(self, tmpdir, name="Test CA", key=None, base_url=None, passphrase=None,
                 extra_args=()):
        self.tmp = Path(tmpdir)
        self.dir = self.tmp / "data"
        self.out = self.tmp / "out"
        self.name = name
        self.passphrase_file = None
        args = ["ca", "init", "--dir", self.dir, "--name", name]
        if key:
            args += ["--key", key]
        if base_url:
            args += ["--base-url", base_url]
        if passphrase is not None:
            self.passphrase_file = self.tmp / "ca-pass.txt"
            self.passphrase_file.write_text(passphrase + "\n")
            self.passphrase_file.chmod(0o600)
            args += ["--passphrase-file", self.passphrase_file]
        self.init_result = run(args + list(extra_args), check=True)
        m = re.search(r"^SHA256: ([0-9a-f]{64})$", self.init_result.stdout, re.M)
        self.root_sha256 = m.group(1) if m else None

    # Files of the CA (see docs/commands/ca.md "Data dir layout").
    @property
    def ca_dir(self) -> Path:
        return self.dir / "ca"

    @property
    def root(self) -> Path:
        return self.ca_dir / "root.crt"

    @property
    def intermediate(self) -> Path:
        return self.ca_dir / "intermediate.crt"

    @property
    def chain(self) -> Path:
        return self.ca_dir / "chain.pem"

    @property
    def ocsp(self) -> Path:
        return self.ca_dir / "ocsp.crt"

    @property
    def crl(self) -> Path:
        return self.ca_dir / "crl.pem"

    @property
    def db(self) -> Path:
        return self.dir / "ca.db"

    def ca(self, *args, check=False, env=None, **kw):
        """Run `twoway ca ARGS --dir D` (plus --passphrase-file for a protected CA when the
        subcommand signs)."""
        args = [str(a) for a in args]
        full = ["ca"] + args + ["--dir", str(self.dir)]
        if self.passphrase_file and args and args[0] in ("issue", "revoke", "crl"):
            if "--passphrase-file" not in args:
                full += ["--passphrase-file", str(self.passphrase_file)]
        return run(full, check=check, env=env, **kw)

    def issue(self, profile, name, san=None, days=None, key=None, csr=None, out=None,
              p12_pass=None, p12_legacy=False, extra=()) -> Issued:
        """`twoway ca issue PROFILE NAME`; returns the paths it printed. p12_pass (a string)
        also makes NAME.p12 with that password."""
        out = Path(out) if out else self.out
        args = ["issue", profile, name, "--out", out]
        if san:
            args += ["--san", san]
        if days is not None:
            args += ["--days", str(days)]
        if key:
            args += ["--key", key]
        if csr:
            args += ["--csr", csr]
        if p12_pass is not None:
            pw = self.tmp / f"{name}.p12pass"
            pw.write_text(p12_pass + "\n")
            args += ["--p12", "--p12-pass-file", pw]
            if p12_legacy:
                args.append("--p12-legacy")
        r = self.ca(*args, *extra, check=True)
        fields = dict(re.findall(r"^([a-z0-9_]+): (.*)$", r.stdout, re.M))
        return Issued(
            name=name,
            serial=fields.get("serial", ""),
            cert=Path(fields.get("cert", out / f"{name}.crt")),
            chain=Path(fields.get("chain", out / f"{name}.chain.pem")),
            key=Path(fields["key"]) if "key" in fields else None,
            p12=Path(fields["p12"]) if "p12" in fields else None,
            stdout=r.stdout,
        )

    def issue_client(self, name, **kw) -> Issued:
        return self.issue("client", name, **kw)

    def issue_server(self, name="localhost", san="ip:127.0.0.1", **kw) -> Issued:
        return self.issue("server", name, san=san, **kw)

    def revoke(self, serial_or_name, reason=None, check=True):
        args = ["revoke", serial_or_name]
        if reason:
            args += ["--reason", reason]
        return self.ca(*args, check=check)

    def write_crl(self, *extra, check=True):
        return self.ca("crl", *extra, check=check)
