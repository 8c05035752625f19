"""The report at the end of a scenario: per session, fleet totals, the profiles each EVSE
received, and peak site power against the site limit. A table for people, JSON for tools.

Everything in it is a function of the scenario's clock and seed (no wall-clock stamps, no
transaction ids whose order could depend on scheduling), so the same seed in virtual time
gives the same report byte for byte.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from attrs import frozen

from csms.inspect import table
from csms.storage.base import SampleRow
from sim.timeline import Timeline

if TYPE_CHECKING:
    from sim.simulator_runner import Fleet, ScenarioContext


def _t(moment: datetime.datetime | None) -> str | None:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@frozen
class ScenarioReport:
    """What a scenario run produced."""

    scenario: str
    seed: int
    params: dict[str, Any]
    sessions: list[dict[str, Any]]
    totals: dict[str, Any]
    profiles: list[dict[str, Any]]
    failures: list[str]
    notes: list[str]
    #: Every named check: ``{"name", "held", "failed", "failures"}`` (what was observed
    #: each time it failed), in the order the run first made it.
    checks: list[dict[str, Any]] = attrs.Factory(list)
    #: The run over time as the chargers saw it (not in the JSON: the HTML report and
    #: the plot draw it).
    timeline: Timeline = attrs.field(factory=Timeline, eq=False)
    #: In-process runs: the site power (W) the CSMS received, at each reading's arrival.
    csms_series: list[tuple[datetime.datetime, float]] | None = attrs.field(
        default=None, eq=False)
    #: In-process runs: each group's power (W) the CSMS received.
    csms_group_series: dict[str, list[tuple[datetime.datetime, float]]] = attrs.field(
        factory=dict, eq=False)

    @property
    def passed(self) -> bool:
        """True when every check of the scenario held."""
        return not self.failures

    def to_json(self) -> str:
        """The report as stable, indented JSON."""
        return json.dumps({
            "scenario": self.scenario, "seed": self.seed, "params": self.params,
            "passed": self.passed, "failures": self.failures, "notes": self.notes,
            "checks": self.checks,
            "totals": self.totals, "sessions": self.sessions, "profiles": self.profiles,
        }, indent=2, sort_keys=True)

    def to_text(self) -> str:
        """The report as tables."""
        rows = [[s["charger"], s["evse"], s["start"] or "-", s["stop"] or "-",
                 f"{s['energy_kwh']:.3f}", f"{s['peak_kw']:.2f}", s["stop_reason"] or "-",
                 str(s["profiles_received"])] for s in self.sessions]
        t = self.totals
        lines = [
            f"Scenario {self.scenario} (seed {self.seed})",
            "",
            table(["charger", "EVSE", "start", "stop", "kWh", "peak kW", "reason", "profiles"],
                  rows),
            "",
            f"chargers {t['chargers']}  EVSEs {t['evses']}  sessions {t['sessions']}  "
            f"energy {t['energy_kwh']:.3f} kWh  profiles received {t['profiles_received']} "
            f"({t.get('profiles_per_session', 0.0):.2f} per session)",
            f"OCPP calls: {t['calls_sent']} sent by the chargers, {t['calls_received']} by the "
            "CSMS",
            f"peak site power {t['peak_site_kw']:.2f} kW at {t['peak_site_at']}"
            + (f"  (site limit {t['site_limit_kw']:.2f} kW)" if t["site_limit_kw"] else ""),
        ]
        seen = t.get("csms_seen")
        if seen:
            lines.append(
                f"site power the CSMS received: peak {seen['peak_kw']:.2f} kW at "
                f"{seen['peak_at']}; longest above the limit {seen['longest_over_limit_s']:.0f} s"
            )
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"FAILED: {f}" for f in self.failures] or ["all checks passed"]
        return "\n".join(lines)


def build_report(name: str, seed: int, params: dict[str, Any], fleet: Fleet,
                 ctx: ScenarioContext) -> ScenarioReport:
    """Collect the report from the fleet after a run."""
    sessions: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    for cp in sorted(fleet, key=lambda c: c.id):
        for record in sorted(cp.sessions, key=lambda r: (r.evse, r.start)):
            connector = int(record.evse.removeprefix("EVSE_"))
            received = [p for at, p in cp.profiles_received.get(connector, [])
                        if at >= record.start and (record.stop is None or at <= record.stop)]
            sessions.append({
                "charger": record.charger, "evse": record.evse, "id_tag": record.id_tag,
                "start": _t(record.start), "stop": _t(record.stop),
                "energy_kwh": round(record.energy_wh / 1000, 3),
                "peak_kw": round(record.peak_power_w / 1000, 3),
                "stop_reason": record.stop_reason, "profiles_received": len(received),
            })
        for connector, received_list in sorted(cp.profiles_received.items()):
            profiles.append({
                "charger": cp.id, "evse": f"EVSE_{connector}", "count": len(received_list),
                "last": _profile_summary(received_list[-1][1]) if received_list else None,
            })
    peak_kw, peak_at = fleet.peak_site_power()
    totals = {
        "chargers": len(fleet.chargers),
        "evses": sum(len(cp.evses) for cp in fleet),
        "sessions": len(sessions),
        "energy_kwh": round(sum(s["energy_kwh"] for s in sessions), 3),
        "profiles_received": sum(p["count"] for p in profiles),
        # What smart charging costs each session, in SetChargingProfiles (churn).
        "profiles_per_session": round(
            sum(s["profiles_received"] for s in sessions) / len(sessions), 2
        ) if sessions else 0.0,
        # Round trips on the wire: CALLs the chargers sent, and CALLs the CSMS sent them.
        "calls_sent": sum(cp.calls_sent for cp in fleet),
        "calls_received": sum(cp.calls_received for cp in fleet),
        "peak_site_kw": round(peak_kw, 3),
        "peak_site_at": _t(peak_at),
        "site_limit_kw": ctx.site_limit_kw,
        "csms_seen": ctx.csms_view,
    }
    if ctx.groups:  # the site's feeders: chargers, limit, and what the CSMS received
        totals["groups"] = ctx.groups
    checks = [{"name": name, "held": tally.held, "failed": len(tally.failures),
               "failures": list(tally.failures)} for name, tally in ctx.checks.items()]
    return ScenarioReport(name, seed, params, sessions, totals, profiles, list(ctx.failures),
                          list(ctx.notes), checks, fleet.timeline, ctx.csms_series,
                          ctx.csms_group_series)


def _profile_summary(profile: dict[str, Any]) -> dict[str, Any]:
    schedule = profile.get("chargingSchedule", {})
    periods = schedule.get("chargingSchedulePeriod", [])
    return {
        "id": profile.get("chargingProfileId"),
        "purpose": profile.get("chargingProfilePurpose"),
        "stack_level": profile.get("stackLevel"),
        "unit": schedule.get("chargingRateUnit"),
        "first_limit": periods[0]["limit"] if periods else None,
    }


def site_power_series(samples: Iterable[SampleRow],
                      ended: Mapping[int, datetime.datetime] | None = None,
                      ) -> list[tuple[datetime.datetime, float]]:
    """The site's power (W) as the CSMS received it, at every moment a reading arrived.

    Each session's power is its last reported Power.Active.Import (a step function); the
    site's power is their sum. ``ended``: when the CSMS closed each session it closed (its
    StopTransaction, or the evidence that its charger lost it in a reboot): its power
    counts until then, and a reading received later (delivered late) no longer does.
    """
    ended = ended or {}
    last: dict[int, float] = {}
    by_time: dict[datetime.datetime, list[tuple[int, float]]] = {}
    for row in samples:
        s = row.sample
        tx = row.transaction_id
        if (tx is None or s.measurand != "Power.Active.Import"
                or s.phase is not None or s.number is None
                or (tx in ended and row.received_at >= ended[tx])):
            continue
        by_time.setdefault(row.received_at, []).append((tx, s.number))
    endings = sorted((at, tx) for tx, at in ended.items())
    next_end = 0
    series = []
    for moment in sorted(by_time):
        while next_end < len(endings) and endings[next_end][0] <= moment:
            last.pop(endings[next_end][1], None)
            next_end += 1
        for tx, watts in by_time[moment]:
            last[tx] = watts
        series.append((moment, sum(last.values())))
    return series


def site_power_seen(samples: Iterable[SampleRow], limit_w: float,
                    ended: Mapping[int, datetime.datetime] | None = None) -> dict[str, Any]:
    """The site's power as the CSMS received it, from its stored MeterValues.

    Each session's power is its last reported Power.Active.Import (a step function); the
    site's power at every receive time is their sum. Returns the peak, and the longest
    stretch during which the sum stayed above ``limit_w`` (from the first sample above to
    the last sample above in a row).

    ``ended``: when the CSMS closed each session it closed (its StopTransaction, or the
    evidence that its charger lost it in a reboot): its power counts until then, and a
    reading received later (delivered late) no longer does.
    """
    return power_against_limit(site_power_series(samples, ended), limit_w)


def power_against_limit(series: Iterable[tuple[datetime.datetime, float]],
                        limit_w: float) -> dict[str, Any]:
    """A received-power series (:func:`site_power_series`) against ``limit_w``: its peak,
    and its longest stretch above the limit (see :func:`site_power_seen`)."""
    tolerance = 1.0  # W: rounding of reported values
    peak, peak_at = 0.0, None
    longest, longest_from = 0.0, None
    run_start: datetime.datetime | None = None
    for moment, total in series:
        if total > peak:
            peak, peak_at = total, moment
        if total > limit_w + tolerance:
            if run_start is None:
                run_start = moment
            length = (moment - run_start).total_seconds()
            if length >= longest:
                longest, longest_from = length, run_start
        else:
            run_start = None
    return {"peak_kw": round(peak / 1000, 3), "peak_at": _t(peak_at),
            "longest_over_limit_s": longest, "longest_over_limit_from": _t(longest_from),
            "limit_kw": round(limit_w / 1000, 3)}
