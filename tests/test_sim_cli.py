"""``python -m sim`` and its console scripts as real subprocesses: exit codes, and a
long-running fleet (start-sim) against a real CSMS process, driven over its control
socket (inject-fault, stop-sim).

Nothing sleeps to synchronise: the tests wait for a process's output line, or poll a
command until it shows what they wait for, always under ``trio.fail_after``.
"""

from __future__ import annotations

import json
import re
import resource
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from sim.cli import _checked, _value
from sim.config import ConfigError

PYTHON = sys.executable
BIN = Path(sys.executable).parent
TIMEOUT = 60  # seconds, real time, for any one command


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "sim", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


async def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(TIMEOUT):
        return await trio.run_process([PYTHON, *args], capture_stdout=True,
                                      capture_stderr=True, check=False)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def control() -> Iterator[Path]:
    """A control socket path short enough for AF_UNIX, in a directory of its own."""
    with tempfile.TemporaryDirectory(prefix="sim-ctl-") as directory:
        yield Path(directory) / "ctl.sock"


# -- one-shot commands --------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["scenario", "--help"]])
def test_help_exits_0(args: list[str]) -> None:
    done = sim(*args)
    assert done.returncode == 0, done.stderr
    assert "usage: python -m sim" in done.stdout
    if args == ["--help"]:
        for command in ("scenario", "run-scenario", "start-sim", "inject-fault", "inject",
                        "clear", "stop-sim"):
            assert command in done.stdout
        assert "3 CSMS or simulator unreachable" in " ".join(done.stdout.split())
    else:
        for option in ("--url", "--seed", "--chargers", "--set", "--report"):
            assert option in done.stdout


def test_no_command_prints_help_and_exits_2() -> None:
    done = sim()
    assert done.returncode == 2
    assert "usage:" in done.stdout


def test_an_unknown_scenario_exits_2_naming_the_known_ones() -> None:
    done = sim("scenario", "nope")
    assert done.returncode == 2
    assert "no scenario 'nope'" in done.stderr
    assert "basic_charge" in done.stderr and "morning_rush" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("nope=1", "scenario basic_charge has no parameter 'nope' (has: chargers, evses, hours)"),
        ("hours", "--set 'hours': expected KEY=VALUE"),
        ("hours=soon", "scenario basic_charge: parameter 'hours' is a number, got 'soon'"),
        ("hours=nan", "parameter 'hours' must be finite and not negative, got nan"),
        ("hours=-1", "parameter 'hours' must be finite and not negative, got -1"),
        ("chargers=2.5", "parameter 'chargers' is an integer, got 2.5"),
        ("evses=0", "parameter 'evses' must be at least 1, got 0"),
        ("chargers=null", "parameter 'chargers' is an integer, got None"),
    ],
)
def test_a_bad_parameter_exits_2(item: str, expected: str) -> None:
    done = sim("scenario", "basic_charge", "--set", item)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_command_line_exits_2() -> None:
    done = sim("scenario", "basic_charge", "--chargers", "many")
    assert done.returncode == 2
    assert "invalid int value" in done.stderr
    done = sim("scenario", "basic_charge", "--chargers", "-3")
    assert done.returncode == 2
    assert "parameter 'chargers' must be finite and not negative, got -3" in done.stderr
    # Checked before the CSMS is looked for: no CSMS listens on the default URL here.
    done = sim("start-sim", "--chargers", "0")
    assert done.returncode == 2
    assert "start-sim: --chargers must be at least 1, got 0" in done.stderr
    assert "Traceback" not in done.stderr
    for args, said in [
        (("--sessions", "0"), "--sessions must be a positive number of minutes, got 0"),
        (("--sessions", "nan"), "--sessions must be a positive number of minutes, got nan"),
        (("--shard", "3/2"), "--shard: K must be between 1 and N, got 3/2"),
        (("--shard", "1/5"), "--shard: 5 shards for 3 chargers leaves some empty"),
        (("--shard", "two"), "--shard: expected K/N such as 2/4, got 'two'"),
    ]:
        done = sim("start-sim", "--chargers", "3", *args)
        assert done.returncode == 2, args
        assert f"python -m sim: start-sim: {said}" in done.stderr, done.stderr


