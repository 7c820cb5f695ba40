"""Helpers for the console tests (test_console_*.py): a CA with the roles' certificates and a
`ca serve --console` on it, and requests as one of them through python's ssl or curl."""

import json
import re
import subprocess
import urllib.parse

from est_helpers import CaServer, https

# Role rules every console test server uses. "imposter" is a client certificate whose CN
# matches an admin rule: without the admin profile it only reads.
RULES = ("--console", "--console-allow", "cn:viewer", "--console-allow", "cn:imposter",
         "--console-admin-allow", "cn:ops", "--console-admin-allow", "cn:imposter")


class Console:
    """ca serve --console on pki with ops (admin), viewer, imposter and outsider issued."""

    def __init__(self, pki, tmp, *extra):
        self.pki = pki
        self.ops = pki.issue("admin", "ops", out=tmp / "ops")
        self.viewer = pki.issue_client("viewer", out=tmp / "viewer")
        self.imposter = pki.issue_client("imposter", out=tmp / "imposter")
        self.outsider = pki.issue_client("outsider", out=tmp / "outsider")
        # Many requests in a row from one address: above the default rate limit.
        self.srv = CaServer(pki, *RULES, "--rate", "1000", "--burst", "1000", *extra)

    def req(self, who, method, path, form=None, headers=None):
        """(status, headers, body) as who (an Issued, or None: no certificate)."""
        body = urllib.parse.urlencode(form) if form is not None else None
        h = dict(headers or {})
        if body is not None:
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        cert = who.cert if who else None
        key = who.key if who else None
        return https(self.srv, method, path, body=body, headers=h, cert=cert, key=key)

    def json(self, who, method, path, form=None, headers=None):
        st, h, b = self.req(who, method, path, form, headers)
        return st, json.loads(b)

    def csrf(self, who):
        st, j = self.json(who, "GET", "/api/v1/session")
        assert st == 200, j
        return j["csrf"]

    def curl(self, who, method, path, form=None, headers=()):
        """curl as who: (status, body). An independent TLS client (OpenSSL via libcurl)."""
        args = ["curl", "-sS", "--cacert", str(self.pki.chain), "-o", "-", "-w",
                "\n%{http_code}", "-X", method]
        if who:
            args += ["--cert", str(who.cert), "--key", str(who.key)]
        for h in headers:
            args += ["-H", h]
        for k, v in (form or {}).items():
            args += ["--data-urlencode", f"{k}={v}"]
        r = subprocess.run(args + [self.srv.url + path], capture_output=True, text=True,
                           timeout=30)
        body, _, code = r.stdout.rpartition("\n")
        return int(code) if code.isdigit() else 0, body

    def stop(self):
        self.srv.stop()


def audit(pki):
    """Audit rows (action, subject, serial, result) from the SQLite store."""
    from est_helpers import audit_rows
    return audit_rows(pki)


def ocsp_status(pki, cert, url):
    """What `openssl ocsp` says about cert at url/ocsp: good, revoked or unknown."""
    r = subprocess.run(["openssl", "ocsp", "-issuer", str(pki.intermediate), "-cert", str(cert),
                        "-url", url + "/ocsp", "-CAfile", str(pki.chain), "-VAfile",
                        str(pki.ocsp)], capture_output=True, text=True, timeout=30)
    m = re.search(r": (good|revoked|unknown)", r.stdout)
    assert m, r.stdout + r.stderr
    return m.group(1)
