"""In-process runs only: the CSMS's records against the chargers' own, after the fleet has
stopped. What a CSMS must guarantee whatever its chargers do: every session the chargers
ran is closed at the CSMS, with the energy the charger's own meter measured, and nothing
is recorded twice.

It reads the CSMS's store through its public reading methods, as an auditor with the
database file would; it never writes, and the chargers never see it.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

from csms.storage.base import Store
from sim.charge_point import SimChargePoint

#: How a charger records a session its reboot made it forget (see SimChargePoint.reboot).
LOST_IN_REBOOT = "LostInReboot"


async def check_records(
    chargers: Iterable[SimChargePoint], store: Store, check: Callable[[bool, str], None]
) -> None:
    """Call ``check(condition, message)`` for every promise about the records."""
    chargers = list(chargers)
    state = await store.load_state()
    ours = {cp.id for cp in chargers}
    at_csms = [s for s in state.sessions.values() if s.charger_id in ours]
    by_tx = {s.transaction_id: s for s in at_csms}
    ran = [(cp.id, record) for cp in chargers for record in cp.sessions]
    check(len(at_csms) == len(ran),
          f"[duplicates] {len(at_csms)} sessions at the CSMS for {len(ran)} the chargers ran")
    for charger_id, record in ran:
        name = f"{charger_id} {record.evse} from {record.start:%H:%M:%S}"
        session = by_tx.get(record.transaction_id) if record.transaction_id else None
        if session is None:
            check(False, f"[records] {name}: no session at the CSMS")
            continue
        if session.open:
            why = " (the charger lost it in a reboot)" if (
                record.stop_reason == LOST_IN_REBOOT) else ""
            check(False, f"[closed] {name}: transaction {session.transaction_id} still open "
                  f"at the CSMS{why}")
            continue
        if record.stop_reason == LOST_IN_REBOOT or session.meter_stop is None:
            continue  # the charger never said how much: no meter to compare with
        energy = session.meter_stop - session.meter_start
        check(energy == round(record.energy_wh),
              f"[records] {name}: {energy} Wh at the CSMS, {record.energy_wh:.0f} Wh on the "
              f"charger's meter")
    seen: collections.Counter[tuple[object, ...]] = collections.Counter()
    for row in await store.read_samples():
        if row.charger_id in ours:
            sample = row.sample
            seen[(row.charger_id, row.connector_id, row.transaction_id, sample.timestamp,
                  sample.measurand, sample.phase, sample.context)] += 1
    twice = [key for key, count in seen.items() if count > 1]
    check(not twice, f"[duplicates] {len(twice)} sampled values stored more than once "
          f"(first: {twice[0] if twice else None})")
