"""The site of a scenario, and what the in-process CSMS received, checked against the
site's limit and each group's (feeder's): from its stored MeterValues, as an auditor
would read them (OCPP alone).

A scenario gives its CSMS a site limit with the ``site_limit_kw`` (or
``site_limit_kw_per_evse``) parameter, and may give the whole ``site:`` section of the
CSMS configuration, groups included, with ``def site(params) -> dict``.
"""

from __future__ import annotations

import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from csms.smart.site import SiteConfig, SiteConfigError, parse_site
from csms.storage.base import Store
from sim.records_check import check_records
from sim.report import power_against_limit, site_power_series

if TYPE_CHECKING:
    from sim.simulator_runner import ScenarioContext


class SiteError(Exception):
    """A scenario's ``site()`` is not a valid site section."""


def site_limit_from(params: dict[str, Any]) -> float | None:
    """The site limit (kW) a scenario's parameters give: ``site_limit_kw``, else
    ``site_limit_kw_per_evse`` times its EVSEs, else None."""
    site_limit = params.get("site_limit_kw")
    per_evse = params.get("site_limit_kw_per_evse")
    if site_limit is None and per_evse is not None:
        site_limit = per_evse * params.get("chargers", 1) * params.get("evses", 1)
    return site_limit


def scenario_site(module: ModuleType, params: dict[str, Any],
                  site_limit_kw: float | None = None) -> SiteConfig:
    """The site a scenario runs its CSMS with: ``site_limit_kw`` if given, else the limit
    its parameters give (:func:`site_limit_from`), and its ``site(params)`` section.

    Raises:
        SiteError: its ``site(params)`` is not a valid ``site:`` section (the message
            names the field).
    """
    if site_limit_kw is None:
        site_limit_kw = site_limit_from(params)
    make = getattr(module, "site", None)
    section: dict[str, Any] = dict(make(params)) if callable(make) else {}
    if site_limit_kw is not None and "limit_a_per_phase" not in section:
        section.setdefault("limit_kw", site_limit_kw)
    name = module.__name__.rsplit(".", 1)[-1]
    try:
        return parse_site(section, source=f"scenario {name}: site")
    except SiteConfigError as exc:
        raise SiteError(str(exc)) from None


def limit_kw(site: SiteConfig) -> float | None:
    """The site's limit in kW, as given (or from A per phase), or None."""
    if site.limit_kw is not None:
        return site.limit_kw
    return site.limit_w / 1000 if site.limit_w is not None else None


def groups_of(site: SiteConfig) -> dict[str, dict[str, Any]]:
    """The site's groups as the report shows them: chargers and limit (kW, or None)."""
    limits = site.group_limits_w()
    return {name: {"chargers": sorted(group.chargers),
                   "limit_kw": round(limits[name] / 1000, 3) if name in limits else None}
            for name, group in sorted(site.groups.items())}


async def observe(ctx: ScenarioContext, store: Store, site: SiteConfig) -> None:
    """At the end of an in-process run: the records checks (if the scenario asked), and
    the site's and groups' power as the CSMS received it, each checked against its limit
    (above it for no longer than one rebalancing tick)."""
    if ctx.records_checked:
        await check_records(ctx.fleet, store, ctx.check)
    samples = await store.read_samples("Power.Active.Import")
    state = await store.load_state()
    ended = {tx: session.stopped_at for tx, session in state.sessions.items()
             if session.stopped_at is not None}
    ctx.csms_series = site_power_series(samples, ended)
    tolerance = site.rebalance_interval_s
    if site.limit_w is not None:
        ctx.csms_view = _held(ctx, "site-limit", "site power", "the", ctx.csms_series,
                              site.limit_w, tolerance)
    for name, limit_w in sorted(site.group_limits_w().items()):
        members = set(site.groups[name].chargers)
        series = site_power_series([row for row in samples if row.charger_id in members],
                                   ended)
        ctx.csms_group_series[name] = series
        ctx.groups[name]["csms_seen"] = _held(ctx, "group-limit", f"group {name}: power",
                                              "its", series, limit_w, tolerance)


def _held(ctx: ScenarioContext, tag: str, subject: str, whose: str,
          series: list[tuple[datetime.datetime, float]], limit_w: float,
          tolerance: float) -> dict[str, Any]:
    """Check that ``series`` stayed above ``limit_w`` for no longer than ``tolerance``
    seconds; the view of it (:func:`sim.report.power_against_limit`)."""
    view = power_against_limit(series, limit_w)
    ctx.check(view["longest_over_limit_s"] <= tolerance,
              f"[{tag}] {subject} reported in MeterValues stayed above {whose} "
              f"{limit_w / 1000:g} kW limit for {view['longest_over_limit_s']:.0f} s "
              f"(more than one {tolerance:.0f} s tick) from "
              f"{view['longest_over_limit_from']}")
    return view
