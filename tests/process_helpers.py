"""Helpers for the tests that run ``python -m csms`` as a real subprocess.

Real time (another process is involved): every wait is under a ``fail_after`` watchdog,
and a process still running when its ``csms_process`` block ends is killed.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

#: Real seconds a CSMS process may take to start (imports included), or a tool to run.
STARTUP_TIMEOUT = 20.0
#: Real seconds a CSMS process may take to stop.
STOP_TIMEOUT = 10.0

LISTENING = re.compile(r"listening on ws://(?P<host>[^:/\s]+):(?P<port>\d+)(?P<path>/\S*)")


@attrs.define(eq=False)
class CsmsProcess:
    """A ``python -m csms`` child, its stderr collected as it comes."""

    process: trio.Process
    stderr: bytearray = attrs.Factory(bytearray)
    #: Set once the process has logged where it listens, or has closed its stderr.
    settled: trio.Event = attrs.Factory(trio.Event)
    #: Set once stderr has closed: every line the process logged is in ``stderr``.
    stderr_closed: trio.Event = attrs.Factory(trio.Event)
    port: int = 0
    #: The OCPP path it logged, ``/ocpp/{chargePointId}`` by default.
    path: str = ""

    @property
    def log(self) -> str:
        return self.stderr.decode(errors="replace")

    async def wait(self) -> int:
        """The exit code, once the process has exited and its stderr is all read."""
        code = await self.process.wait()
        await self.stderr_closed.wait()
        return code

    async def stop(self, signum: signal.Signals) -> int:
        """Send ``signum``; the exit code, within ``STOP_TIMEOUT``."""
        self.process.send_signal(signum)
        with trio.fail_after(STOP_TIMEOUT):
            return await self.process.wait()


async def _collect_stderr(child: CsmsProcess) -> None:
    assert child.process.stderr is not None
    async for chunk in child.process.stderr:
        child.stderr += chunk
        if not child.port and (found := LISTENING.search(child.log)):
            child.port = int(found["port"])
            child.path = found["path"]
            child.settled.set()
    child.settled.set()
    child.stderr_closed.set()


@asynccontextmanager
async def csms_process(*args: str, cwd: Path | None = None) -> AsyncIterator[CsmsProcess]:
    """Start ``python -m csms ARGS`` (in ``cwd`` if given); wait until it logs where it
    listens. The process is killed on exit if it is still running."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "csms", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    child = CsmsProcess(process)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect_stderr, child)
        try:
            with trio.fail_after(STARTUP_TIMEOUT):
                await child.settled.wait()
            assert child.port, f"not listening; exit code {process.poll()}:\n{child.log}"
            yield child
        finally:
            # Also ends the stderr reader (EOF), so that the nursery can close.
            if process.returncode is None:
                process.kill()
            with trio.move_on_after(5) as cleanup:
                cleanup.shield = True
                await process.wait()


async def run_python(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``python ARGS`` (in ``cwd`` if given) to completion, its output captured."""
    with trio.fail_after(STARTUP_TIMEOUT):
        return await trio.run_process(
            [sys.executable, *args],
            cwd=cwd,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


API_ON = re.compile(r"operator API on (?P<url>http://[^\s/]+)/api/")


async def api_url_of(child: CsmsProcess) -> str:
    """The operator API's base URL, from the line the process logs once it serves it."""
    with trio.fail_after(STARTUP_TIMEOUT):
        # Polls the log: the process tells nothing else (and the line may follow the
        # OCPP one the start-up waited for).
        while not (found := API_ON.search(child.log)):  # noqa: ASYNC110
            await trio.sleep(0.01)
    return found["url"]
