"""bash completion (completion/twoway.bash): commands, `ca` sub-commands and each command's
flags come from the program's --list-flags, completed as bash-completion would."""

import os
import subprocess
from pathlib import Path

import pytest

from twoway_testlib import twoway_bin

SCRIPT = Path(__file__).resolve().parents[2] / "completion" / "twoway.bash"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")

HARNESS = r"""
source "$BASH_COMPLETION"
source "$SCRIPT"
COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMPREPLY=()
_twoway
printf '%s\n' "${COMPREPLY[@]}"
"""


def complete(line, cwd):
    env = dict(os.environ, BASH_COMPLETION=str(BASH_COMPLETION), SCRIPT=str(SCRIPT),
               PATH=f"{Path(twoway_bin()).parent}:{os.environ['PATH']}")
    r = subprocess.run(["bash", "-c", HARNESS, "complete", line], capture_output=True,
                       text=True, env=env, cwd=cwd, timeout=30)
    assert r.returncode == 0, r.stderr
    return sorted(w for w in r.stdout.split("\n") if w)


@pytest.mark.parametrize("line, expected", [
    ("twoway ", sorted(["ca", "enroll", "renew", "gateway", "tunnel", "doctor", "bench", "demo",
                        "version", "--version", "--help"])),
    ("twoway ga", ["gateway"]),
    ("twoway ca re", ["reject", "revoke"]),
    ("twoway ca issue --pa", ["--passphrase-file"]),
    ("twoway ca serve --allow", ["--allow-root"]),
    ("twoway gateway --client", ["--client-ca"]),
    ("twoway gateway --allow", ["--allow", "--allow-root"]),
    ("twoway tunnel --ta", ["--target"]),
    ("twoway doctor --js", ["--json"]),
])
def test_completes(line, expected, tmp_path):
    if not BASH_COMPLETION.exists():
        pytest.fail("bash-completion is not installed (make deps installs it)")
    assert complete(line, tmp_path) == expected


def test_files_after_a_file_flag(tmp_path):
    (tmp_path / "web.conf").write_text("")
    (tmp_path / "other").mkdir()
    assert complete("twoway gateway --config w", tmp_path) == ["web.conf"]
