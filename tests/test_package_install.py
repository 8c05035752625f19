"""The package as users get it: a wheel built from a copy of this tree, installed (not
editable) into a fresh virtual environment, runs a built-in scenario by name, and a user's
own scenario file by path, from a directory that has neither ``scenarios/`` nor
``config.yaml``. Real subprocesses throughout.

The wheel's dependencies are taken from this test run's environment (a ``.pth`` line that
names its site-packages), so the test needs no network beyond what building the wheel
asks for; the project itself comes only from the wheel.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MY_SCENARIO = '''
from sim.ev import Ev

PARAMETERS = {}


async def scenario(ctx):
    (cp,) = await ctx.fleet.spawn(1, evses=1)
    await ctx.sleep(30)
    await cp.plug_in(1, Ev(capacity_wh=40_000, soc=50.0, max_power_w=7_400))
    ctx.check(await cp.start_session(1, "MINE"), "the session did not start")
    await ctx.sleep(600)
    await cp.unplug(1)
    await ctx.sleep(60)
    ctx.note("my own scenario ran")
'''


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


def test_the_wheel_runs_scenarios_from_any_directory(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
        ".hypothesis", "*.db*"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist),
          str(source)], cwd=tmp_path, timeout=600)
    (wheel,) = dist.glob("trio_csms-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
          str(wheel)], cwd=tmp_path)
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                         "'purelib'))"], cwd=tmp_path).stdout.strip())
    ours = {sysconfig.get_path("purelib"), *site.getsitepackages()}
    (purelib / "zz_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([str(python), "-c", "import sim, csms; print(sim.__file__, csms.__file__)"],
                 cwd=elsewhere).stdout
    assert str(venv) in where and str(ROOT) not in where, where

    # A built-in scenario against the baseline the wheel ships, with its HTML report.
    done = _run([str(python), "-m", "sim", "scenario", "basic_charge", "--baseline",
                 "--html", "r.html"], cwd=elsewhere)
    assert "all checks passed" in done.stdout
    assert f"{purelib}/sim/scenarios/baselines/basic_charge.json: the same" in done.stdout
    assert "<svg" in (elsewhere / "r.html").read_text()
    (elsewhere / "mine.py").write_text(MY_SCENARIO)
    done = _run([str(python), "-m", "sim", "scenario", "mine.py"], cwd=elsewhere)
    assert "my own scenario ran" in done.stdout
    assert "all checks passed" in done.stdout
    # The shipped configuration came along: its templates are known by name.
    listed = _run([str(python), "-c", "from sim.config import load_config; "
                   "print(sorted(load_config(None).chargers))"], cwd=elsewhere).stdout
    assert "w_only" in listed, listed
