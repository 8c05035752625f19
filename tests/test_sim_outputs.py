"""What a scenario run writes beside its text report, through the real CLI in a subprocess:
the self-contained HTML report, the site-power plot, JUnit XML for CI systems, JSON."""

from __future__ import annotations

import html.parser
import json
import re
import subprocess
import sys
from pathlib import Path

import junitparser
import pytest
import xmlschema

from sim.html_report import render_html
from sim.junit import junit_xml
from sim.timeline import Activity
from test_sim_scenarios import run_shipped

PYTHON = sys.executable
SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "data" / "junit.xsd")

#: A scenario with one check that holds and one that fails, saying what it observed.
FAILING = '''
from sim.simulator_runner import ScenarioContext

PARAMETERS = {"chargers": 1}


async def scenario(ctx: ScenarioContext) -> None:
    [cp] = await ctx.fleet.spawn(1, evses=1)
    await ctx.sleep(600)
    ctx.check(cp.online, f"[online] {cp.id} is offline")
    ctx.check(cp.connects == 7, f"[connects] {cp.id} connected {cp.connects} time(s), not 7")
    ctx.check(cp.connects == 8, f"[connects] {cp.id} connected {cp.connects} time(s), not 8")
'''


def sim(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "sim", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, check=False)


class Page(html.parser.HTMLParser):
    """Every tag and attribute of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read_page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_a_run_writes_a_standalone_html_report_a_plot_junit_and_json(tmp_path: Path) -> None:
    done = sim(tmp_path, "scenario", "morning_rush", "--chargers", "2", "--set", "hours=4",
               "--html", "report.html", "--plot", "site.svg", "--junit", "checks.xml",
               "--json", "report.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is True
    names = [check["name"] for check in report["checks"]]
    assert names == ["sessions", "delivery", "energy", "site-limit"]
    assert all(check["held"] > 0 and check["failed"] == 0 for check in report["checks"])

    page = read_page(tmp_path / "report.html")
    # Standalone: nothing to fetch. No scripts, stylesheets, images or frames from
    # elsewhere; the only references are to elements inside the page (the plots' clips).
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(page.tags)
    assert not [value for name, value in page.attributes if name == "src"]
    refs = [value for name, value in page.attributes if name in ("href", "xlink:href")]
    assert refs and all(value and value.startswith("#") for value in refs)
    assert "url(http" not in (tmp_path / "report.html").read_text()
    # The two plots, the checks, the sessions, the seed.
    assert page.tags.count("svg") == 2
    text = " ".join(page.text)
    for phrase in ("metered by the chargers", "received by the CSMS (MeterValues)",
                   "site limit 24 kW", "limit in force", "CP_02 EVSE_2", "all checks passed",
                   "site-limit", "EVDisconnected", "TAG-0001", "Seed and parameters"):
        assert phrase in text, phrase
    # The plot alone, the same drawing as in the page.
    svg = (tmp_path / "site.svg").read_text()
    assert svg.startswith("<?xml") and "metered by the chargers" in svg
    assert svg.split("<svg", 1)[1] in (tmp_path / "report.html").read_text()

    SCHEMA.validate(tmp_path / "checks.xml")
    suite = next(iter(junitparser.JUnitXml.fromfile(str(tmp_path / "checks.xml"))))
    assert suite.tests == 4 and suite.failures == 0
    assert [case.name for case in suite] == names
    assert all(case.is_passed for case in suite)


def test_failing_checks_are_junit_failures_saying_what_was_observed(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING)
    done = sim(tmp_path, "scenario", "failing.py", "--junit", "checks.xml", "--html",
               "report.html", "--plot", "site.png")
    assert done.returncode == 1, done.stderr
    assert "FAILED: [connects] CP_01 connected 1 time(s), not 7" in done.stdout
    SCHEMA.validate(tmp_path / "checks.xml")
    [suite] = list(junitparser.JUnitXml.fromfile(str(tmp_path / "checks.xml")))
    assert (suite.name, suite.tests, suite.failures) == ("failing", 2, 1)
    online, connects = suite
    assert online.name == "online" and online.is_passed
    assert connects.name == "connects" and not connects.is_passed
    [failure] = connects.result
    assert isinstance(failure, junitparser.Failure)
    assert failure.message == "[connects] CP_01 connected 1 time(s), not 7 (and 1 more)"
    assert failure.text.splitlines() == ["[connects] CP_01 connected 1 time(s), not 7",
                                         "[connects] CP_01 connected 1 time(s), not 8"]
    text = " ".join(read_page(tmp_path / "report.html").text)
    assert "2 check(s) failed" in text
    assert "[connects] CP_01 connected 1 time(s), not 8" in text
    assert (tmp_path / "site.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_bad_output_options_are_refused_before_the_run(tmp_path: Path) -> None:
    done = sim(tmp_path, "scenario", "basic_charge", "--plot", "site.pdf")
    assert done.returncode == 2
    assert "--plot site.pdf: the file name ends in .svg or .png" in done.stderr
    done = sim(tmp_path, "scenario", "basic_charge", "--junit", "no/such/dir/checks.xml")
    assert done.returncode == 2
    assert "no directory no/such/dir" in done.stderr
    assert not done.stdout  # nothing ran


def test_without_matplotlib_html_is_refused_with_the_install_line(tmp_path: Path) -> None:
    # A None entry in sys.modules makes `import matplotlib` raise ImportError.
    code = ("import sys; sys.modules['matplotlib'] = None; from sim.cli import main; "
            "sys.exit(main(['scenario', 'basic_charge', '--html', 'r.html']))")
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120, check=False)
    assert done.returncode == 2
    assert "pip install 'trio-csms[report]'" in done.stderr
    assert not (tmp_path / "r.html").exists()


def test_the_same_seed_gives_the_same_html_and_junit_bytes() -> None:
    first, second = run_shipped("fault_injection"), run_shipped("fault_injection")
    assert render_html(first) == render_html(second)
    assert junit_xml(first) == junit_xml(second)


def test_the_timeline_shows_the_fault_the_power_and_what_the_csms_received() -> None:
    report = run_shipped("fault_injection")
    lane = report.timeline.lanes["CP_01 EVSE_1"]
    times = report.timeline.times
    faulted = [t for t, a in zip(times, lane.activity, strict=True) if a is Activity.FAULTED]
    # fault_injection: charging from 00:30 for 30 min, faulted for 15 min, charging again.
    # The fault starts and ends on the instant of a sample (every minute, on the half
    # minute): whether the sample or the change runs first there is the seeded
    # scheduler's choice, so the faulted samples span 13 or 14 minutes.
    assert faulted
    assert (faulted[-1] - faulted[0]).total_seconds() in (13 * 60, 14 * 60)
    charging = [p for p, a in zip(lane.power_kw, lane.activity, strict=True)
                if a is Activity.CHARGING]
    assert charging and all(p == pytest.approx(11.0) for p in charging)
    assert report.timeline.site_kw == lane.power_kw  # one EVSE: the site is that EVSE
    assert report.timeline.peak()[0] == pytest.approx(report.totals["peak_site_kw"])
    # The CSMS received 11 kW too, and 0 once the fault stopped the transaction.
    assert report.csms_series is not None
    assert max(w for _, w in report.csms_series) == pytest.approx(11_000.0)


def test_the_docs_show_each_plot_beside_the_command_that_made_it() -> None:
    root = Path(__file__).parent.parent
    text = (root / "docs" / "simulator.md").read_text()
    shown = re.findall(r"!\[[^\]]*\]\(img/(\w+)\.svg\)", text)
    assert {"morning_rush", "unruly_fleet"} <= set(shown)
    for name in shown:
        command = f"python -m sim scenario {name} --plot docs/img/{name}.svg"
        assert command in text, command
        assert text.index(command) < text.index(f"](img/{name}.svg)")
        svg = (root / "docs" / "img" / f"{name}.svg").read_text()
        assert f"{name} (seed 1): site power" in svg and "received by the CSMS" in svg
    assert "](docs/img/morning_rush.svg)" in (root / "README.md").read_text()


#: Two chargers behind a 10 kW feeder that ignore every profile: the feeder's check fails.
UNRULY_FEEDER = '''
from sim.behaviour import IgnoreProfiles
from sim.ev import Ev
from sim.simulator_runner import ScenarioContext

PARAMETERS = {"feeder_kw": 10.0}


def site(params):
    return {"limit_kw": 100.0,
            "groups": {"yard": {"chargers": ["CP_01", "CP_02"], "limit_kw": params["feeder_kw"]}}}


async def scenario(ctx: ScenarioContext) -> None:
    chargers = await ctx.fleet.spawn(3, evses=1)
    for cp in chargers:
        if cp.id != "CP_03":
            cp.behaviour = IgnoreProfiles()
        await cp.plug_in(1, Ev(capacity_wh=60_000, soc=20.0, max_power_w=11_000))
        ctx.check(await cp.start_session(1, f"TAG-{cp.id}"), "[sessions] no start")
    await ctx.sleep(3600)
    for cp in chargers:
        await cp.unplug(1)
'''


def test_group_limits_are_plotted_and_checked(tmp_path: Path) -> None:
    (tmp_path / "feeder.py").write_text(UNRULY_FEEDER)
    done = sim(tmp_path, "scenario", "feeder.py", "--html", "r.html", "--json", "r.json",
               "--junit", "j.xml")
    assert done.returncode == 1, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    yard = report["totals"]["groups"]["yard"]
    assert yard["chargers"] == ["CP_01", "CP_02"] and yard["limit_kw"] == 10.0
    assert yard["csms_seen"]["peak_kw"] == pytest.approx(22.0)
    [failure] = report["failures"]
    assert failure.startswith("[group-limit] group yard: power reported in MeterValues "
                              "stayed above its 10 kW limit for ")
    assert [c["name"] for c in report["checks"]] == ["sessions", "site-limit", "group-limit"]
    text = " ".join(read_page(tmp_path / "r.html").text)
    assert "group yard (2 chargers)" in text and "group limit 10 kW" in text
    assert "site limit 100 kW" in text
    [suite] = list(junitparser.JUnitXml.fromfile(str(tmp_path / "j.xml")))
    assert [case.name for case in suite if not case.is_passed] == ["group-limit"]


def test_a_bad_site_section_exits_2_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "feeder.py").write_text(UNRULY_FEEDER)
    done = sim(tmp_path, "scenario", "feeder.py", "--set", "feeder_kw=-1")
    assert done.returncode == 2
    assert "must be finite and not negative" in done.stderr
    (tmp_path / "bad.py").write_text(UNRULY_FEEDER.replace('"limit_kw": 100.0,',
                                                           '"limit_kw": "lots",'))
    done = sim(tmp_path, "scenario", "bad.py")
    assert done.returncode == 2
    assert "scenario bad: site.limit_kw" in done.stderr, done.stderr
