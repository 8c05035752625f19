"""The operator HTTP API of the CSMS (JSON; OpenAPI at ``/api/openapi.json``).

Public API: :func:`build_app` (the ASGI app over a running :class:`csms.app.Csms`),
:func:`serve_api` (hypercorn's trio worker, for ``nursery.start``), :data:`CSMS_ACTIONS`,
and :mod:`csms.api.client`, the thin client the CLI uses.
"""

from __future__ import annotations

from csms.api.actions import CSMS_ACTIONS
from csms.api.app import build_app
from csms.api.server import serve_api

__all__ = ["CSMS_ACTIONS", "build_app", "serve_api"]
