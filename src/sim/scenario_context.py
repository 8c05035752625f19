"""What a scenario script works with: the fleet, its parameters and seeded randomness,
the scenario clock, checks and notes, and the helpers the built-in scenarios share (a
workplace morning, a visit, a CSMS restart)."""

from __future__ import annotations

import datetime
import random
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from sim.ev import Ev

if TYPE_CHECKING:
    from sim.charge_point import SimChargePoint
    from sim.simulator_runner import EmbeddedCsms, Fleet


@attrs.define
class CheckTally:
    """How often one named check held, and what was observed each time it failed."""

    held: int = 0
    failures: list[str] = attrs.Factory(list)


def check_name(message: str) -> str:
    """The name of a check: the ``[tag]`` its message starts with, else ``checks``."""
    match = re.match(r"\[([^\]]+)\]", message)
    return match.group(1) if match else "checks"


@attrs.define
class ScenarioContext:
    """What a scenario script works with.

    Attributes:
        fleet: the chargers (``await ctx.fleet.spawn(20, evses=2)``).
        params: the scenario's parameters after command-line overrides.
        rng: the scenario's seeded randomness.
        site_limit_kw: the site limit the CSMS enforces, if known (None = none).
    """

    fleet: Fleet
    params: dict[str, Any]
    rng: random.Random
    start: datetime.datetime
    site_limit_kw: float | None = None
    failures: list[str] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
    #: Every check the run made, by name, in the order each name first came up.
    checks: dict[str, CheckTally] = attrs.Factory(dict)
    #: In-process runs: the site power as the CSMS received it (see report.site_power_seen).
    csms_view: dict[str, Any] | None = None
    #: In-process runs: the site power (W) the CSMS received, at each reading's arrival.
    csms_series: list[tuple[datetime.datetime, float]] | None = None
    #: The site's groups: chargers, limit (kW) and, in-process, ``csms_seen``.
    groups: dict[str, dict[str, Any]] = attrs.Factory(dict)
    #: In-process runs: each group's power (W) the CSMS received.
    csms_group_series: dict[str, list[tuple[datetime.datetime, float]]] = attrs.Factory(dict)
    #: Whether the run ends by comparing the CSMS's records with the chargers'.
    records_checked: bool = False
    #: In-process runs: the CSMS, which restart_csms can kill and start again.
    embedded: EmbeddedCsms | None = None

    async def restart_csms(self, down_s: float) -> bool:
        """Kill the CSMS and start a new one on the same database ``down_s`` later; False
        (with a note) against an external CSMS, which is not ours to restart."""
        if self.embedded is None:
            self.note("the CSMS was not restarted: an external CSMS is not ours to restart")
            return False
        await self.embedded.restart(down_s, self.fleet.wheel)
        return True

    def check_records(self) -> None:
        """At the end of the run, check the CSMS's records against the chargers' own
        (sim.records_check): every session closed with the charger's energy, nothing
        twice. In-process only; against an external CSMS a note says it was not done."""
        self.records_checked = True

    def morning(self, chargers: list[SimChargePoint], *, hours: float,
                arrivals_per_evse: float) -> int:
        """Schedule a workplace morning on ``chargers``' EVSEs: EVs arrive between 06:00
        and 10:00 (an hour into the run and after), stay 2 to 6 hours, and all leave at
        least 10 minutes before ``hours`` are up. Returns how many arrive."""
        evses = [(cp, n) for cp in chargers for n in cp.evses]
        arrivals = round(len(evses) * arrivals_per_evse)
        slots = self.rng.sample(evses, k=min(arrivals, len(evses)))
        for i, (cp, connector) in enumerate(slots):
            arrive = 3600 + self.rng.uniform(0, 4 * 3600)  # 06:00 to 10:00
            stay = self.rng.uniform(2 * 3600, 6 * 3600)
            arrive = min(arrive, max(hours * 3600 - 1200, 0))
            stay = max(min(stay, hours * 3600 - arrive - 600), 60)
            self.spawn_task(self.visit, cp, connector, arrive, stay, f"TAG-{i + 1:04d}")
        return len(slots)

    def check_sessions(self, chargers: list[SimChargePoint], arrivals: int) -> None:
        """``[sessions]``: every arrival got a session; ``[delivery]``: no transaction message
        is left undelivered or was given up."""
        started = sum(len(cp.sessions) for cp in chargers)
        self.check(started == arrivals, f"[sessions] {started} sessions for {arrivals} "
                   "arrivals")
        for cp in chargers:
            self.check(cp.queued == 0, f"[delivery] {cp.id}: {cp.queued} transaction "
                       "messages undelivered")
            self.check(cp.dropped == 0, f"[delivery] {cp.id}: {cp.dropped} transaction "
                       "messages given up")

    def check_energy(self, chargers: list[SimChargePoint]) -> None:
        """``[energy]``: every session the chargers ran delivered energy."""
        for cp in chargers:
            for session in cp.sessions:
                self.check(session.energy_wh > 0, f"[energy] {cp.id} {session.evse}: no "
                           "energy")

    async def visit(self, cp: SimChargePoint, connector: int, arrive: float, stay: float,
                    tag: str) -> None:
        """An EV from the mix arrives ``arrive`` seconds into the run, starts a session
        with ``tag``, stays ``stay`` seconds and leaves (checked: the session started)."""
        await self.sleep_until(arrive)
        await cp.plug_in(connector, self.ev())
        started = await cp.start_session(connector, tag)
        self.check(started, f"[sessions] {cp.id} EVSE_{connector}: the session did not start")
        await self.sleep(stay)
        await cp.unplug(connector)

    def now(self) -> datetime.datetime:
        """The scenario clock (virtual in-process, wall clock against an external CSMS)."""
        return self.fleet.clock()

    def elapsed(self) -> float:
        """Seconds since the scenario began."""
        return (self.now() - self.start).total_seconds()

    async def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of scenario time pass."""
        await self.fleet.wheel.sleep(seconds)

    async def sleep_until(self, offset_seconds: float) -> None:
        """Sleep until ``offset_seconds`` after the scenario began."""
        await self.fleet.wheel.sleep(offset_seconds - self.elapsed())

    def ev(self) -> Ev:
        """An EV drawn from the configured EV mix."""
        return self.fleet.config.draw_ev(self.rng)

    def check(self, condition: bool, message: str, *, name: str | None = None) -> None:
        """Record a check; a failed one fails the run (the scenario goes on; exit 1).

        ``name`` groups checks in the report and in JUnit (one testcase per name); by
        default it is the ``[tag]`` the message starts with (``[sessions] …``), else
        ``checks``. ``message`` says what was observed.
        """
        tally = self.checks.setdefault(name or check_name(message), CheckTally())
        if condition:
            tally.held += 1
        else:
            tally.failures.append(message)
            self.failures.append(message)

    def note(self, message: str) -> None:
        """Add a line to the report."""
        self.notes.append(message)

    def spawn_task(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` concurrently; the scenario waits for it before it ends."""
        self._tasks.start_soon(fn, *args)

    _tasks: trio.Nursery = attrs.field(init=False)
