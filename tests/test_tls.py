"""Security profiles 2 and 3 over real TLS: a throwaway CA and certificates made with
``trustme``, the CSMS serving ``wss://``, and an independent client (the ``ocpp``
package's ChargePoint over ``websockets``, in its own process: :mod:`ocpp_peer`) with
right and wrong credentials.

Real loopback sockets and HTTP, a real SQLite file; real time (see ``api_helpers``).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from api_helpers import api, online_sim, running_csms, utc_now, wait_until
from sim.config import parse_config
from sim.simulator_runner import Fleet, ScenarioError

PASSWORD = "0123456789abcdef-secret"


class Pki:
    """A CA, the server's certificate for 127.0.0.1, and client certificates, on disk."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = trustme.CA()
        self.ca_pem = self._write("ca.pem", self.ca.cert_pem.bytes())
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.server_cert = self._write("server.pem", b"".join(
            blob.bytes() for blob in server.cert_chain_pems))
        self.server_key = self._write("server.key", server.private_key_pem.bytes())

    def _write(self, name: str, data: bytes) -> str:
        path = self.dir / name
        path.write_bytes(data)
        return str(path)

    def client_cert(self, cp_id: str, ca: trustme.CA | None = None) -> str:
        """A PEM file with a client certificate (and its key) whose commonName is
        ``cp_id``, issued by ``ca`` (default: ours)."""
        # The subject alternative name must be a host name; the id is in the subject.
        leaf = (ca or self.ca).issue_cert("charger.example", common_name=cp_id)
        return self._write(f"client-{cp_id}-{id(leaf)}.pem",
                           leaf.private_key_and_cert_chain_pem.bytes())

    def csms_config(self, **extra: Any) -> dict[str, Any]:
        return {"tls_cert": self.server_cert, "tls_key": self.server_key,
                "tls_client_ca": self.ca_pem, **extra}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def peer_boot(port: int, cp_id: str, pki: Pki, *, tls: bool = True,
                    password: str | None = None, cert: str | None = None,
                    trust: bool = True) -> Any:
    """An independent charge point (:mod:`ocpp_peer`, its own process) boots over
    ``wss://`` (``ws://`` without ``tls``): {"boot": status}, {"http": status} when the
    handshake is refused, or {"error": name} when TLS or WebSocket failed."""
    scheme = "wss" if tls else "ws"
    argv = [sys.executable, str(Path(__file__).parent / "ocpp_peer.py"),
            f"{scheme}://127.0.0.1:{port}/ocpp/{cp_id}", cp_id]
    if password is not None:
        argv += ["--password", password]
    if trust:
        argv += ["--cafile", pki.ca_pem]
    if cert is not None:
        argv += ["--cert", cert]
    with trio.fail_after(30):
        result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True,
                                        check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def accepted(answer: Any) -> bool:
    return bool(answer == {"boot": "Accepted"})


async def test_profile_2_tls_and_basic_with_an_independent_client(
    tmp_path: Path, pki: Pki
) -> None:
    with trio.fail_after(60):
        async with running_csms(tmp_path / "csms.db", security_profile=2,
                                **pki.csms_config()) as (csms, port):
            await api(csms, "PUT", "/api/registrations/CP_02", {"password": PASSWORD})
            assert accepted(await peer_boot(port, "CP_02", pki, password=PASSWORD))
            wrong = await peer_boot(port, "CP_02", pki, password="wrong-password-0000")
            assert wrong == {"http": 401}
            assert await peer_boot(port, "CP_02", pki) == {"http": 401}
            # Plain WebSocket to the TLS port: no handshake at all.
            assert "error" in await peer_boot(port, "CP_02", pki, tls=False, password=PASSWORD)
            # A client that does not trust our CA gives up in the TLS handshake.
            untrusting = await peer_boot(port, "CP_02", pki, password=PASSWORD, trust=False)
            assert untrusting == {"error": "SSLCertVerificationError"}
            assert csms.connections.connected == []


async def test_profile_3_client_certificates_with_an_independent_client(
    tmp_path: Path, pki: Pki
) -> None:
    with trio.fail_after(60):
        async with running_csms(tmp_path / "csms.db", security_profile=3,
                                **pki.csms_config()) as (_csms, port):
            own = pki.client_cert("CP_03")
            assert accepted(await peer_boot(port, "CP_03", pki, cert=own))
            # Another charger's certificate, or none: refused after the TLS handshake.
            other = pki.client_cert("CP_04")
            assert await peer_boot(port, "CP_03", pki, cert=other) == {"http": 403}
            assert await peer_boot(port, "CP_03", pki) == {"http": 403}
            # A certificate from another CA fails the TLS handshake itself.
            rogue = pki.client_cert("CP_03", ca=trustme.CA())
            assert "error" in await peer_boot(port, "CP_03", pki, cert=rogue)
            # The CSMS is still serving the good one.
            assert accepted(await peer_boot(port, "CP_03", pki, cert=own))