def _limited(soft: int, hard: int) -> Callable[[], None]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return limit


def test_start_sim_raises_its_open_files_limit_or_says_it_cannot(closed_port: int) -> None:
    url = f"ws://127.0.0.1:{closed_port}/ocpp"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 400:
        pytest.skip(f"the hard open-files limit here is {hard}")
    # A soft limit of 100 for 200 chargers: raised to the hard limit, and on to the CSMS
    # (unreachable here: exit 3, not a failure to open sockets).
    raised = subprocess.run([PYTHON, "-m", "sim", "start-sim", "--chargers", "200",
                             "--url", url], capture_output=True, text=True, timeout=TIMEOUT,
                            check=False, preexec_fn=_limited(100, hard))
    assert raised.returncode == 3, raised.stderr
    assert f"cannot reach the CSMS at {url}" in raised.stderr
    # A hard limit of 100: no way to hold 200 chargers; exit 2 before anything starts.
    refused = subprocess.run([PYTHON, "-m", "sim", "start-sim", "--chargers", "200",
                              "--url", url], capture_output=True, text=True, timeout=TIMEOUT,
                             check=False, preexec_fn=_limited(100, 100))
    assert refused.returncode == 2
    assert ("start-sim: 200 chargers need about 264 open files; the limit is 100 (raise it: "
            "ulimit -Hn, or shard the fleet with --shard K/N over processes)") in refused.stderr


def test_an_unreachable_csms_exits_3(closed_port: int) -> None:
    url = f"ws://127.0.0.1:{closed_port}/ocpp"
    done = sim("scenario", "basic_charge", "--url", url)
    assert done.returncode == 3
    assert f"cannot reach the CSMS at {url}" in done.stderr
    started = sim("start-sim", "--chargers", "1", "--url", url)
    assert started.returncode == 3
    assert f"cannot reach the CSMS at {url}" in started.stderr


@pytest.mark.parametrize("script", ["start-sim", "run-scenario", "inject-fault", "stop-sim"])
def test_the_console_scripts_exist(script: str) -> None:
    path = BIN / script
    assert path.is_file(), f"{path} missing: pip install -e '.[test,dev]'"
    assert path.stat().st_mode & 0o111


