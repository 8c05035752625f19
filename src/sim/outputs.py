"""What ``python -m sim scenario`` writes besides its text report, and its baseline check:
``--json``, ``--html``, ``--plot``, ``--junit``, ``--baseline``, ``--update-baseline``.

Everything that can be refused is refused before the run (a wrong suffix, a missing
directory, no matplotlib, a baseline of another scenario, seed or parameters), so that a
long run never ends in a usage error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attrs import frozen

from sim import plots
from sim.baseline import (
    Tolerances,
    check_comparable,
    differences,
    format_differences,
    load_baseline,
)
from sim.config import ConfigError
from sim.html_report import render_html
from sim.junit import junit_xml
from sim.report import ScenarioReport


def default_baseline(scenario_file: Path) -> Path:
    """Where a scenario's baseline lives: ``baselines/NAME.json`` beside it (the built-in
    scenarios ship theirs)."""
    return scenario_file.parent / "baselines" / f"{scenario_file.stem}.json"


@frozen
class Outputs:
    """The files a scenario run writes, and the baseline it is held to.

    Attributes:
        baseline: the baseline file (None: no comparison).
        update_baseline: write the run as the baseline instead of comparing.
    """

    json: Path | None = None
    html: Path | None = None
    plot: Path | None = None
    junit: Path | None = None
    baseline: Path | None = None
    update_baseline: bool = False

    def check(self) -> None:
        """Refuse what cannot be written.

        Raises:
            ConfigError: naming the option and why.
        """
        if self.plot is not None and self.plot.suffix.lower() not in (".svg", ".png"):
            raise ConfigError(f"--plot {self.plot}: the file name ends in .svg or .png")
        if self.html is not None or self.plot is not None:
            try:
                plots.require_matplotlib()
            except plots.PlotsUnavailable as exc:
                raise ConfigError(f"--html/--plot: {exc}") from None
        for path in (self.json, self.html, self.plot, self.junit):
            if path is not None and not path.parent.is_dir():
                raise ConfigError(f"{path}: no directory {path.parent}")

    def load_baseline(self, scenario: str, seed: int,
                      params: dict[str, Any]) -> dict[str, Any] | None:
        """The baseline to compare with (None: none, or it is to be rewritten).

        Raises:
            sim.baseline.BaselineError: unreadable, or of another scenario, seed or
                parameters.
        """
        if self.baseline is None or self.update_baseline:
            return None
        data = load_baseline(self.baseline)
        check_comparable(data, scenario, seed, params, self.baseline)
        return data

    def write(self, report: ScenarioReport) -> None:
        """Write the files asked for."""
        if self.json is not None:
            self.json.write_text(report.to_json() + "\n", encoding="utf-8")
        if self.junit is not None:
            self.junit.write_text(junit_xml(report), encoding="utf-8")
        if self.plot is not None:
            plots.write_plot(report, self.plot)
        if self.html is not None:
            self.html.write_text(render_html(report), encoding="utf-8")

    def against_baseline(self, report: ScenarioReport,
                         baseline: dict[str, Any] | None) -> tuple[bool, str | None]:
        """Compare the run with ``baseline``, or write it as the baseline: (whether the run
        is the same, what to print)."""
        if self.baseline is None:
            return True, None
        if self.update_baseline:
            self.baseline.parent.mkdir(parents=True, exist_ok=True)
            self.baseline.write_text(report.to_json() + "\n", encoding="utf-8")
            return True, f"baseline {self.baseline} written"
        assert baseline is not None
        found = differences(baseline, json.loads(report.to_json()))
        if found:
            return False, format_differences(found, self.baseline)
        return True, (f"baseline {self.baseline}: the same, within the tolerances "
                      f"({Tolerances().describe()})")
