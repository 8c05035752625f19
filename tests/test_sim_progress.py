"""Progress of a scenario run: on a terminal (the CLI under a real pseudo-terminal) and
nowhere else, and never changing what the run does."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

PYTHON = sys.executable


def under_a_terminal(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    """Run ``python -m sim`` with stdout and stderr on a fresh pseudo-terminal (0x0, as
    `script` gives one); what it printed, both streams together as a terminal shows them."""
    master, slave = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", "TERM")}
    child = subprocess.Popen([PYTHON, "-m", "sim", *args], stdin=subprocess.DEVNULL,
                             stdout=slave, stderr=slave, cwd=tmp_path,
                             env={**environment, "TERM": "xterm", **env})
    os.close(slave)
    out = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return child.wait(timeout=300), out.decode("utf-8", "replace")


def test_a_terminal_shows_progress_and_the_run_is_the_same(tmp_path: Path) -> None:
    code, shown = under_a_terminal(tmp_path, "scenario", "morning_rush", "--baseline")
    assert code == 0, shown
    updates = [line for line in shown.split("\r") if "sessions open" in line]
    assert updates, shown
    # Scenario time reached out of its length, sessions open, site power, a bar.
    shape = re.compile(r"morning_rush (\d\d):\d\d \((\d+\.\d)/8 h\), (\d+) sessions open, "
                       r"site \d+\.\d kW \|.*\| +(\d+)% \[")
    seen = [shape.search(line) for line in updates]
    assert all(seen), updates
    # It moves: later updates have reached further into the morning.
    reached = [float(match.group(2)) for match in seen if match]
    assert reached == sorted(reached) and reached[-1] > reached[0], updates
    assert any(int(match.group(3)) > 0 for match in seen if match)
    # Drawing it changed nothing: the report is the baseline the CLI made without it.
    assert "baselines/morning_rush.json: the same, within the tolerances" in shown
    assert "all checks passed" in shown


def test_no_progress_in_ci_or_off_a_terminal(tmp_path: Path) -> None:
    code, shown = under_a_terminal(tmp_path, "scenario", "morning_rush", "--set", "hours=6",
                                   CI="true")
    assert code == 0, shown
    assert "sessions open" not in shown
    done = subprocess.run([PYTHON, "-m", "sim", "scenario", "morning_rush", "--set",
                           "hours=6"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300, check=False)
    assert done.returncode == 0
    assert "sessions open" not in done.stderr + done.stdout
    assert done.stderr == ""
