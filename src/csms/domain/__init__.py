"""The CSMS domain, pure: chargers, EVSEs, sessions, and the events that change them.

Nothing here does I/O or reads a clock. OCPP exchanges (a CALL and the answer we gave)
become events (:mod:`csms.domain.projection`); events fold into state
(:func:`csms.domain.state.apply`). The live CSMS and ``python -m csms replay`` run the
same projection and the same fold, which is why replay rebuilds the live state exactly.
"""
