"""The console in a real browser: Debian's headless Chromium driven by Playwright
(tests/browser/console_tour.js) with an admin client certificate loads every page, revokes a
certificate through the form (after which `openssl ocsp` reports it revoked) and creates a
token whose shown command enrolls. Screenshots of each page are left in the build directory
(console-screenshots/). The browser reports no script error and no CSP violation."""

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from console_helpers import Console, ocsp_status
from twoway_testlib import Pki, twoway_bin

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"


def missing():
    if not Path("/usr/bin/chromium").exists():
        return "Debian's chromium is not installed (make deps)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").exists() or not shutil.which("node"):
        return "playwright-core is not installed (make test runs npm ci in tests/browser)"
    return None


@pytest.mark.skipif(missing() is not None, reason=missing() or "")
def test_admin_tour_in_chromium(tmp_path):
    pki = Pki(tmp_path)
    con = Console(pki, tmp_path)
    try:
        victim = pki.issue_client("laptop-42", san="email:it@example.com", out=tmp_path / "v")
        shots = Path(twoway_bin()).parent / "console-screenshots"
        shots.mkdir(exist_ok=True)
        env = dict(os.environ, URL=con.srv.url, CERT=str(con.ops.cert), KEY=str(con.ops.key),
                   SHOTS=str(shots), VICTIM=victim.serial, TOKEN_NAME="kiosk-7")
        r = subprocess.run(["node", str(BROWSER_DIR / "console_tour.js")], env=env,
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert {p["status"] for p in out["pages"].values()} == {200}, out["pages"]
        assert out["problems"] == [], out["problems"]
        assert out["ocsp_after_revoke"] == "revoked"
        assert ocsp_status(pki, victim.cert, con.srv.url) == "revoked"
        assert out["qr"] == 1
        cmd = shlex.split(out["command"])
        assert cmd[:2] == ["twoway", "enroll"] and "kiosk-7" in cmd
        done = subprocess.run([twoway_bin(), *cmd[1:], "--out", str(tmp_path / "kiosk")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "kiosk" / "kiosk-7.crt").exists()
        for name in ("overview", "inventory", "certificate", "revoked", "tokens", "token",
                     "pending", "audit"):
            assert (shots / f"console-{name}.png").stat().st_size > 1000
    finally:
        con.stop()