def test_stop_sim_without_a_running_fleet_exits_3(control: Path) -> None:
    done = subprocess.run([str(BIN / "stop-sim"), "--control", str(control)],
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 3
    assert f"no running simulator at {control}" in done.stderr


def test_a_console_script_runs_its_command() -> None:
    helped = subprocess.run([str(BIN / "run-scenario"), "--help"], capture_output=True,
                            text=True, timeout=TIMEOUT, check=False)
    assert helped.returncode == 0
    assert "--report" in helped.stdout


# -- a running fleet against a CSMS process ------------------------------------------------


class Background:
    """A process started by the test; its output lines are collected as they arrive."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._open = 2
        self._changed = trio.Event()

    async def collect(self, name: str, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            self.lines[name] += [line.decode(errors="replace") for line in complete]
            self._notify()
        if buffer:
            self.lines[name].append(buffer.decode(errors="replace"))
        self._open -= 1
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_line(self, name: str, pattern: str) -> re.Match[str]:
        """The first ``name`` line matching ``pattern``, once it has been printed."""
        while True:
            for line in self.lines[name]:
                match = re.search(pattern, line)
                if match:
                    return match
            if not self._open:
                raise AssertionError(f"{self.process.args!r} ended without {pattern!r}: "
                                     f"{self.lines}")
            await self._changed.wait()

    async def wait_closed(self) -> None:
        while self._open:
            await self._changed.wait()


@asynccontextmanager
async def background(nursery: trio.Nursery, *args: str) -> AsyncIterator[Background]:
    process = await trio.lowlevel.open_process([PYTHON, *args], stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE)
    running = Background(process)
    assert process.stdout is not None and process.stderr is not None
    nursery.start_soon(running.collect, "stdout", process.stdout)
    nursery.start_soon(running.collect, "stderr", process.stderr)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()  # only the process this test started, by its handle
        with trio.move_on_after(10) as cleanup:
            cleanup.shield = True
            await process.wait()
            await running.wait_closed()


async def test_two_shards_of_a_fleet_run_a_steady_load(tmp_path: Path, control: Path) -> None:
    """start-sim --shard K/N --sessions M: two processes share a fleet of 3 chargers
    without an id twice, and their EVSEs come and go (a second visit on some EVSE);
    stop-sim ends every session at the CSMS."""
    db = tmp_path / "csms.db"
    controls = [control.with_name(f"ctl-{k}.sock") for k in (1, 2)]
    async with trio.open_nursery() as nursery, background(
            nursery, "-m", "csms", "--port", "0", "--api-port", "0", "--db", str(db),
            "--unknown-id-tags", "accept") as csms:
        with trio.fail_after(TIMEOUT):
            listening = await csms.wait_line("stderr", r"listening on ws://[\d.]+:(\d+)/")
        url = f"ws://127.0.0.1:{listening[1]}/ocpp"

        def shard(k: int) -> list[str]:
            return ["-m", "sim", "start-sim", "--chargers", "3", "--shard", f"{k}/2",
                    "--sessions", "0.02", "--url", url, "--control", str(controls[k - 1])]

        async with background(nursery, *shard(1)) as first, \
                background(nursery, *shard(2)) as second:
            with trio.fail_after(TIMEOUT):
                await first.wait_line("stdout", r"starting CP_01\.\.CP_02 \(shard 1/2\)")
                await second.wait_line("stdout", r"starting CP_03\.\.CP_03 \(shard 2/2\)")
                said = await second.wait_line("stdout", "control socket")
                assert "sessions of 0.02 min on average" in said.string
                await first.wait_line("stdout", "control socket")

            def sessions(status: dict[str, Any] | None) -> list[dict[str, Any]]:
                status = status or {}
                return [*status.get("open_sessions", []),
                        *status.get("recent_sessions", [])]

            with trio.fail_after(TIMEOUT):  # bounded: each poll is one process run
                status = await csms_status(db)
                while not ({s["charger_id"] for s in sessions(status)}
                           == {"CP_01", "CP_02", "CP_03"} and len(sessions(status)) > 6):
                    status = await csms_status(db)
            assert sorted(c["id"] for c in (status or {})["chargers"]) == [
                "CP_01", "CP_02", "CP_03"]
            for session in sessions(status):  # the idTag names the EVSE
                assert session["id_tag"] == (f"{session['charger_id']}-"
                                             f"{session['connector_id']}")

            for k, fleet in ((1, first), (2, second)):
                stop = await run("-m", "sim", "stop-sim", "--control", str(controls[k - 1]))
                assert stop.returncode == 0, stop.stderr
                with trio.fail_after(TIMEOUT):
                    await fleet.process.wait()
                assert fleet.process.returncode == 0, fleet.lines["stderr"]
        status = await csms_status(db)
        assert status is not None and status["open_sessions"] == []
        csms.process.terminate()
        with trio.fail_after(TIMEOUT):
            await csms.process.wait()


async def csms_status(db: Path) -> dict[str, Any] | None:
    done = await run("-m", "csms", "status", "--db", str(db), "--json")
    if done.returncode != 0:
        return None  # e.g. the database is being written right now; ask again
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def evse_status(status: dict[str, Any] | None, charger: str, evse: str) -> str | None:
    for row in (status or {}).get("evses", []):
        if row["charger_id"] == charger and row["evse"] == evse:
            return str(row["status"])
    return None


async def test_start_sim_inject_fault_stop_sim(tmp_path: Path, control: Path) -> None:
    db = tmp_path / "csms.db"
    async with trio.open_nursery() as nursery:
        # Both ports free ones: the API's default 8180 may be taken on a shared machine.
        async with background(nursery, "-m", "csms", "--port", "0", "--api-port", "0",
                              "--db", str(db), "--unknown-id-tags", "accept") as csms:
            with trio.fail_after(TIMEOUT):
                listening = await csms.wait_line("stderr", r"listening on ws://[\d.]+:(\d+)/")
            url = f"ws://127.0.0.1:{listening[1]}/ocpp"
            async with background(nursery, "-m", "sim", "start-sim", "--chargers", "3",
                                  "--evses", "2", "--url", url, "--control", str(control)
                                  ) as fleet:
                with trio.fail_after(TIMEOUT):
                    ready = await fleet.wait_line("stdout", "control socket")
                assert str(control) in ready.string
                assert "3 chargers of 2 EVSEs" in ready.string

                fault = await run("-m", "sim", "inject-fault", "CP_01", "EVSE_2",
                                  "--control", str(control))
                assert fault.returncode == 0, fault.stderr
                said = fault.stdout.decode()
                assert "CP_01 EVSE_2: Available -> Faulted (GroundFailure)" in said

                with trio.fail_after(TIMEOUT):  # bounded: each poll is one process run
                    status = await csms_status(db)
                    while evse_status(status, "CP_01", "EVSE_2") != "Faulted":
                        status = await csms_status(db)
                assert evse_status(status, "CP_01", "EVSE_1") == "Available"
                faulted = next(row for row in (status or {})["evses"]
                               if (row["charger_id"], row["evse"]) == ("CP_01", "EVSE_2"))
                assert faulted["error_code"] == "GroundFailure"
                assert faulted["available"] is False

                refusals = {
                    ("CP_99", "EVSE_1"): "no charger CP_99 (have CP_01..CP_03)",
                    ("CP_01", "EVSE_9"): "CP_01 has no EVSE_9 (has EVSE_1..EVSE_2)",
                    ("CP_01", "EVSE_2"): "CP_01 EVSE_2 is already Faulted",
                }
                refused: dict[tuple[str, ...], subprocess.CompletedProcess[bytes]] = {}

                async def inject(args: tuple[str, ...]) -> None:
                    refused[args] = await run("-m", "sim", "inject-fault", *args,
                                              "--control", str(control))

                async with trio.open_nursery() as commands:  # independent: run at once
                    for args in refusals:
                        commands.start_soon(inject, args)
                for args, expected in refusals.items():
                    assert refused[args].returncode == 2, args
                    assert expected in refused[args].stderr.decode(), refused[args]
                    assert refused[args].stdout == b""

                stop = await run("-m", "sim", "stop-sim", "--control", str(control))
                assert stop.returncode == 0, stop.stderr
                assert "stopping 3 chargers" in stop.stdout.decode()
                with trio.fail_after(TIMEOUT):
                    await fleet.process.wait()
                assert fleet.process.returncode == 0, fleet.lines["stderr"]
                assert "Traceback" not in "\n".join(fleet.lines["stderr"])
                assert not await trio.Path(control).exists()  # removed on the way out

            again = await run("-m", "sim", "stop-sim", "--control", str(control))
            assert again.returncode == 3
            csms.process.terminate()  # SIGTERM: the CSMS closes every connection and exits
            with trio.fail_after(TIMEOUT):
                await csms.process.wait()
            assert csms.process.returncode == 0, csms.lines["stderr"]
        nursery.cancel_scope.cancel()

    # Every charger connected, booted and left; nothing was lost on the way.
    status = await csms_status(db)
    assert status is not None
    assert [c["id"] for c in status["chargers"]] == ["CP_01", "CP_02", "CP_03"]
    assert not any(c["connected"] for c in status["chargers"])
    assert len(status["evses"]) == 6


def test_a_parameter_keeps_the_type_of_its_default() -> None:
    assert _checked("s", "hours", _value("3"), 8.0) == 3.0
    assert isinstance(_checked("s", "hours", _value("3"), 8.0), float)
    assert _checked("s", "chargers", _value("50"), 20) == 50
    # A parameter unset by default takes a number, or null to stay unset.
    assert _checked("s", "site_limit_kw", _value("80.5"), None) == 80.5
    assert _checked("s", "site_limit_kw", _value("null"), None) is None
    assert _checked("s", "verbose", _value("true"), False) is True
    with pytest.raises(ConfigError, match="'verbose' is true or false, got 1"):
        _checked("s", "verbose", _value("1"), False)


def connected(status: dict[str, Any] | None, charger: str) -> bool | None:
    for row in (status or {}).get("chargers", []):
        if row["id"] == charger:
            return bool(row["connected"])
    return None


async def until_connected(db: Path, charger: str, wanted: bool) -> None:
    with trio.fail_after(TIMEOUT):  # bounded: each poll is one process run
        while connected(await csms_status(db), charger) is not wanted:
            pass


async def test_inject_and_clear_misbehaviour_in_a_running_fleet(
    tmp_path: Path, control: Path
) -> None:
    db = tmp_path / "csms.db"
    async with trio.open_nursery() as nursery:
        async with background(nursery, "-m", "csms", "--port", "0", "--api-port", "0",
                              "--db", str(db), "--unknown-id-tags", "accept") as csms:
            with trio.fail_after(TIMEOUT):
                listening = await csms.wait_line("stderr", r"listening on ws://[\d.]+:(\d+)/")
            url = f"ws://127.0.0.1:{listening[1]}/ocpp"
            async with background(nursery, "-m", "sim", "start-sim", "--chargers", "2",
                                  "--evses", "1", "--url", url, "--control", str(control)
                                  ) as fleet:
                with trio.fail_after(TIMEOUT):
                    await fleet.wait_line("stdout", "control socket")
                await until_connected(db, "CP_01", True)

                def sim_args(*args: str) -> tuple[str, ...]:
                    return ("-m", "sim", *args, "--control", str(control))

                down = await run(*sim_args("inject", "CP_01", "offline", "--for", "600"))
                assert down.returncode == 0, down.stderr
                assert "CP_01: network down for 600 s" in down.stdout.decode()
                await until_connected(db, "CP_01", False)  # the CSMS saw it go
                assert connected(await csms_status(db), "CP_02") is True

                slow = await run(*sim_args("inject", "CP_02", "slow-answers", "--delay",
                                           "never", "--actions", "Reset"))
                assert slow.returncode == 0, slow.stderr
                assert "CP_02: slow-answers" in slow.stdout.decode()
                more = await run(*sim_args("inject", "CP_02", "obey-fraction", "--factor", "2"))
                assert "SlowAnswers" in more.stdout.decode()  # behaviours add up
                assert "ObeyFraction" in more.stdout.decode()
                one_evse = await run(*sim_args("inject", "CP_01", "metered-only", "--measurands",
                                               "Energy.Active.Import.Register", "--evses", "1"))
                assert one_evse.returncode == 0, one_evse.stderr
                assert "OnEvses" in one_evse.stdout.decode()

                rebooted = await run(*sim_args("inject", "CP_02", "reboot",
                                               "--lose-transactions"))
                assert rebooted.returncode == 0, rebooted.stderr
                assert "CP_02: rebooting, its transactions forgotten" in rebooted.stdout.decode()

                refusals = {
                    ("CP_09", "ignore-profiles"): "no charger CP_09 (have CP_01..CP_02)",
                    ("CP_02", "obey-fraction", "--factor", "-1"):
                        "obey-fraction: factor must be a number >= 0",
                    ("CP_02", "offline"): "inject offline: --for SECONDS is required",
                    ("CP_02", "offline", "--for", "0"): "offline: for must be seconds > 0",
                    ("CP_02", "sulk"): "invalid choice: 'sulk'",
                    ("CP_02", "slow-answers", "--delay", "5", "--evses", "1"):
                        "answers are the charger's",
                }
                for args, expected in refusals.items():
                    refused = await run(*sim_args("inject", *args))
                    assert refused.returncode == 2, (args, refused.stderr)
                    assert expected in refused.stderr.decode(), (args, refused.stderr)
                    assert refused.stdout == b""

                cleared = await run(*sim_args("clear", "CP_01"))
                assert cleared.returncode == 0, cleared.stderr
                assert "CP_01: an ideal charger again, network up" in cleared.stdout.decode()
                await until_connected(db, "CP_01", True)  # back at its next attempt
                nobody = await run(*sim_args("clear", "CP_07"))
                assert nobody.returncode == 2
                assert "no charger CP_07" in nobody.stderr.decode()

                stop = await run(*sim_args("stop-sim"))
                assert stop.returncode == 0, stop.stderr
                with trio.fail_after(TIMEOUT):
                    await fleet.process.wait()
                assert fleet.process.returncode == 0, fleet.lines["stderr"]
                assert "Traceback" not in "\n".join(fleet.lines["stderr"])
            csms.process.terminate()
            with trio.fail_after(TIMEOUT):
                await csms.process.wait()
        nursery.cancel_scope.cancel()
