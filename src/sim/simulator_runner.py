"""Run a fleet of simulated charge points, and scenarios against a CSMS.

Two clocks:

* **real time** against an external CSMS (``url`` given): the fleet connects to it;
* **virtual time** (no ``url``, the embedded default): the CSMS is started inside the same
  trio process on an ephemeral loopback port with a temporary SQLite file, and everyone
  talks over real WebSockets on trio's :class:`~trio.testing.MockClock`. A clock driver
  jumps virtual time only when every task is blocked *and* the CSMS's store has nothing
  on its database thread: a commit in flight looks "blocked" to trio, and jumping then
  would make time pass mid-commit. With trio's scheduler seeded from the scenario seed,
  the same seed gives the same report, byte for byte.
"""

from __future__ import annotations

import datetime
import importlib.util
import inspect
import logging
import os
import random
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import trio
import trio.lowlevel
import trio.socket
import trio.testing

from csms.app import Csms
from csms.config import CsmsConfig
from csms.smart.site import SiteConfig
from csms.storage.sqlite import SqliteStore
from sim import site_view
from sim.charge_point import ChargePointConfig, SimChargePoint
from sim.config import SimConfig
from sim.loopback import LoopbackSockets
from sim.report import ScenarioReport, build_report
from sim.scenario_context import ScenarioContext
from sim.timeline import EvseSample, Timeline, activity
from sim.uplink import LazyRandom
from sim.wheel import Wheel

# Scenarios import their context from here, as they always have.
__all__ = ["VIRTUAL_EPOCH", "EmbeddedCsms", "Fleet", "ScenarioContext", "ScenarioError",
           "ScenarioFailed", "drive_virtual_clock", "find_scenario", "load_scenario",
           "run_scenario"]

log = logging.getLogger("sim.runner")

#: The virtual day starts here (a Monday, 05:00 UTC) unless a scenario says otherwise.
VIRTUAL_EPOCH = datetime.datetime(2026, 1, 5, 5, 0, tzinfo=datetime.UTC)

#: Where a scenario name is looked up: ``scenarios/`` of the working directory, then the
#: built-in ones shipped in the package (a symlink to the project's top-level
#: ``scenarios/``, their source).
SCENARIO_DIRS = (Path.cwd() / "scenarios", Path(__file__).resolve().parent / "scenarios")


class ScenarioError(Exception):
    """A scenario cannot be found or loaded."""


class ScenarioFailed(AssertionError):
    """One or more of the scenario's checks failed."""


def find_scenario(name: str) -> Path:
    """The file of scenario ``name`` (a name in ``scenarios/`` or a path to a .py file)."""
    candidate = Path(name)
    if candidate.suffix == ".py" and candidate.is_file():
        return candidate
    for directory in SCENARIO_DIRS:
        path = directory / f"{name}.py"
        if path.is_file():
            return path
    known = sorted({p.stem for d in SCENARIO_DIRS if d.is_dir() for p in d.glob("*.py")
                    if not p.stem.startswith("_")})
    raise ScenarioError(f"no scenario {name!r} (known: {', '.join(known) or 'none'})")


