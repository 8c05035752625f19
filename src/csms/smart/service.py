"""The smart-charging service: the rebalancing tick (the senders are in
:mod:`csms.smart.sender`).

* The **tick** is one task in the CSMS's nursery, aligned to the clock (every
  ``rebalance_interval_s``, on the boundary). It also runs at once, between ticks, when a
  session starts or ends or an EVSE faults: the handlers ask for it after their answer
  has gone out, so a new session's profile never delays its StartTransaction answer, and
  always follows it (a TxProfile needs the transactionId the answer carries).
* Each rebalance computes the allocation (pure), turns changed limits into TxProfiles
  (pure) and hands them to each charger's **sender**: a task beside the charger's own
  session, under its connection. The tick never waits for a sender: a slow or dead
  charger delays nobody else.
* A charger that refuses a session's TxProfile (Rejected, NotSupported, a CALLERROR) is
  sent the limit in the forms :func:`~csms.smart.profiles.fallbacks` lists (the other
  unit, then a TxDefaultProfile on the connector); the one it accepts is used for the rest
  of the session. A charger that refuses them all, or does not answer in time, is treated
  as uncontrolled: the most it may be enforcing counts as fixed load, and it is tried
  again after a backoff. Every answer is recorded in the domain (and so in the message
  log and replay).
* The budget counts each session at the most its charger may be enforcing
  (:mod:`csms.smart.in_force`): decreases go out first, increases once they fit. The
  ledger starts from the domain (:meth:`SmartCharging.resume`): the limit each open
  session's charger accepted, and those sent and never answered, as recorded.
* After a charger boots, and on the first message of a connection that did not start
  with a boot, its sender first asks it what profiles it takes (GetConfiguration of
  :data:`~csms.smart.capabilities.CAPABILITY_KEYS`); its profiles are then built in the
  unit and within the stack level it reported. The answer is recorded like any other, so
  a restarted CSMS and replay know it too. Then it installs the safety nets
  (:meth:`~csms.smart.sender.Senders.safety_profiles`): what the charger enforces on its
  own before a session's TxProfile arrives, and while the CSMS cannot reach it.
"""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Callable

import attrs
import trio

from csms.domain import events as ev
from csms.domain.compliance import overdraws
from csms.domain.meter import phases_drawn
from csms.domain.model import Session
from csms.domain.state import DomainState
from csms.ocpp.connection_manager import ConnectionManager
from csms.recorder import Recorder
from csms.smart.allocator import Demand, EvseKey, Scope, allocate
from csms.smart.capabilities import Capabilities
from csms.smart.in_force import EPSILON_W, Ledger, admit
from csms.smart.profiles import CONNECTOR_DEFAULT_ID_BASE, STACK_LEVEL, Form, enforced_w
from csms.smart.sender import Senders, Wanted
from csms.smart.site import GRID_PHASES, SiteConfig
from ocppj.charging import min_power_w

log = logging.getLogger("csms.smart")

#: Events after which the allocation is recomputed at once.
_TRIGGERS = (ev.SessionStarted, ev.SessionStopped, ev.SessionSuperseded,
             ev.SessionOrphaned, ev.ConnectorStatusChanged)

#: Seconds before a session whose profile failed (refused in every form, or no answer)
#: is tried again; doubled after each failure, up to :data:`RETRY_MAX_S`.
RETRY_FIRST_S = 60.0
RETRY_MAX_S = 900.0


@attrs.define
class _Retry:
    transaction_id: int
    failures: int
    #: trio time of the next try.
    at: float
    #: The next try was let out (the session is controlled again until it fails again).
    due: bool = False


