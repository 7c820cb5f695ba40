"""`twoway demo` (what `make run` runs) tells the whole story and exits 0 within a minute."""
import os
import subprocess
import time

TWOWAY = os.environ["TWOWAY_BIN"]


def test_demo_runs_every_step_and_exits_0():
    started = time.monotonic()
    proc = subprocess.run([TWOWAY, "demo"], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert elapsed < 60, f"demo took {elapsed:.1f}s"
    # Each behaviour the narration promises, as observed by the demo itself.
    assert "alert certificate required" in out  # no certificate: refused in the handshake
    assert "[no-client-cert]" in out  # ... and doctor says why
    assert "Enrolled alice" in out
    assert "Hello, alice!" in out  # the backend greets the forwarded identity
    assert "alice's open connection: closed by the gateway" in out
    assert "alert certificate revoked" in out
    assert "Hello, bob!" in out  # after renewal
    assert "Every step behaved as narrated." in out


def test_demo_rejects_unknown_flags_with_usage_exit():
    proc = subprocess.run([TWOWAY, "demo", "--bogus"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "demo" in proc.stderr
