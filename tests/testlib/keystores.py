"""Hardware key stores for tests, all in temp dirs: SoftHsm (a SoftHSM2 token, inspected with
pkcs11-tool) and Swtpm (a TPM 2.0 simulator on free loopback ports, reached by tpm2-openssl
through $TPM2OPENSSL_TCTI)."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from twoway_testlib import free_port, run_cmd

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


class SoftHsm:
    """One token labelled `label` in dir, user PIN `pin` in dir/pin (0600). Sets
    SOFTHSM2_CONF in this process's environment, which every child inherits."""

    def __init__(self, dir, label="twoway", pin="1234", so_pin="87654321", beside=None):
        """beside: another SoftHsm whose token directory gets this token too (SoftHSM reads
        one SOFTHSM2_CONF per process, so several tokens in one process share it)."""
        self.dir = Path(dir)
        if beside is None:
            (self.dir / "tokens").mkdir(parents=True, exist_ok=True)
            self.conf = self.dir / "softhsm2.conf"
            self.conf.write_text(f"directories.tokendir = {self.dir / 'tokens'}\n"
                                 "objectstore.backend = file\nlog.level = ERROR\n")
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.conf = beside.conf
        os.environ["SOFTHSM2_CONF"] = str(self.conf)
        self.label, self.pin = label, pin
        self.pin_file = self.dir / "pin"
        self.pin_file.write_text(pin + "\n")
        self.pin_file.chmod(0o600)
        run_cmd(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", so_pin,
                 "--pin", pin], check=True)

    def uri(self, pin_file=None, module=SOFTHSM_MODULE, **attrs):
        """pkcs11:token=LABEL[;k=v...]?pin-source=file:PIN&module-path=MODULE"""
        path = ";".join([f"token={self.label}"] + [f"{k}={v}" for k, v in attrs.items()])
        return (f"pkcs11:{path}?pin-source=file:{pin_file or self.pin_file}"
                f"&module-path={module}")

    def tool(self, *args, check=True):
        return run_cmd(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", self.label,
                        "--login", "--pin", self.pin, *args], check=check)

    def private_keys(self):
        """{label: access line} of every private key object in the token."""
        out = self.tool("--list-objects", "--type", "privkey").stdout
        keys, label = {}, None
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("label:"):
                label = line.split(":", 1)[1].strip()
            elif line.startswith("Access:") and label is not None:
                keys[label] = line.split(":", 1)[1].strip()
        return keys

    def labels(self, kind, prefix=""):
        """Sorted labels of the token's objects of kind (privkey, pubkey) starting with prefix,
        one entry per object (pkcs11-tool --list-objects)."""
        out = self.tool("--list-objects", "--type", kind).stdout
        found = [line.split(":", 1)[1].strip() for line in out.splitlines()
                 if line.strip().startswith("label:")]
        return sorted(x for x in found if x.startswith(prefix))

    def keypair(self, label, key_type="EC:prime256v1", id="01"):
        self.tool("--keypairgen", "--key-type", key_type, "--label", label, "--id", id)

    def public_der(self, label):
        out = self.dir / f"{label}.pub.der"
        self.tool("--read-object", "--type", "pubkey", "--label", label, "-o", out)
        return out.read_bytes()


class Swtpm:
    """`swtpm socket --tpm2` on two loopback ports (a free one and the next) with its state in dir; tcti is what
    $TPM2OPENSSL_TCTI and $TPM2TOOLS_TCTI take. stop() ends it."""

    def __init__(self, dir):
        self.dir = Path(dir)
        (self.dir / "state").mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            # The swtpm TCTI finds the control channel at port + 1.
            self.port = free_port()
            self.ctrl = self.port + 1
            self.proc = subprocess.Popen(
                ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.dir / 'state'}",
                 "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                 "--ctrl", f"type=tcp,port={self.ctrl},bindaddr=127.0.0.1",
                 "--flags", "startup-clear,not-need-init"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._ready():
                break
            self.stop()
        else:
            raise RuntimeError("swtpm did not start")
        self.tcti = f"swtpm:host=127.0.0.1,port={self.port}"
        self.env = {"TPM2OPENSSL_TCTI": self.tcti, "TPM2TOOLS_TCTI": self.tcti}

    def _ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def have(*programs):
    return all(shutil.which(p) for p in programs)


def check_ca_signs(pki, ocsp_port, out, prefix=""):
    """The CA (keys wherever they are) issues two client certificates, revokes one, signs a
    CRL and answers OCSP on ocsp_port; `openssl verify`, `openssl crl` and `openssl ocsp`
    accept each result."""
    good = pki.issue_client(f"{prefix}alice", out=out)
    bad = pki.issue_client(f"{prefix}mallory", out=out)
    r = run_cmd(["openssl", "verify", "-CAfile", pki.root, "-untrusted", pki.intermediate,
                 good.cert], check=True)
    assert f"{good.cert}: OK" in r.stdout
    pki.revoke(bad.serial, reason="keyCompromise")
    pki.write_crl()
    r = run_cmd(["openssl", "crl", "-in", pki.crl, "-CAfile", pki.chain, "-noout", "-text"],
                check=True)
    assert "verify OK" in r.stderr + r.stdout and bad.serial.upper() in r.stdout.upper()
    r = run_cmd(["openssl", "verify", "-crl_check", "-CRLfile", pki.crl, "-CAfile", pki.root,
                 "-untrusted", pki.intermediate, bad.cert])
    assert r.returncode != 0 and "revoked" in r.stdout + r.stderr
    url = f"https://127.0.0.1:{ocsp_port}/ocsp"
    r = run_cmd(["openssl", "ocsp", "-issuer", pki.intermediate, "-url", url, "-CAfile",
                 pki.chain, "-cert", good.cert, "-cert", bad.cert], check=True)
    assert "Response verify OK" in r.stderr + r.stdout
    assert f"{good.cert}: good" in r.stdout and f"{bad.cert}: revoked" in r.stdout
