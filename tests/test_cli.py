"""The command lines, as real subprocesses: ``python -m csms`` and ``python -m sim``.

Real time (another process is involved); every wait is under a ``fail_after`` watchdog,
and a process still running when a test ends is killed. Also, synchronously, how both
listeners' bind failures are told from crashes (``csms.oserrors.sole_os_error``).
"""

from __future__ import annotations

import json
import signal
import socket
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from csms.config import CsmsConfig
from csms.oserrors import sole_os_error
from process_helpers import STOP_TIMEOUT, CsmsProcess, csms_process, run_python

#: Real seconds a signalled process may take to exit once its clients have answered.
PROMPT_EXIT = 3.0


def csms_in(workdir: Path, *args: str) -> AbstractAsyncContextManager[CsmsProcess]:
    """``python -m csms ARGS`` in ``workdir``, its database there too."""
    # --api-port 0: the operator API's default port 8180 may be taken on this machine.
    return csms_process("--db", str(workdir / "csms.db"), "--api-port", "0", *args, cwd=workdir)


@pytest.mark.parametrize("module", ["csms", "sim"])
async def test_help_exits_0(tmp_path: Path, module: str) -> None:
    result = await run_python("-m", module, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {module}".encode())


async def test_csms_help_names_every_option(tmp_path: Path) -> None:
    out = (await run_python("-m", "csms", "--help", cwd=tmp_path)).stdout.decode()
    for option in (
        "--host",
        "--port",
        "--path-prefix",
        "--max-frame-size",
        "--heartbeat-interval",
        "--call-timeout",
        "--log-level",
    ):
        assert option in out


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "-1"],
        ["--port", "nine"],
        ["--max-frame-size", "0"],
        ["--heartbeat-interval", "-5"],
        ["--log-level", "LOUD"],
        ["--no-such-option"],
        ["--ping-interval", "-1"],
        ["--ping-timeout", "0"],
        ["--ping-interval", "nan"],
        ["--call-timeout", "-1"],
        ["--call-timeout", "0"],
        ["--call-timeout", "nan"],
    ],
    ids=[
        "negative-port",
        "port-not-int",
        "zero-frame-size",
        "negative-interval",
        "bad-level",
        "unknown",
        "negative-ping-interval",
        "zero-ping-timeout",
        "nan-ping-interval",
        "negative-call-timeout",
        "zero-call-timeout",
        "nan-call-timeout",
    ],
)
async def test_a_bad_argument_exits_2_with_usage(tmp_path: Path, args: list[str]) -> None:
    result = await run_python("-m", "csms", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert b"usage: python -m csms" in result.stderr


async def test_a_port_in_use_exits_3_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await run_python(
            "-m", "csms", "--port", str(port), "--api-port", "0", cwd=tmp_path
        )
    log = result.stderr.decode()
    assert result.returncode == 3, log
    assert f"cannot serve on 127.0.0.1:{port}" in log
    assert "Traceback" not in log


async def test_an_api_port_in_use_exits_3_naming_the_operator_api(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await run_python(
            "-m", "csms", "--port", "0", "--api-port", str(port), cwd=tmp_path
        )
    log = result.stderr.decode()
    assert result.returncode == 3, log
    assert f"operator API on 127.0.0.1:{port}" in log
    assert "Traceback" not in log


def _group(*leaves: BaseException) -> BaseExceptionGroup[BaseException]:
    return BaseExceptionGroup("nursery", list(leaves))


@pytest.mark.parametrize(
    ("raised", "sole"),
    [
        (OSError(98, "in use"), True),
        (_group(OSError(98, "in use")), True),
        (_group(_group(_group(OSError(98, "in use")))), True),  # one group per nursery
        (_group(OSError(98, "in use"), OSError(99, "not available")), False),
        (_group(_group(OSError(98, "in use")), ValueError()), False),
        (_group(ValueError()), False),
        (ValueError(), False),
    ],
    ids=["bare", "wrapped", "nested", "two-errors", "with-another", "not-oserror", "bare-other"],
)
def test_sole_os_error_finds_a_bind_failure_only_when_it_is_the_only_leaf(
    raised: BaseException, sole: bool
) -> None:
    error = sole_os_error(raised)
    if sole:
        assert isinstance(error, OSError)
        assert error.errno == 98
    else:
        assert error is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_closes_every_client_with_1001_and_exits_0(
    tmp_path: Path,
    signum: signal.Signals,
) -> None:
    async with csms_in(tmp_path, "--port", "0", "--heartbeat-interval", "42") as child:
        assert child.path == "/ocpp/{chargePointId}"
        assert child.port > 0
        url = f"ws://127.0.0.1:{child.port}/ocpp/CLI-CP"
        with trio.fail_after(STOP_TIMEOUT):
            async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
                assert ws.subprotocol == "ocpp1.6"
                boot = {"chargePointVendor": "Acme", "chargePointModel": "X"}
                await ws.send_message(json.dumps([2, "1", "BootNotification", boot]))
                reply = json.loads(await ws.get_message())
                # The command line's options reached the running service.
                assert reply[:2] == [3, "1"]
                assert reply[2]["interval"] == 42
                child.process.send_signal(signum)
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert closed.value.reason is not None
                assert closed.value.reason.code == 1001, child.log
        # Well under the default close_timeout (5 s): a client that answered the closing
        # handshake must not make the process wait that timeout out.
        with trio.fail_after(PROMPT_EXIT):
            assert await child.wait() == 0, child.log
        assert f"{signum.name} received" in child.log
        assert "Traceback" not in child.log


async def test_a_signal_with_no_client_connected_exits_0_promptly(tmp_path: Path) -> None:
    async with csms_in(tmp_path, "--port", "0") as child:
        with trio.fail_after(STOP_TIMEOUT):
            child.process.send_signal(signal.SIGTERM)
            assert await child.wait() == 0, child.log


async def test_the_path_prefix_option_is_normalised_and_used(tmp_path: Path) -> None:
    async with csms_in(tmp_path, "--port", "0", "--path-prefix", "stations") as child:
        assert child.path == "/stations/{chargePointId}"
        with trio.fail_after(STOP_TIMEOUT):
            url = f"ws://127.0.0.1:{child.port}/stations/CP-P"
            async with open_websocket_url(url, subprotocols=["ocpp1.6"]) as ws:
                await ws.send_message('[2, "1", "Heartbeat", {}]')
                assert json.loads(await ws.get_message())[:2] == [3, "1"]
            child.process.send_signal(signal.SIGTERM)
            assert await child.wait() == 0, child.log


async def test_python_m_csms_answers_unknown_id_tags_invalid_unless_told(tmp_path: Path) -> None:
    """The CLI's default refuses an unknown card; --unknown-id-tags accept (development)
    and --id-tag lists change that. The library default stays permissive."""
    for extra, unknown, listed in (
        ((), "Invalid", "Accepted"),
        (("--unknown-id-tags", "accept"), "Accepted", "Accepted"),
    ):
        workdir = tmp_path / (extra[-1] if extra else "default")
        workdir.mkdir()
        async with csms_in(workdir, "--id-tag", "KNOWN=Accepted", *extra) as child:
            with trio.fail_after(20):
                async with open_websocket_url(
                    f"ws://127.0.0.1:{child.port}/ocpp/CP_T", subprotocols=["ocpp1.6"]
                ) as ws:
                    answers = []
                    for n, tag in enumerate(("STRANGER", "KNOWN")):
                        await ws.send_message(json.dumps(
                            [2, str(n), "Authorize", {"idTag": tag}]))
                        answers.append(json.loads(await ws.get_message())[2]["idTagInfo"])
            assert answers == [{"status": unknown}, {"status": listed}], extra
            await child.stop(signal.SIGTERM)
    assert CsmsConfig().unknown_id_tags == "Accepted"
