""".ci/run on a machine with `python3` and no `python`, as stock Debian is.

The script runs in a copy of the checkout's layout whose PATH holds a recording stand-in
for `python3` (a real install would take the whole suite's time and change this machine's
Python): the test checks which commands the script runs and that it finishes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "run"
PYTHON3 = """#!/bin/bash
# Stands in for python3 (or the .venv's python): answers the script's checks, records
# every other command.
if [ "$1" = "-c" ]; then
  case "$2" in
    *EXTERNALLY-MANAGED*) [ "${MANAGED:-0}" = 1 ] && exit 0 || exit 1 ;;
    *) exit 0 ;;
  esac
fi
echo "$0 $*" >> "$CALLS"
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
fi
exit 0
"""


def run_ci(tmp_path: Path, managed: bool) -> tuple[subprocess.CompletedProcess, list[str]]:
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy(SCRIPT, checkout / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(PYTHON3)
    (bin_dir / "python3").chmod(0o755)
    (bin_dir / "mpd").write_text("#!/bin/bash\n")  # installed: no apt-get
    (bin_dir / "mpd").chmod(0o755)
    for tool in ("dirname", "id", "mkdir", "cp"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    calls = tmp_path / "calls"
    env = {"PATH": str(bin_dir), "CALLS": str(calls), "MANAGED": str(int(managed))}
    done = subprocess.run(
        ["/bin/bash", str(checkout / ".ci" / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done, [line.replace(str(bin_dir), "bin") for line in lines]


def test_ci_run_needs_only_python3(tmp_path):
    assert shutil.which("python", path=str(tmp_path)) is None
    done, calls = run_ci(tmp_path, managed=False)
    assert done.returncode == 0, done.stderr
    assert calls == [
        "bin/python3 -m pip install -q -e .[test,train] -e plugin/mpd -e plugin/beets",
        "bin/python3 -m ruff check simlib tests benchmarks plugin",
        "bin/python3 -m pytest -q",
    ]


def test_ci_run_uses_a_venv_where_python3_is_externally_managed(tmp_path):
    done, calls = run_ci(tmp_path, managed=True)
    assert done.returncode == 0, done.stderr
    assert calls[0] == "bin/python3 -m venv .venv"
    assert [c.split(" ", 1)[0] for c in calls[1:]] == [".venv/bin/python"] * 3
    assert os.access(tmp_path / "checkout" / ".venv" / "bin" / "python", os.X_OK)
