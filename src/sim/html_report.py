"""The scenario report as one self-contained HTML page: the plots inline as SVG, the checks,
the sessions, the profile and call counts, the seed and the parameters. Nothing in it is
fetched from anywhere: the file opens offline, as a CI artifact or an e-mail attachment.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sim.plots import lanes_svg, site_power_svg
from sim.report import ScenarioReport

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff;
           font-weight: 600; }
.pass { background: #2e7d32; } .fail { background: #c62828; }
tr.failed td { background: #fdecea; }
figure { margin: 1em 0; } figure svg { width: 100%; height: auto; }
ul.observed { margin: 0; padding-left: 1.2em; }
code { font-size: 12px; }
"""


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], numeric: set[int] | None = None,
           row_class: Sequence[str] | None = None) -> str:
    numeric = numeric or set()
    out = ["<table>"]
    if head:
        out += ["<thead><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr></thead>"]
    out.append("<tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        out.append(f"<tr{cls}>")
        out += [f'<td class="n">{cell}</td>' if j in numeric else f"<td>{cell}</td>"
                for j, cell in enumerate(row)]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _inline(svg: str) -> str:
    """An SVG document as an element to put in HTML: without its XML prolog."""
    return re.sub(r"^\s*<\?xml[^>]*\?>\s*(<!DOCTYPE[^>]*>\s*)?", "", svg)


def _checks(report: ScenarioReport) -> str:
    if not report.checks:
        return "<p>This scenario made no checks.</p>"
    rows, classes = [], []
    for check in report.checks:
        failed = check["failed"]
        observed = "".join(f"<li>{_e(f)}</li>" for f in check["failures"])
        rows.append([f"<code>{_e(check['name'])}</code>",
                     '<span class="verdict fail">failed</span>' if failed
                     else '<span class="verdict pass">passed</span>',
                     _e(check["held"]), _e(failed),
                     f'<ul class="observed">{observed}</ul>' if observed else ""])
        classes.append("failed" if failed else "")
    return _table(["check", "result", "held", "failed", "what was observed"], rows,
                  numeric={2, 3}, row_class=classes)


def _summary(report: ScenarioReport) -> str:
    t = report.totals
    rows: list[list[Any]] = [
        ["chargers / EVSEs", f"{t['chargers']} / {t['evses']}"],
        ["sessions", t["sessions"]],
        ["energy", f"{t['energy_kwh']:.3f} kWh"],
        ["peak site power, metered", f"{t['peak_site_kw']:.2f} kW at {t['peak_site_at']}"],
    ]
    seen = t.get("csms_seen")
    if seen:
        rows.append(["peak site power, received by the CSMS",
                     f"{seen['peak_kw']:.2f} kW at {seen['peak_at']}; longest above the "
                     f"limit {seen['longest_over_limit_s']:.0f} s"])
    rows += [
        ["site limit", "none" if t["site_limit_kw"] is None else f"{t['site_limit_kw']:g} kW"],
        ["charging profiles received",
         f"{t['profiles_received']} ({t.get('profiles_per_session', 0.0):.2f} per session)"],
        ["OCPP calls", f"{t['calls_sent']} sent by the chargers, {t['calls_received']} by "
         "the CSMS"],
    ]
    return _table([], [[f"<b>{_e(a)}</b>", _e(b)] for a, b in rows])


def _sessions(report: ScenarioReport) -> str:
    rows = [[_e(s["charger"]), _e(s["evse"]), _e(s["id_tag"]), _e(s["start"]), _e(s["stop"]),
             f"{s['energy_kwh']:.3f}", f"{s['peak_kw']:.2f}", _e(s["stop_reason"]),
             _e(s["profiles_received"])] for s in report.sessions]
    return _table(["charger", "EVSE", "idTag", "start", "stop", "kWh", "peak kW", "reason",
                   "profiles"], rows, numeric={5, 6, 8})


def _profiles(report: ScenarioReport) -> str:
    rows = []
    for p in report.profiles:
        last = p["last"] or {}
        rows.append([_e(p["charger"]), _e(p["evse"]), _e(p["count"]), _e(last.get("purpose")),
                     _e(last.get("stack_level")), _e(last.get("first_limit")),
                     _e(last.get("unit"))])
    return _table(["charger", "EVSE", "profiles", "last: purpose", "stack level", "limit",
                   "unit"], rows, numeric={2, 4, 5})


def render_html(report: ScenarioReport) -> str:
    """The whole page.

    Raises:
        sim.plots.PlotsUnavailable: matplotlib is not installed.
    """
    verdict = ('<span class="verdict pass">all checks passed</span>' if report.passed
               else f'<span class="verdict fail">{len(report.failures)} check(s) failed</span>')
    params = _table(["parameter", "value"],
                    [[f"<code>{_e(k)}</code>", f"<code>{_e(json.dumps(v))}</code>"]
                     for k, v in sorted({"seed": report.seed, **report.params}.items())])
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_e(report.scenario)} (seed {report.seed}): scenario report</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Scenario <code>{_e(report.scenario)}</code>, seed {report.seed}</h1>
<p>{verdict}</p>
{_summary(report)}
<h2 id="checks">Checks</h2>
{_checks(report)}
<h2 id="site-power">Site power</h2>
<figure>{_inline(site_power_svg(report))}</figure>
<h2 id="evses">EVSEs</h2>
<figure>{_inline(lanes_svg(report))}</figure>
<h2 id="sessions">Sessions</h2>
{_sessions(report)}
<h2 id="profiles">Charging profiles received</h2>
{_profiles(report)}
<h2 id="parameters">Seed and parameters</h2>
{params}
{f"<h2 id='notes'>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body>
</html>
"""