async def test_per_charger_profiles_on_one_tls_server(tmp_path: Path, pki: Pki) -> None:
    """A charger never connects with less than its own profile, whatever the default."""
    with trio.fail_after(60):
        async with running_csms(tmp_path / "csms.db", security_profile=1,
                                **pki.csms_config()) as (csms, port):
            for cp_id, profile in (("CP_1", 1), ("CP_3", 3)):
                await api(csms, "PUT", f"/api/registrations/{cp_id}",
                          {"password": PASSWORD, "securityProfile": profile})
            # Profile 1 over TLS is fine (more than asked).
            assert accepted(await peer_boot(port, "CP_1", pki, password=PASSWORD))
            # Profile 3 with only a password: refused.
            assert await peer_boot(port, "CP_3", pki, password=PASSWORD) == {"http": 403}
            assert accepted(await peer_boot(port, "CP_3", pki, cert=pki.client_cert("CP_3")))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--security-profile", "2"], b"--security-profile 2 needs --tls-cert"),
        (["--tls-cert", "x.pem"], b"--tls-cert and --tls-key go together"),
        (["--tls-cert", "x.pem", "--tls-key", "x.key"], b"--tls-cert x.pem"),
        (["--security-profile", "3", "--tls-cert", "{cert}", "--tls-key", "{key}"],
         b"needs --tls-client-ca"),
    ],
)
async def test_bad_tls_options_exit_2_with_the_reason(
    tmp_path: Path, pki: Pki, args: list[str], message: bytes
) -> None:
    argv = [a.format(cert=pki.server_cert, key=pki.server_key) for a in args]
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-m", "csms", "--port", "0", "--no-api", *argv],
            cwd=tmp_path, capture_stdout=True, capture_stderr=True, check=False,
        )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


async def test_the_simulator_connects_with_profiles_2_and_3(tmp_path: Path, pki: Pki) -> None:
    with trio.fail_after(60):
        async with running_csms(tmp_path / "csms.db", security_profile=2,
                                unknown_chargers="reject", **pki.csms_config()) as (csms, port):
            url = f"wss://127.0.0.1:{port}/ocpp"
            await api(csms, "PUT", "/api/registrations/CP_02", {"password": PASSWORD})
            await api(csms, "PUT", "/api/registrations/CP_03", {"securityProfile": 3})
            async with (
                online_sim(csms, port, "CP_02", url=url, tls_ca=pki.ca_pem, password=PASSWORD),
                online_sim(csms, port, "CP_03", url=url, tls_ca=pki.ca_pem,
                           tls_cert=pki.client_cert("CP_03")),
            ):
                assert sorted(csms.connections.connected) == ["CP_02", "CP_03"]


async def test_a_fleet_from_its_configuration_connects_with_profile_2(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.yaml's ``security`` section: a shared key from the environment, the CA."""
    monkeypatch.setenv("BENCH_KEY", PASSWORD)
    config = parse_config({"security": {"password_env": "BENCH_KEY", "ca_file": pki.ca_pem}})
    with trio.fail_after(60):
        async with running_csms(tmp_path / "csms.db", security_profile=2,
                                unknown_chargers="reject", **pki.csms_config()) as (csms, port):
            for cp_id in ("CP_01", "CP_02"):
                await api(csms, "PUT", f"/api/registrations/{cp_id}", {"password": PASSWORD})
            async with trio.open_nursery() as nursery:
                fleet = Fleet(f"wss://127.0.0.1:{port}/ocpp", config, clock=utc_now,
                              rng=random.Random(1), nursery=nursery)
                await fleet.spawn(2)
                await wait_until(lambda: sorted(csms.connections.connected) == [
                    "CP_01", "CP_02"])
                nursery.cancel_scope.cancel()
    monkeypatch.delenv("BENCH_KEY")
    with pytest.raises(ExceptionGroup) as failed:
        async with trio.open_nursery() as nursery:
            fleet = Fleet("wss://127.0.0.1:1/ocpp", config, clock=utc_now,
                          rng=random.Random(1), nursery=nursery)
            try:
                await fleet.spawn(1)
            finally:
                nursery.cancel_scope.cancel()
    assert failed.group_contains(ScenarioError, match="BENCH_KEY is not set")
