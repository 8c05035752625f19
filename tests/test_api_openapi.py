"""The OpenAPI document: valid OpenAPI 3.1, and it documents every route the app serves."""

from __future__ import annotations

import re
from pathlib import Path

import trio
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.routing import Route

from api_helpers import api, running_csms
from csms.api import CSMS_ACTIONS, build_app
from csms.api.app import QUERY_PARAMETERS
from csms.api.openapi import openapi_document
from csms.app import Csms
from csms.config import CsmsConfig


def test_the_document_is_valid_openapi() -> None:
    validate(openapi_document())  # raises on any error


def test_every_route_is_documented_with_its_methods() -> None:
    app = build_app(Csms(CsmsConfig())).app
    assert isinstance(app, Starlette)
    paths = openapi_document()["paths"]
    for route in app.routes:
        assert isinstance(route, Route)
        # Starlette's {charge_point_id} is the document's {chargePointId}.
        path = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), route.path)
        assert path in paths, path
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in paths[path], (method, path)


def test_the_send_endpoint_lists_every_csms_action() -> None:
    params = openapi_document()["paths"]["/api/charge-points/{chargePointId}/ocpp16/{action}"][
        "parameters"]
    action = next(p for p in params if p["name"] == "action")
    assert action["schema"]["enum"] == list(CSMS_ACTIONS)


def test_docs_api_md_has_a_curl_example_for_every_endpoint() -> None:
    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    for path, operations in openapi_document()["paths"].items():
        for method in operations:
            if method == "parameters":
                continue
            prefix = path.split("{")[0].rstrip("/")
            pattern = rf"curl[^\n]*-X {method.upper()}[^\n]*{re.escape(prefix)}" if method != \
                "get" else rf"curl[^\n]*{re.escape(prefix)}"
            assert re.search(pattern, text), (method, path)


async def test_it_is_served(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with running_csms(tmp_path / "csms.db") as (csms, _port):
            served = await api(csms, "GET", "/api/openapi.json")
            assert served.status == 200
            assert served.body == openapi_document()


def test_every_route_takes_exactly_the_query_parameters_documented() -> None:
    app = build_app(Csms(CsmsConfig())).app
    assert isinstance(app, Starlette)
    paths = openapi_document()["paths"]
    for route in app.routes:
        assert isinstance(route, Route)
        path = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), route.path)
        for method in route.methods or ():
            if method == "HEAD":
                continue
            operation = paths[path][method.lower()]
            documented = {p["name"] for p in operation.get("parameters", [])
                          if p["in"] == "query"}
            assert documented == QUERY_PARAMETERS.get(route.path, set()), path
