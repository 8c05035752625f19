"""The scenario report's view of the site power the CSMS received (pure)."""

from __future__ import annotations

import datetime

from csms.domain.meter import Sample
from csms.storage.base import SampleRow
from sim.report import site_power_seen

T0 = datetime.datetime(2026, 1, 5, 9, 0, tzinfo=datetime.UTC)


def power(tx: int, minute: int, watts: float) -> SampleRow:
    at = T0 + datetime.timedelta(minutes=minute)
    sample = Sample(timestamp=at.isoformat(), value=str(watts), measurand="Power.Active.Import",
                    unit="W", phase=None, context=None, location=None, format=None,
                    number=watts)
    return SampleRow("CP_01", tx, tx, at, sample)


def test_a_session_the_csms_closed_stops_counting_when_it_closed() -> None:
    # Tx 1 is lost in a reboot at 09:01 (closed as orphaned: no StopTransaction, no last
    # 0 W reading); tx 2 then draws 8 kW from 09:02 on a 10 kW site.
    samples = [power(1, 0, 6_000.0), power(2, 2, 8_000.0), power(2, 3, 8_000.0),
               power(2, 4, 8_000.0), power(1, 5, 6_000.0)]  # tx 1's reading delivered late
    ended = {1: T0 + datetime.timedelta(minutes=1)}
    # Counted at its last reading for ever, tx 1 put the site 4 kW over for minutes.
    assert site_power_seen(samples, 10_000.0)["longest_over_limit_s"] == 180.0
    seen = site_power_seen(samples, 10_000.0, ended)
    assert seen["longest_over_limit_s"] == 0.0
    assert seen["peak_kw"] == 8.0
