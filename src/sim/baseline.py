"""Allocation regression baselines: a run compared with a stored report of the same
scenario, seed and parameters. Pure: two JSON reports in, readable differences out.

What is compared, and how closely (the tolerances are for floating-point noise between
platforms; a run on one machine repeats its report byte for byte):

* every check: its name and whether it held;
* the run's totals: sessions, energy, peak site power (metered, and as the CSMS received
  it), how long the received power stayed above the limit, the same for each group
  (feeder), profiles received, OCPP calls;
* every session, matched by charger, EVSE and its order on that EVSE: start, stop, stop
  reason, energy, peak power, profiles received.

Energies within 0.5 % or 0.01 kWh and powers within 0.5 % or 0.05 kW are the same; counts,
moments and names must be equal.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attrs import frozen

#: At most this many differences are listed; the rest are counted.
MAX_LISTED = 40


class BaselineError(Exception):
    """A baseline that cannot be read, or that is not of this scenario, seed and parameters."""


@frozen
class Tolerances:
    """How far a figure may move before it is a difference."""

    energy_rel: float = 0.005
    energy_abs_kwh: float = 0.01
    power_rel: float = 0.005
    power_abs_kw: float = 0.05

    def describe(self) -> str:
        """The tolerances in words."""
        return (f"energy ±{self.energy_rel:.1%} or {self.energy_abs_kwh:g} kWh, power "
                f"±{self.power_rel:.1%} or {self.power_abs_kw:g} kW; counts, moments and "
                "checks exact")


def load_baseline(path: Path) -> dict[str, Any]:
    """The stored report at ``path``.

    Raises:
        BaselineError: missing, unreadable, or not a scenario report.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"no baseline {path} (--update-baseline writes it)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not {"scenario", "seed", "params", "sessions",
                                          "totals"} <= data.keys():
        raise BaselineError(f"baseline {path} is not a scenario report (python -m sim "
                            "scenario NAME --json FILE writes one)")
    try:  # compared with itself, every field the comparison reads is read once
        differences(data, data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise BaselineError(f"baseline {path} is not a scenario report this version "
                            f"reads ({type(exc).__name__}: {exc})") from None
    return data


def check_comparable(baseline: dict[str, Any], scenario: str, seed: int,
                     params: dict[str, Any], path: Path) -> None:
    """Raise BaselineError unless ``baseline`` is a run of this scenario, seed and
    parameters (any other comparison says nothing about the allocation)."""
    theirs = (baseline["scenario"], baseline["seed"])
    if theirs != (scenario, seed):
        raise BaselineError(f"baseline {path} is of scenario {theirs[0]} seed {theirs[1]}, "
                            f"this run is {scenario} seed {seed}")
    # Through JSON, as the baseline went: a float parameter stays a float.
    ours = json.loads(json.dumps(params))
    if baseline["params"] != ours:
        changed = sorted(k for k in {*ours, *baseline["params"]}
                         if ours.get(k) != baseline["params"].get(k))
        detail = ", ".join(f"{k}: {baseline['params'].get(k)!r} there, {ours.get(k)!r} here"
                           for k in changed)
        raise BaselineError(f"baseline {path} has other parameters ({detail})")


def differences(baseline: dict[str, Any], current: dict[str, Any],
                tolerances: Tolerances | None = None) -> list[str]:
    """What changed from ``baseline`` to ``current``, one line each; empty: the same."""
    tol = tolerances or Tolerances()
    return [*_checks(baseline, current), *_totals(baseline, current, tol),
            *_sessions(baseline, current, tol)]


def format_differences(lines: list[str], path: Path, tolerances: Tolerances | None = None,
                       ) -> str:
    """The differences as a report for people."""
    tol = tolerances or Tolerances()
    head = (f"baseline {path}: {len(lines)} difference(s) beyond the tolerances "
            f"({tol.describe()}); --update-baseline accepts them")
    listed = [f"  {line}" for line in lines[:MAX_LISTED]]
    if len(lines) > MAX_LISTED:
        listed.append(f"  ... and {len(lines) - MAX_LISTED} more")
    return "\n".join([head, *listed])


def _checks(baseline: dict[str, Any], current: dict[str, Any]) -> Iterator[str]:
    before = {c["name"]: c for c in baseline.get("checks", [])}
    after = {c["name"]: c for c in current.get("checks", [])}
    for name in [*before, *(n for n in after if n not in before)]:
        was, now = before.get(name), after.get(name)
        if was is None:
            yield f"check {name}: new"
        elif now is None:
            yield f"check {name}: no longer made"
        elif bool(was["failed"]) != bool(now["failed"]):
            if now["failed"]:
                yield f"check {name}: passed -> FAILED: {now['failures'][0]}"
            else:
                yield f"check {name}: failed -> passed"


def _close(a: float, b: float, rel: float, absolute: float) -> bool:
    return abs(a - b) <= max(absolute, rel * max(abs(a), abs(b)))


def _change(what: str, a: Any, b: Any, unit: str = "") -> str:
    text = f"{what}: {a}{unit} -> {b}{unit}"
    if isinstance(a, int | float) and isinstance(b, int | float) and a:
        text += f" ({(b - a) / abs(a):+.1%})"
    return text


def _totals(baseline: dict[str, Any], current: dict[str, Any], tol: Tolerances,
            ) -> Iterator[str]:
    was, now = baseline["totals"], current["totals"]
    for key, what in (("sessions", "sessions"), ("profiles_received", "profiles received"),
                      ("calls_sent", "OCPP calls sent by the chargers"),
                      ("calls_received", "OCPP calls sent by the CSMS")):
        if was.get(key) != now.get(key):
            yield _change(what, was.get(key), now.get(key))
    if not _close(was["energy_kwh"], now["energy_kwh"], tol.energy_rel, tol.energy_abs_kwh):
        yield _change("energy", was["energy_kwh"], now["energy_kwh"], " kWh")
    if not _close(was["peak_site_kw"], now["peak_site_kw"], tol.power_rel, tol.power_abs_kw):
        yield _change("peak site power, metered", was["peak_site_kw"], now["peak_site_kw"],
                      " kW")
    yield from _seen("site", was.get("csms_seen"), now.get("csms_seen"), tol)
    groups_was, groups_now = was.get("groups") or {}, now.get("groups") or {}
    for name in sorted({*groups_was, *groups_now}):
        group_was, group_now = groups_was.get(name), groups_now.get(name)
        if group_was is None or group_now is None:
            yield f"group {name}: " + ("new" if group_was is None else "no longer there")
            continue
        for key in ("chargers", "limit_kw"):
            if group_was.get(key) != group_now.get(key):
                yield _change(f"group {name}: {key.replace('_', ' ')}", group_was.get(key),
                              group_now.get(key))
        yield from _seen(f"group {name}", group_was.get("csms_seen"),
                         group_now.get("csms_seen"), tol)


def _seen(what: str, was: dict[str, Any] | None, now: dict[str, Any] | None,
          tol: Tolerances) -> Iterator[str]:
    """Differences in the power the CSMS received, for the site or a group."""
    was, now = was or {}, now or {}
    if not (was or now):
        return
    peak_was, peak_now = was.get("peak_kw", 0.0), now.get("peak_kw", 0.0)
    if not _close(peak_was, peak_now, tol.power_rel, tol.power_abs_kw):
        yield _change(f"peak {what} power, received by the CSMS", peak_was, peak_now, " kW")
    over_was, over_now = was.get("longest_over_limit_s"), now.get("longest_over_limit_s")
    if over_was != over_now:
        yield _change(f"longest above the {what} limit", over_was, over_now, " s")


def _keyed(report: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Sessions by (charger, EVSE, their order on that EVSE)."""
    keyed: dict[tuple[str, str, int], dict[str, Any]] = {}
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    for session in report["sessions"]:
        evse = (session["charger"], session["evse"])
        seen[evse] += 1
        keyed[(*evse, seen[evse])] = session
    return keyed


def _sessions(baseline: dict[str, Any], current: dict[str, Any], tol: Tolerances,
              ) -> Iterator[str]:
    before, after = _keyed(baseline), _keyed(current)
    for key in [*before, *(k for k in after if k not in before)]:
        name = f"{key[0]} {key[1]} session {key[2]}"
        was, now = before.get(key), after.get(key)
        if was is None or now is None:
            there = now or was
            assert there is not None
            yield (f"{name} (from {there['start']}): "
                   + ("new" if was is None else "no longer there"))
            continue
        for field in ("start", "stop", "stop_reason", "profiles_received"):
            if was.get(field) != now.get(field):
                yield _change(f"{name}: {field.replace('_', ' ')}", was.get(field),
                              now.get(field))
        if not _close(was["energy_kwh"], now["energy_kwh"], tol.energy_rel,
                      tol.energy_abs_kwh):
            yield _change(f"{name}: energy", was["energy_kwh"], now["energy_kwh"], " kWh")
        if not _close(was["peak_kw"], now["peak_kw"], tol.power_rel, tol.power_abs_kw):
            yield _change(f"{name}: peak power", was["peak_kw"], now["peak_kw"], " kW")