def load_scenario(name: str) -> ModuleType:
    """Import a scenario module; it must define ``async def scenario(ctx)``."""
    path = find_scenario(name)
    spec = importlib.util.spec_from_file_location(f"scenarios.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not inspect.iscoroutinefunction(getattr(module, "scenario", None)):
        raise ScenarioError(f"{path}: no `async def scenario(ctx)`")
    return module


def charger_id(number: int) -> str:
    """The id of the fleet's charger ``number``: ``CP_01``, ``CP_02`` … ``CP_100`` …"""
    return f"CP_{number:02d}"


class Fleet:
    """Simulated charge points supervised in one nursery."""

    def __init__(self, url: str, config: SimConfig, *, clock: Callable[[], datetime.datetime],
                 rng: random.Random, nursery: trio.Nursery, wheel: Wheel | None = None,
                 record: bool = True, first_number: int = 1) -> None:
        self.url = url
        #: The number of the first charger spawned (``CP_01`` unless a shard of a fleet).
        self.first_number = first_number
        #: Every timer of the fleet, its chargers and its scenario (see sim.wheel).
        self.wheel = wheel if wheel is not None else Wheel()
        self.config = config
        self.clock = clock
        self.rng = rng
        self._nursery = nursery
        self.chargers: dict[str, SimChargePoint] = {}
        #: Site power and every EVSE, sampled every meter interval (``record``; a fleet
        #: that runs until stopped, ``start-sim``, keeps none).
        self.timeline = Timeline()
        self.record = record
        if record:
            nursery.start_soon(self._sample)

    async def _sample(self) -> None:
        # Halfway between meter ticks, when no charger is changing its power, so that the
        # samples do not depend on which task runs first at a tick.
        await self.wheel.sleep(self.config.meter_interval / 2)
        while True:
            await self.wheel.sleep(self.config.meter_interval)
            self.timeline.record(self.clock(), [
                EvseSample(f"{cp.id} EVSE_{n}", evse.max_power_w / 1000, evse.power_w,
                           evse.limit_w if evse.transaction is not None else None,
                           activity(evse.fsm.state, online=cp.online))
                for cp in self for n, evse in cp.evses.items()], open_sessions=sum(
                    1 for cp in self for evse in cp.evses.values()
                    if evse.transaction is not None))

    def peak_site_power(self) -> tuple[float, datetime.datetime | None]:
        """The highest sampled site power (kW) and when."""
        return self.timeline.peak()

    def _credentials(self, cp_id: str) -> tuple[str | None, str | None]:
        """The charger's password and client certificate file (``security``)."""
        security = self.config.security
        password = None
        if security.password_env is not None:
            password = os.environ.get(security.password_env) or None
            if password is None:
                raise ScenarioError(f"security.password_env: ${security.password_env} is not set")
        cert = None
        if security.client_cert_dir is not None:
            cert = str(Path(security.client_cert_dir) / f"{cp_id}.pem")
        return password, cert

    async def spawn(self, count: int, *, evses: int | None = None,
                    template: str | None = None) -> list[SimChargePoint]:
        """Start ``count`` more chargers named ``CP_01``, ``CP_02`` … (from
        ``first_number``); returns them."""
        tpl = self.config.template(template)
        spawned = []
        for _ in range(count):
            cp_id = charger_id(self.first_number + len(self.chargers))
            password, cert = self._credentials(cp_id)
            cp = SimChargePoint(
                ChargePointConfig(
                    id=cp_id, url=self.url, vendor=tpl.vendor, model=tpl.model,
                    evses=evses or tpl.evses, max_power_w=tpl.max_power_kw * 1000,
                    phases=tpl.phases, meter_interval=self.config.meter_interval,
                    heartbeat_interval=self.config.heartbeat_interval,
                    rate_units=tpl.rate_units, max_stack_level=tpl.max_stack_level,
                    max_periods=tpl.max_periods, tx_profiles=tpl.tx_profiles,
                    clock_skew_s=tpl.clock_skew_s,
                    password=password, tls_ca=self.config.security.ca_file, tls_cert=cert,
                ),
                clock=self.clock,
                rng=LazyRandom(self.rng.random()),
                behaviour=tpl.behaviour(),
                incidents=tpl.scheduled_incidents(),
                wheel=self.wheel,
                record=self.record,
            )
            self.chargers[cp_id] = cp
            await self._nursery.start(cp.run)
            spawned.append(cp)
        return spawned

    def __iter__(self) -> Iterator[SimChargePoint]:
        return iter(self.chargers.values())

    def get(self, charger_id: str) -> SimChargePoint:
        """The charger named ``charger_id``.

        Raises:
            KeyError: no such charger.
        """
        try:
            return self.chargers[charger_id]
        except KeyError:
            raise KeyError(f"no charger {charger_id}") from None

    async def stop(self) -> None:
        """Stop every transaction, deliver the queues, close every socket."""
        async with trio.open_nursery() as nursery:
            for cp in self:
                nursery.start_soon(cp.stop)


async def drive_virtual_clock(
    clock: trio.testing.MockClock,
    wait_idle: Callable[[], Awaitable[bool]],
    wheel: Wheel | None = None,
) -> None:
    """Jump ``clock`` to the next deadline when every task is blocked and the store is idle.

    ``wait_idle()`` returns False at once when the store is idle; otherwise it waits (in
    real time: the work is on a thread) until it is, and returns True. The ``wheel``'s
    sleepers due now are woken first, all together, in the order they slept.
    """
    while True:
        await trio.testing.wait_all_tasks_blocked()
        if await wait_idle():
            continue
        if wheel is not None and wheel.fire_due():
            continue
        delay = trio.lowlevel.current_statistics().seconds_to_next_deadline
        if wheel is not None:
            delay = min(delay, wheel.next_deadline() - trio.current_time())
        if delay == float("inf"):
            await trio.lowlevel.checkpoint()
            continue
        clock.jump(delay)


async def run_scenario(
    module: ModuleType,
    config: SimConfig,
    params: dict[str, Any],
    *,
    url: str | None,
    clock: trio.testing.MockClock | None,
    site_limit_kw: float | None = None,
    on_start: Callable[[Fleet, datetime.datetime], None] | None = None,
) -> ScenarioReport:
    """Run one scenario: in-process with ``clock`` (virtual), or against ``url``.

    ``site_limit_kw``: the CSMS's site limit; by default the one the parameters give
    (``site_limit_kw``, or ``site_limit_kw_per_evse`` times the EVSEs). ``on_start(fleet,
    start)`` is called once the fleet exists, before the scenario runs (the progress
    display watches it from another thread).
    """
    rng = random.Random(config.seed)
    site = site_view.scenario_site(module, params, site_limit_kw)
    if url is None:
        assert clock is not None
        return await _run_in_process(module, config, params, rng, clock, site, on_start)
    return await _run(module, config, params, rng, url, _wall_clock, site,
                      on_start=on_start)


def _wall_clock() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def _run_in_process(module: ModuleType, config: SimConfig, params: dict[str, Any],
                          rng: random.Random, clock: trio.testing.MockClock,
                          site: SiteConfig,
                          on_start: Callable[[Fleet, datetime.datetime], None] | None,
                          ) -> ScenarioReport:
    t0 = trio.current_time()
    epoch = VIRTUAL_EPOCH
    # Both ends of every connection are in this process: make loopback delivery look
    # synchronous, so that a busy machine cannot reorder one virtual instant; and order
    # the simulator's timers that fall due together (see sim.wheel).
    trio.socket.set_custom_socket_factory(LoopbackSockets())
    wheel = Wheel(virtual=True)

    def virtual_now() -> datetime.datetime:
        return epoch + datetime.timedelta(seconds=trio.current_time() - t0)

    with tempfile.TemporaryDirectory(prefix="sim-csms-") as tmp:
        # A temporary database: durability against power loss buys nothing here. SQLite
        # runs inline: no worker thread's wall-clock timing decides what happens first.
        embedded = EmbeddedCsms(
            CsmsConfig(port=0, db_path=str(Path(tmp) / "csms.db"), synchronous="OFF",
                       db_inline=True, heartbeat_interval=config.heartbeat_interval,
                       site=site),
            virtual_now,
        )

        async def observe(ctx: ScenarioContext) -> None:
            await site_view.observe(ctx, embedded.csms.store, site)

        async with trio.open_nursery() as nursery:
            port = await embedded.start(nursery)
            nursery.start_soon(drive_virtual_clock, clock,
                               lambda: _wait_store_idle(embedded.csms), wheel)
            report = await _run(module, config, params, rng, f"ws://127.0.0.1:{port}/ocpp",
                                virtual_now, site, observe, wheel, embedded, on_start)
            await embedded.csms.shutdown()
            nursery.cancel_scope.cancel()
    return report


class EmbeddedCsms:
    """The in-process CSMS of a virtual-time run, which a scenario can kill and restart
    on the same port and database (``ctx.restart_csms``)."""

    def __init__(self, config: CsmsConfig, clock: Callable[[], datetime.datetime]) -> None:
        self._config = config
        self._clock = clock
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
        self.csms = Csms(config, clock=clock)

    async def start(self, nursery: trio.Nursery) -> int:
        """Serve (in ``nursery``); the port."""
        self._nursery = nursery
        port: int = await nursery.start(self._serve, self.csms)
        self._config = attrs.evolve(self._config, port=port)
        return port

    async def _serve(self, csms: Csms, task_status: trio.TaskStatus[int]) -> None:
        self._scope, self._stopped = trio.CancelScope(), trio.Event()
        try:
            with self._scope:
                await csms.serve(task_status=task_status)
        finally:
            self._stopped.set()

    async def restart(self, down_s: float, wheel: Wheel) -> None:
        """Kill the CSMS (its connections drop without closing handshakes; what it
        acknowledged is committed), wait ``down_s``, start a new one on the same port and
        database."""
        assert self._nursery is not None
        self._scope.cancel()
        await self._stopped.wait()
        await wheel.sleep(down_s)
        self.csms = Csms(self._config, clock=self._clock)
        await self._nursery.start(self._serve, self.csms)


async def _wait_store_idle(csms: Csms) -> bool:
    store = csms.store
    if not isinstance(store, SqliteStore) or not store.busy:
        return False
    await store.wait_idle()
    return True


async def _run(module: ModuleType, config: SimConfig, params: dict[str, Any],
               rng: random.Random, url: str, clock: Callable[[], datetime.datetime],
               site: SiteConfig,
               observe: Callable[[ScenarioContext], Awaitable[None]] | None = None,
               wheel: Wheel | None = None, embedded: EmbeddedCsms | None = None,
               on_start: Callable[[Fleet, datetime.datetime], None] | None = None,
               ) -> ScenarioReport:
    async with trio.open_nursery() as nursery:
        fleet = Fleet(url, config, clock=clock, rng=random.Random(rng.random()), nursery=nursery,
                      wheel=wheel)
        ctx = ScenarioContext(fleet, params, random.Random(rng.random()), clock(),
                              site_limit_kw=site_view.limit_kw(site), embedded=embedded,
                              groups=site_view.groups_of(site))
        if on_start is not None:
            on_start(fleet, ctx.start)
        async with trio.open_nursery() as tasks:
            ctx._tasks = tasks
            await module.scenario(ctx)
        await fleet.stop()
        if observe is not None:
            await observe(ctx)
        elif ctx.records_checked:
            ctx.note("the CSMS's records were not checked: an external CSMS's are not ours "
                     "to read")
        nursery.cancel_scope.cancel()
    name = module.__name__.rsplit(".", 1)[-1]
    return build_report(name, config.seed, params, fleet, ctx)
