"""The plots of a scenario report, drawn with matplotlib: site power against the limit, and
one lane per EVSE. SVG (text kept as text, so it stays small and searchable) or PNG.

matplotlib is an optional dependency (``pip install 'trio-csms[report]'``); it is imported
only when a plot is asked for. Figures are built with ``matplotlib.figure.Figure``, not
pyplot: no global figure state, no GUI backend. The same report gives the same SVG bytes
(a fixed id salt, no date in the metadata).
"""

from __future__ import annotations

import datetime
import io
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.timeline import Activity, Lane

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from sim.report import ScenarioReport

#: More lanes than this make a page nobody reads: the report shows the first ones and says so.
MAX_LANES = 200

#: The share of a lane's height the highest power or limit fills.
LANE_FILL = 0.8

#: How each activity other than charging and idle is shaded in a lane.
SHADES = {
    Activity.PAUSED: ("#f2c14e", "paused by its limit (SuspendedEVSE)"),
    Activity.EV_PAUSED: ("#cfd8dc", "EV takes nothing (SuspendedEV)"),
    Activity.FAULTED: ("#e4572e", "faulted"),
    Activity.UNAVAILABLE: ("#9e9e9e", "unavailable"),
    Activity.OFFLINE: ("#7e57c2", "offline"),
}
METERED, RECEIVED, LIMIT, POWER = "#1f77b4", "#ff7f0e", "#d62728", "#2a9d8f"

_SETTINGS = {"svg.fonttype": "none", "font.size": 9.0}


class PlotsUnavailable(Exception):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise PlotsUnavailable unless matplotlib can be imported."""
    _matplotlib()


def _matplotlib() -> Any:
    try:
        import matplotlib  # noqa: PLC0415 (optional: only a report with plots needs it)
    except ImportError as exc:
        raise PlotsUnavailable(
            "plots need matplotlib: pip install 'trio-csms[report]'") from exc
    return matplotlib


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure  # noqa: PLC0415

    return Figure(figsize=(width, height), layout="constrained")


def _dates() -> Any:
    """matplotlib.dates (untyped: typed as Any here, once)."""
    from matplotlib import dates  # noqa: PLC0415

    return dates


def _x(times: Iterable[datetime.datetime]) -> list[float]:
    """Moments as matplotlib's date numbers."""
    return [float(v) for v in _dates().date2num(list(times))]


def _time_axis(ax: Axes) -> None:
    ax.xaxis_date(tz=datetime.UTC)
    ax.xaxis.set_major_formatter(_dates().DateFormatter("%H:%M", tz=datetime.UTC))
    ax.set_xlabel("time (UTC)")


def site_power_figure(report: ScenarioReport) -> Figure:
    """Site power over time: metered by the chargers, received by the CSMS, the limit;
    below it, the same for each group (feeder) of the site."""
    groups = report.totals.get("groups") or {}
    fig = _figure(10.0, 3.6 + 2.4 * len(groups))
    axes = fig.subplots(1 + len(groups), 1, sharex=True, squeeze=False)[:, 0]
    timeline = report.timeline
    x = _x(timeline.times)
    _power(axes[0], f"{report.scenario} (seed {report.seed}): site power",
           timeline.site_kw, report.csms_series, report.totals.get("site_limit_kw"),
           x=x, what="site")
    for ax, (name, group) in zip(axes[1:], sorted(groups.items()), strict=True):
        members = set(group["chargers"])
        lanes = [lane for lane in timeline.lanes.values()
                 if lane.name.split(" ", 1)[0] in members]
        metered = [sum(lane.power_kw[i] for lane in lanes) for i in range(len(x))]
        _power(ax, f"group {name} ({len(members)} chargers)", metered,
               report.csms_group_series.get(name), group.get("limit_kw"), x=x, what="group")
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    _time_axis(axes[-1])
    return fig


def _power(ax: Axes, title: str, metered_kw: list[float],
           received_w: list[tuple[datetime.datetime, float]] | None, limit_kw: float | None,
           *, x: list[float], what: str) -> None:
    if x:
        ax.plot(x, metered_kw, drawstyle="steps-post", color=METERED, linewidth=1.4,
                label="metered by the chargers")
    if received_w:
        ax.plot(_x(at for at, _ in received_w), [w / 1000 for _, w in received_w],
                drawstyle="steps-post", color=RECEIVED, linewidth=1.0, alpha=0.9,
                label="received by the CSMS (MeterValues)")
    if limit_kw is not None:
        ax.axhline(limit_kw, color=LIMIT, linestyle="--", linewidth=1.2,
                   label=f"{what} limit {limit_kw:g} kW")
    ax.set_ylabel("kW")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower center", fontsize=8)