class SmartCharging:
    """Allocates the site's power and sends the profiles.

    Args:
        site: the site model.
        recorder: records the chargers' answers (and holds the domain state).
        connections: the live connections (their sessions carry the profiles).
        clock: the wall clock (virtual in simulations).
        call_timeout: seconds to wait for a charger's answer.
    """

    def __init__(self, site: SiteConfig, recorder: Recorder, connections: ConnectionManager,
                 clock: Callable[[], datetime.datetime], *, call_timeout: float) -> None:
        self.site = site
        self._recorder = recorder
        self._clock = clock
        self._wakeup = trio.Event()
        self.tick = 0
        #: The last allocation, in W, per (charger, connector).
        self.allocation: dict[EvseKey, float] = {}
        #: The rotation interval of the last allocation.
        self._rotation: int | None = None
        #: Sessions whose charger did not take our profile, until it takes one:
        #: (charger, connector) → tx.
        self.uncontrolled: dict[EvseKey, int] = {}
        self._retries: dict[EvseKey, _Retry] = {}
        #: What each session's charger may be enforcing (see :mod:`csms.smart.in_force`).
        self.ledger = Ledger()
        #: The bound of every session of the last rebalance: what the budget counted.
        self.bounds: dict[EvseKey, float] = {}
        #: Increases the last rebalance held back until decreases are confirmed.
        self.held: dict[EvseKey, float] = {}
        #: The sessions the last rebalance counted at what they draw (above their limit).
        self.at_draw: set[EvseKey] = set()
        #: The session and its reading count when its limit last went again: once per
        #: reading.
        self._resent: dict[EvseKey, tuple[int, int]] = {}
        #: The per-EVSE limit (W) of the safety-net TxDefaultProfile each charger accepted.
        self.safety_w: dict[str, float] = {}
        #: The form a session's charger accepted after refusing the default one:
        #: (charger, connector) → (transactionId, form).
        self.forms: dict[EvseKey, tuple[int, Form]] = {}
        #: The tasks that carry the limits to the chargers.
        self.senders = Senders(self, recorder, clock, call_timeout=call_timeout)
        connections.add_connection_task(self.senders.run)

    @property
    def state(self) -> DomainState:
        """The domain state the allocation reads."""
        return self._recorder.state

    # -- triggers --------------------------------------------------------------------------

    def wants_rebalance(self, events: list[ev.Event]) -> bool:
        """Whether these events change who may draw power: a session starts or ends, an
        EVSE's status changes, or a reading shows a session drawing clearly more than its
        limit (or no longer): the others make room at once, not at the next tick."""
        for event in events:
            if isinstance(event, _TRIGGERS):
                return True
            if isinstance(event, ev.MeterSampled) and event.transaction_id is not None:
                key = (event.charger_id, event.connector_id)
                session = self.state.sessions.get(event.transaction_id)
                if (session is not None and session.open
                        and self.state.open_sessions.get(key) == session.transaction_id
                        and self._at_draw(key, session) != (key in self.at_draw)):
                    return True
        return False

    def request_rebalance(self) -> None:
        """Rebalance now, not at the next tick (called after an answer has been sent)."""
        self._wakeup.set()

    def wants_setup(self, charger_id: str, events: list[ev.Event]) -> bool:
        """See :meth:`Senders.wants_setup`."""
        return self.senders.wants_setup(charger_id, events)

    def request_setup(self, charger_id: str) -> None:
        """See :meth:`Senders.request_setup`."""
        self.senders.request_setup(charger_id)

    def profiles_changed(self, charger_id: str) -> None:
        """The operator set or cleared charging profiles on the charger: what it enforces
        is unknown (up to each EVSE's maximum) until it accepts our limits again, which go
        out at once, after its safety nets."""
        self.safety_w.pop(charger_id, None)
        for key, tx in self.state.open_sessions.items():
            if key[0] == charger_id:
                max_w, _, _ = self.site.rating(*key)
                self.ledger.unknown(key, tx, max_w)
        self.senders.request_setup(charger_id)
        self.request_rebalance()

    def capabilities(self, charger_id: str) -> Capabilities:
        """What the charger reported it takes (all unknown until it answered), with the
        site file's overrides."""
        charger = self.state.chargers.get(charger_id)
        reported = charger.configuration if charger is not None else {}
        capabilities = Capabilities.from_configuration(reported)
        # The site file's values override what the charger reported.
        max_stack_level = self.site.charger(charger_id).max_stack_level
        if max_stack_level is not None:
            capabilities = attrs.evolve(capabilities, max_stack_level=max_stack_level)
        return capabilities

    # -- the tick --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Rebalance on every tick boundary, and whenever asked to."""
        interval = self.site.rebalance_interval_s
        self.resume()
        task_status.started()
        while True:
            now = self._clock().timestamp()
            deadline = trio.current_time() + (math.floor(now / interval) + 1) * interval - now
            while trio.current_time() < deadline:
                with trio.move_on_at(min(deadline, self._next_retry())):
                    await self._wakeup.wait()
                if self._wakeup.is_set():
                    # Let a burst of triggers land, then rebalance once for all of it.
                    await trio.sleep_until(
                        min(trio.current_time() + self.site.settle_s, deadline)
                    )
                    self._wakeup = trio.Event()
                    self.rebalance()
                elif trio.current_time() < deadline:
                    self.rebalance()  # a failed session's retry is due
            self.tick += 1
            self.rebalance()

    def resume(self) -> None:
        """Start from what the recorded OCPP exchanges say each open session's charger
        accepted: a restarted CSMS budgets by the limits in force, not by each EVSE's
        maximum, and sends nothing that has not changed."""
        for key, tx in self.state.open_sessions.items():
            session = self.state.sessions[tx]
            if self.ledger.find(key, tx) is not None:
                continue
            _, phases, _ = self.site.rating(*key)
            profile = session.limit
            if profile is not None:
                self.ledger.accepted(key, tx, profile.watts(phases), session.samples)
            # A profile never answered, or still unanswered when the CSMS stopped: the
            # charger may be enforcing it.
            for unanswered in (session.uncertain, session.pending):
                if unanswered is not None:
                    self.ledger.sending(key, tx, unanswered.watts(phases))
                    self.ledger.unanswered(key, tx)
            if profile is not None and profile.profile_id == CONNECTOR_DEFAULT_ID_BASE + key[1]:
                # It took our limits as its connector's default (a fallback): so again.
                self.forms[key] = (tx, Form("TxDefaultProfile", profile.unit,
                                            profile.stack_level))

    def _next_retry(self) -> float:
        """The trio time of the next retry of a failed session (inf: none)."""
        return min((r.at for r in self._retries.values() if not r.due), default=math.inf)

    def controllable(self, key: EvseKey, transaction_id: int) -> bool:
        """Whether a new limit for the session can go out now: its charger is online
        (as its recorded connections say) and the session is not waiting for the retry of
        a failed profile."""
        charger = self.state.chargers.get(key[0])
        if charger is not None and not charger.connected:
            return False
        if self.uncontrolled.get(key) != transaction_id:
            return True
        retry = self._retries.get(key)
        return retry is not None and retry.transaction_id == transaction_id and retry.due

    def default_w(self, key: EvseKey) -> float:
        """A session's limit before its charger accepted one of ours: the safety net's,
        if the charger took it, else the EVSE's maximum."""
        max_w, _, _ = self.site.rating(*key)
        safe = self.safety_w.get(key[0])
        return max_w if safe is None else min(max_w, safe)

    def demands(self) -> list[Demand]:
        """The open sessions on available EVSEs, as the allocator sees them."""
        return self._demands()[0]

    def _demands(self) -> tuple[list[Demand], set[EvseKey]]:
        """The demands, and those of them counted at what they draw."""
        state = self.state
        epoch = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
        result = []
        at_draw: set[EvseKey] = set()
        for key, tx in state.open_sessions.items():
            evse = state.evses.get(key)
            if evse is not None and not evse.available:
                continue  # Faulted / Unavailable: nothing, and its share goes back
            session = state.sessions[tx]
            if (evse is not None and evse.status == "Available"
                    and evse.status_timestamp is not None
                    and evse.status_timestamp >= session.start_time):
                # Available since the session started: the charger runs no transaction
                # there (its StopTransaction is on its way, or it lost it).
                continue
            max_w, phases, _ = self.site.rating(*key)
            limit = self.ledger.find(key, tx)
            default = self.default_w(key)
            fixed = limit.bound(default) if limit is not None else default
            controlled = self.controllable(key, tx)
            if self._at_draw(key, session):
                # It draws clearly more than it accepted: it counts at what it draws from
                # that first reading, and the others share the rest.
                controlled = False
                fixed = max(fixed, session.power_w or 0.0)
                at_draw.add(key)
            elif self._idle(session, fixed, min_power_w(phases)):
                # Full or waiting for a while, its limit down to the floor: the floor goes
                # to the others until it draws again (then it is counted again at once).
                controlled = False
                fixed = session.power_w or 0.0
            result.append(Demand(
                key=key,
                max_w=max_w,
                min_w=min_power_w(phases),
                arrival=(session.started_at - epoch).total_seconds(),
                group=self.site.group_of(key[0]),
                measured_w=self._measured_w(key, session, phases),
                previous_w=limit.previous(session.samples) if limit is not None else None,
                controlled=controlled,
                fixed_w=fixed,
            ))
        return result, at_draw

    def _at_draw(self, key: EvseKey, session: Session) -> bool:
        """Whether the session counts at what it draws: non-compliant, or over its limit."""
        return session.non_compliant or self._over_limit(key, session)

    def _resends(self, at_draw: set[EvseKey]) -> dict[EvseKey, float]:
        """The limits to send again, once per reading the domain judged clearly above
        the limit its charger accepted, until it is non-compliant (a charger may have
        lost its limit); none while one is on its way or the session is uncontrolled."""
        resend: dict[EvseKey, float] = {}
        for key in sorted(at_draw):
            tx = self.state.open_sessions[key]
            session = self.state.sessions[tx]
            limit = self.ledger.find(key, tx)
            if (session.overdraw_readings and not session.non_compliant
                    and limit is not None and limit.accepted is not None
                    and limit.queued is None and limit.in_flight is None
                    and self.controllable(key, tx)
                    and self._resent.get(key) != (tx, session.samples)):
                resend[key] = limit.accepted
                self._resent[key] = (tx, session.samples)
        return resend

    def _over_limit(self, key: EvseKey, session: Session) -> bool:
        """Whether a reading taken since its charger accepted its limit shows the session
        drawing clearly more than any limit its charger may be enforcing or still
        applying (the one before, or the safety net's, in the minute it may take), or the
        domain judged its latest reading so. A new limit accepted since waits for the
        next reading."""
        limit = self.ledger.find(key, session.transaction_id)
        if (limit is None or limit.accepted is None or session.power_w is None
                or session.samples <= limit.accepted_samples):
            return False
        if session.overdraw_readings:
            return True
        default = self.default_w(key)
        applying = max(limit.bound(default), default if limit.under is None else limit.under)
        return overdraws(applying, "W", session.power_w)

    def _measured_w(self, key: EvseKey, session: Session, phases: int) -> float | None:
        """What the session draws, as its limit counts it: a limit in A is per phase of
        the EVSE's, so an EV measured drawing on fewer phases (one, on a three-phase
        charger) uses all of it with a third of the power."""
        drawn = phases_drawn(session.current_a)
        if (session.power_w is None or drawn is None or len(drawn) >= phases
                or self.form(key, session.transaction_id).unit != "A"):
            return session.power_w
        return session.power_w * phases / len(drawn)

    def _idle(self, session: Session, bound_w: float, floor_w: float) -> bool:
        """Whether the session has drawn nothing for ``idle_release_s`` with no more than
        its floor in force."""
        if session.idle_since is None or bound_w > floor_w + EPSILON_W:
            return False
        idle_s = (self._clock() - session.idle_since).total_seconds()
        return idle_s >= self.site.idle_release_s

    def _scopes(self, keys: set[EvseKey]) -> list[Scope]:
        """The site's and each group's limit in W, with their EVSEs among ``keys``."""
        scopes: list[Scope] = []
        site_w, group_limits = self.site.watt_limits()
        if site_w is not None:
            scopes.append((site_w, dict.fromkeys(keys, 1.0)))
        members: dict[str, dict[EvseKey, float]] = {name: {} for name in group_limits}
        for key in keys:
            group = self.site.group_of(key[0])
            if group in members:
                members[group][key] = 1.0
        scopes.extend((limit, members[name]) for name, limit in group_limits.items())
        return scopes

    def _phase_scopes(self, keys: list[EvseKey],
                      capabilities: dict[str, Capabilities]) -> list[Scope]:
        """The site's and groups' current limits, one scope per grid phase: each EVSE
        weighted by the current one W of its limit makes there (by its wiring, its unit,
        and the phases its EV was measured drawing on)."""
        limits = self.site.phase_limits_a()
        if not limits:
            return []
        weights: dict[EvseKey, dict[str, float]] = {}
        for key in sorted(keys):
            tx = self.state.open_sessions[key]
            unit = self.form(key, tx, capabilities).unit
            drawn = phases_drawn(self.state.sessions[tx].current_a)
            weights[key] = self.site.phase_weights(*key, unit, drawn)
        scopes: list[Scope] = []
        for amps, group in limits:
            members = [k for k in weights if group is None or self.site.group_of(k[0]) == group]
            for phase in GRID_PHASES:
                scopes.append((amps, {k: weights[k][phase] for k in members
                                      if phase in weights[k]}))
        return scopes

    def rebalance(self) -> dict[EvseKey, float]:
        """Compute the allocation and hand every changed limit to its charger's sender."""
        # Retries that are due are let out here, whether or not their session is in this
        # allocation (its charger may be offline): the tick must not wake for them again.
        if self._retries:
            time_now = trio.current_time()
            for retry in self._retries.values():
                retry.due = retry.due or retry.at <= time_now
        demands, self.at_draw = self._demands()
        rotation = int(self._clock().timestamp() // self.site.rotation_interval_s)
        # Within a rotation interval the pauses hold, whatever starts or stops.
        previous = self.allocation if rotation == self._rotation else None
        self._rotation = rotation
        capabilities: dict[str, Capabilities] = {}
        phase_scopes = self._phase_scopes([d.key for d in demands], capabilities)
        site_w, groups_w = self.site.watt_limits()
        self.allocation = allocate(
            demands, site_w, groups_w, tick=rotation,
            guard_band_w=self.site.guard_band_kw * 1000, previous=previous,
            phase_scopes=phase_scopes,
        )
        open_sessions = self.state.open_sessions
        self.ledger.forget_ended(open_sessions)
        for key, retry in list(self._retries.items()):
            if open_sessions.get(key) != retry.transaction_id:
                del self._retries[key]
        for key in [k for k, tx in self.uncontrolled.items() if open_sessions.get(k) != tx]:
            del self.uncontrolled[key]
        for key in [k for k, (tx, _) in self._resent.items() if open_sessions.get(k) != tx]:
            del self._resent[key]
        self._forget_forms()
        # Every session counts at the most its charger may be enforcing: a decrease only
        # once confirmed, an increase from the moment it is handed out.
        self.bounds = {d.key: d.fixed_load_w for d in demands}
        scopes = self._scopes(set(self.bounds)) + phase_scopes
        now, self.held = admit(self._to_send(demands, scopes, capabilities), self.bounds, scopes)
        now.update(self._resends(self.at_draw))  # no more than accepted: nothing to admit
        for key, watts in sorted(now.items()):
            tx = open_sessions[key]
            _, phases, _ = self.site.rating(*key)
            wanted = Wanted.build(self.form(key, tx, capabilities), key, tx, watts, phases)
            # The ledger holds what the charger will enforce: the limit as rounded down.
            self.ledger.queue(key, tx, wanted.enforced)
            self.senders.want(key, wanted)
        return self.allocation

    def form(self, key: EvseKey, transaction_id: int,
             cache: dict[str, Capabilities] | None = None) -> Form:
        """How the session's limit goes to its charger: the form it accepted after a
        refusal, else a TxProfile in the unit and stack level it takes (``cache``: the
        chargers' capabilities, read once per rebalance)."""
        taken = self.forms.get(key)
        if taken is not None and taken[0] == transaction_id:
            return taken[1]
        _, _, configured = self.site.rating(*key)
        if cache is None:
            cache = {}
        if key[0] not in cache:
            cache[key[0]] = self.capabilities(key[0])
        capabilities = cache[key[0]]
        return Form(
            "TxProfile", capabilities.unit(configured), capabilities.stack_level(STACK_LEVEL)
        )

    def _forget_forms(self) -> None:
        """Drop the forms of ended sessions; a fallback TxDefaultProfile is cleared, so the
        connector's next session starts under the safety net again, not at this one's
        limit."""
        open_sessions = self.state.open_sessions
        for key, (tx, form) in list(self.forms.items()):
            if open_sessions.get(key) == tx:
                continue
            del self.forms[key]
            if form.purpose == "TxDefaultProfile":
                self.senders.clear_fallback(key)

    def _to_send(self, demands: list[Demand], scopes: list[Scope],
                 capabilities: dict[str, Capabilities]) -> dict[EvseKey, float]:
        """The limits worth sending: changes beyond the deadband (``deadband_kw``, or
        ``deadband_ratio`` of the limit if more), plus as many decreases as it takes for the
        limits in force to fit the site's and groups' limits, each ``forced_decrease_margin``
        below the new share (not below the floor): the next arrivals then fit too; and as
        many of the increases the deadband held back as it takes for no more than
        ``unused_ratio`` of a limit to go unused.
        """
        deadband = self.site.deadband_kw * 1000
        ratio = self.site.deadband_ratio
        in_force: dict[EvseKey, float] = {}
        kept: dict[EvseKey, float] = {}
        to_send: dict[EvseKey, float] = {}
        for key, watts in self.allocation.items():
            tx = self.state.open_sessions[key]
            limit = self.ledger.find(key, tx)
            if limit is None:
                in_force[key] = to_send[key] = watts
                continue
            # Compared as the charger would enforce them: in its unit, rounded down (the
            # ledger holds limits so rounded).
            unit = self.form(key, tx, capabilities).unit
            _, phases, _ = self.site.rating(*key)
            wanted = enforced_w(watts, unit, phases)
            if any(w is not None and math.isclose(w, wanted, abs_tol=EPSILON_W)
                   for w in (limit.queued, limit.in_flight)):
                in_force[key] = watts  # already on its way
                continue
            accepted = limit.accepted
            if accepted is not None and limit.settled and (
                    math.isclose(accepted, wanted, abs_tol=EPSILON_W)
                    or (abs(accepted - wanted) <= max(deadband, ratio * max(accepted, wanted))
                        and (accepted == 0) == (wanted == 0))):
                in_force[key] = kept[key] = accepted
                continue
            in_force[key] = to_send[key] = watts
        # Every demand is either allocated (in_force) or fixed: the scopes cover them all.
        fixed = {d.key: d.fixed_load_w for d in demands if not d.controlled}
        for cap, members in scopes:
            # fsum is exact: a set's order follows string hashing, which differs from
            # process to process, and float addition is not associative.
            load = math.fsum(in_force.get(k, fixed.get(k, 0.0)) * w for k, w in members.items())
            # Largest overshoot first, until the limits in force fit.
            for key in sorted((k for k in members if k in kept and kept[k] > self.allocation[k]),
                              key=lambda k: (self.allocation[k] - kept[k], k)):
                if load <= cap:
                    break
                target = self._forced(key, self.allocation[key])
                load -= (kept[key] - target) * members[key]
                in_force[key] = to_send[key] = target
                del kept[key]
            # Largest shortfall first, until what the deadband holds back is little.
            short = sorted((k for k in members if k in kept and kept[k] < self.allocation[k]),
                           key=lambda k: (kept[k] - self.allocation[k], k))
            unused = math.fsum((self.allocation[k] - kept[k]) * members[k] for k in short)
            for key in short:
                if unused <= self.site.unused_ratio * cap:
                    break
                unused -= (self.allocation[key] - kept[key]) * members[key]
                in_force[key] = to_send[key] = self.allocation[key]
                del kept[key]
        return to_send

    def _forced(self, key: EvseKey, share_w: float) -> float:
        """The limit a forced decrease sends: ``forced_decrease_margin`` below the share,
        not below the floor (a pause stays 0)."""
        if share_w <= 0:
            return share_w
        _, phases, _ = self.site.rating(*key)
        floor = min(min_power_w(phases), share_w)
        return max(share_w * (1 - self.site.forced_decrease_margin), floor)

    def accepted(self, key: EvseKey, wanted: Wanted) -> None:
        """Note the limit now in force; the session is controlled again."""
        tx = wanted.transaction_id
        session = self.state.sessions.get(tx)
        self.ledger.accepted(key, tx, wanted.enforced, session.samples if session else 0)
        self.uncontrolled.pop(key, None)
        self._retries.pop(key, None)
        if self.held:
            self.request_rebalance()  # a decrease confirmed may let a held increase out

    def accepted_late(self, key: EvseKey, wanted: Wanted, sent: int) -> None:
        """The charger accepted the limit (the ``sent``-th of the session) after its call
        timed out: it is in force. If it is the last sent, the session is settled and
        controlled again, as after an answer in time; else what was sent since stays
        counted, and the retry stays due when it was (a charger that is always late is
        sent no more often for it)."""
        tx = wanted.transaction_id
        session = self.state.sessions.get(tx)
        samples = session.samples if session else 0
        if self.ledger.accepted_late(key, tx, wanted.enforced, samples, sent):
            self.uncontrolled.pop(key, None)
            self._retries.pop(key, None)
            self.request_rebalance()

    def failed(self, key: EvseKey, transaction_id: int, why: str) -> None:
        """The session's profile was refused in every form, or not answered: it counts at
        the most its charger may be enforcing, and is tried again after a backoff."""
        retry = self._retries.get(key)
        failures = retry.failures + 1 if retry and retry.transaction_id == transaction_id else 1
        wait = min(RETRY_FIRST_S * 2 ** (failures - 1), RETRY_MAX_S)
        self._retries[key] = _Retry(transaction_id, failures, trio.current_time() + wait)
        self.uncontrolled[key] = transaction_id
        log.warning("%s EVSE_%d: %s; uncontrolled, tried again in %g s", *key, why, wait)
        self.request_rebalance()  # it counts as fixed load now: the others adjust

    # -- the senders -----------------------------------------------------------------------
