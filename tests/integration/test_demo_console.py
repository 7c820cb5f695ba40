"""`twoway demo --serve` ends by printing the console's URL and the admin PKCS#12 to import,
and that certificate (its PEM twin, with curl; and the PKCS#12 itself, through openssl) gets
into the console."""

import re
import subprocess

from twoway_testlib import stop, twoway_bin, wait_for_line


def test_demo_serve_prints_the_console_and_the_admin_p12(tmp_path):
    proc = subprocess.Popen([twoway_bin(), "demo", "--serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        line = wait_for_line(proc, r"The CA's web console: https://\S+/console/", timeout=120)
        url = re.search(r"(https://\S+)/console/", line).group(1)
        p12 = re.search(r"import (\S+/ops\.p12) into the browser \(password (\S+)\)",
                        wait_for_line(proc, r"import \S+ops\.p12", timeout=10))
        curl = wait_for_line(proc, r"curl --cacert \S+ --cert \S+ops\.crt", timeout=10)
        args = curl.split()
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and '"backend":"sqlite"' in r.stdout, r.stdout + r.stderr
        # the PKCS#12 opens with the printed password and holds the admin certificate
        pem = subprocess.run(["openssl", "pkcs12", "-in", p12.group(1), "-passin",
                              "pass:" + p12.group(2), "-nokeys", "-clcerts"],
                             capture_output=True, text=True, timeout=30)
        assert pem.returncode == 0 and "CN = ops" in pem.stdout, pem.stderr
        assert url.startswith("https://127.0.0.1:")
    finally:
        stop(proc)