def _runs(values: list[Activity], wanted: Activity) -> Iterator[tuple[int, int]]:
    """(first, last + 1) of each run of ``wanted`` in ``values``."""
    start = None
    for i, value in enumerate([*values, None]):
        if value is wanted and start is None:
            start = i
        elif value is not wanted and start is not None:
            yield start, i
            start = None


def _lane(ax: Axes, lane: Lane, base: float, x: list[float], step: float,
          scale: float) -> None:
    height = LANE_FILL
    for activity_, (colour, _) in SHADES.items():
        spans = [(x[a], x[b - 1] - x[a] + step) for a, b in _runs(lane.activity, activity_)]
        if spans:
            ax.broken_barh(spans, (base, 0.9), facecolors=colour, alpha=0.55, linewidth=0)
    px, power = _changes(x, [base + height * p / scale for p in lane.power_kw])
    ax.fill_between(px, base, power, step="post", color=POWER, linewidth=0, alpha=0.9)
    ax.plot(*_changes(x, [base + height * v / scale if v is not None else math.nan
                          for v in lane.limit_kw]),
            drawstyle="steps-post", color=LIMIT, linewidth=0.8)


def _changes(x: list[float], y: list[float]) -> tuple[list[float], list[float]]:
    """The points of a step function (drawn steps-post) where it changes, and its last:
    the same drawing in far fewer points (a lane is mostly flat)."""
    keep = [i for i in range(len(y))
            if i in (0, len(y) - 1) or not _same(y[i], y[i - 1])]
    return [x[i] for i in keep], [y[i] for i in keep]


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def lanes_figure(report: ScenarioReport) -> Figure:
    """One lane per EVSE: its power (filled), the limit in force (red), on one scale,
    and shading while it was paused, faulted, unavailable or offline."""
    from matplotlib.patches import Patch  # noqa: PLC0415

    timeline = report.timeline
    lanes = sorted(timeline.lanes.values(), key=lambda lane: lane.name)[:MAX_LANES]
    fig = _figure(10.0, max(2.4, 0.26 * len(lanes) + 1.3))
    ax = fig.add_subplot()
    x = _x(timeline.times) if timeline.times else []
    step = (x[1] - x[0]) if len(x) > 1 else 1 / 1440
    # One scale for every lane, so that lanes compare: the highest power or limit seen.
    scale = max([0.0, *(max([*lane.power_kw, *(v for v in lane.limit_kw if v is not None)],
                            default=0.0) for lane in lanes)]) or 1.0
    for i, lane in enumerate(lanes):
        if x:
            _lane(ax, lane, float(len(lanes) - 1 - i), x, step, scale)
    ax.set_yticks([len(lanes) - 1 - i + 0.4 for i in range(len(lanes))],
                  [lane.name for lane in lanes], fontsize=7)
    ax.set_ylim(-0.2, max(len(lanes), 1))
    if x:
        ax.set_xlim(x[0], x[-1] + step)
    _time_axis(ax)
    ax.grid(True, axis="x", alpha=0.3)
    shown = f" (the first {len(lanes)} of {len(timeline.lanes)})" if (
        len(timeline.lanes) > len(lanes)) else ""
    ax.set_title(f"each EVSE{shown}: power and the limit in force (a lane's height is "
                 f"{scale / LANE_FILL:.3g} kW)")
    handles = [Patch(color=POWER, label="power"), Patch(color=LIMIT, label="limit in force")]
    handles += [Patch(color=colour, alpha=0.55, label=label)
                for colour, label in SHADES.values()]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=7)
    return fig


def site_power_svg(report: ScenarioReport) -> str:
    """The site-power plot as SVG text."""
    return _plot(site_power_figure, report, "svg").decode("utf-8")


def lanes_svg(report: ScenarioReport) -> str:
    """The lanes plot as SVG text."""
    return _plot(lanes_figure, report, "svg").decode("utf-8")


def _plot(make: Any, report: ScenarioReport, fmt: str) -> bytes:
    """``make(report)`` as ``svg`` or ``png`` bytes; the same report gives the same SVG
    bytes (ids salted per plot, so that two plots in one page never share one)."""
    matplotlib = _matplotlib()
    buffer = io.BytesIO()
    metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({**_SETTINGS, "svg.hashsalt": f"trio-csms-{make.__name__}"}):
        make(report).savefig(buffer, format=fmt, metadata=metadata, dpi=120)
    return buffer.getvalue()


def write_plot(report: ScenarioReport, path: Path) -> None:
    """Write the site-power plot to ``path``: SVG or PNG, by its suffix.

    Raises:
        ValueError: the suffix is neither ``.svg`` nor ``.png``.
        PlotsUnavailable: matplotlib is not installed.
    """
    fmt = path.suffix.lower().removeprefix(".")
    if fmt not in ("svg", "png"):
        raise ValueError(f"--plot {path}: the file name ends in .svg or .png")
    path.write_bytes(_plot(site_power_figure, report, fmt))
