"""The CLI's clients of a running CSMS's operator API: ``send``, ``tags``,
``transactions`` and ``chargers``.

Exit codes: 0 ok; 1 the charge point answered with a CALLERROR or refused (a status other
than Accepted / Scheduled / RebootRequired / Unlocked), or the record does not exist; 2 bad
usage, or the API answered 400 / 401 / 403 / 415; 3 nothing was sent, so trying again is
safe: the API cannot be reached, the charge point is not connected (404), too many
commands already wait for it (429), or the command did not leave before its deadline or
its connection closed (503); 4 the command was sent and its outcome
is unknown, so do not repeat it blindly: the connection closed before the answer (502; a
Reset reboots without answering) or no answer came in time (504).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from csms.api.actions import CSMS_ACTIONS
from csms.api.client import DEFAULT_API, ApiResponse, ApiUnreachable, call_api, quote
from csms.authorization import STATUSES
from csms.passwords import new_password
from csms.registry import STATUSES as REGISTRATION_STATUSES

#: The commands this module runs.
CLIENT_COMMANDS = frozenset({"send", "tags", "transactions", "chargers"})


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=DEFAULT_API,
                        help="the CSMS's operator API (default: %(default)s)")
    parser.add_argument("--token", default=os.environ.get("CSMS_API_TOKEN"),
                        help="bearer token (default: $CSMS_API_TOKEN)")


def client_commands(commands: Any) -> None:
    """Add the API client commands to ``commands`` (the main parser's subparsers)."""
    send = commands.add_parser(
        "send", help="send an OCPP 1.6 command to a connected charge point; print the answer"
    )
    send.add_argument("charge_point", metavar="CHARGE_POINT")
    send.add_argument("action", metavar="ACTION", help=", ".join(CSMS_ACTIONS))
    send.add_argument("payload", metavar="PAYLOAD", nargs="?", default="{}",
                      help="the OCPP payload as JSON (default: {})")
    send.add_argument("--timeout", type=float, default=None,
                      help="seconds to wait for the answer (default: the CSMS's)")
    _client_options(send)
    tags = commands.add_parser("tags", help="the idTags' authorization data")
    tag_commands = tags.add_subparsers(dest="tags_command", metavar="SUBCOMMAND", required=True)
    tag_set = tag_commands.add_parser("set", help="set an idTag's status, expiry, parent")
    tag_set.add_argument("id_tag", metavar="ID_TAG")
    tag_set.add_argument("--status", default="Accepted", choices=sorted(STATUSES))
    tag_set.add_argument("--expiry", default=None, metavar="ISO",
                         help="expiryDate, ISO 8601 (past it, Accepted answers Expired)")
    tag_set.add_argument("--parent", default=None, metavar="TAG", help="parentIdTag")
    _client_options(tag_set)
    for name, text in (("get", "print an idTag's data"), ("delete", "remove an idTag's data")):
        command = tag_commands.add_parser(name, help=text)
        command.add_argument("id_tag", metavar="ID_TAG")
        _client_options(command)
    transactions = commands.add_parser("transactions", help="list transactions, newest first")
    transactions.add_argument("--active", action="store_true", help="only open ones")
    transactions.add_argument("--charge-point", default=None)
    transactions.add_argument("--id-tag", dest="tx_id_tag", default=None)
    transactions.add_argument("--limit", type=int, default=20)
    transactions.add_argument("--json", action="store_true", help="print JSON for scripts")
    _client_options(transactions)
    _charger_commands(commands)


def _charger_commands(commands: Any) -> None:
    chargers = commands.add_parser(
        "chargers", help="the charger registry: which charge points may connect, and how"
    )
    sub = chargers.add_subparsers(dest="chargers_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="every registered charge point")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    _client_options(listing)
    add = sub.add_parser("add", help="register a charge point (or change its registration)")
    add.add_argument("charge_point", metavar="CHARGE_POINT")
    add.add_argument("--status", default=None, choices=list(REGISTRATION_STATUSES),
                     help="(default: accepted for a new one, else unchanged)")
    add.add_argument("--security-profile", type=int, default=None, choices=[0, 1, 2, 3],
                     help="(default: the CSMS's --security-profile)")
    _password_options(add)
    _client_options(add)
    for name, text in (("accept", "accept a pending charge point (triggers its boot)"),
                       ("disable", "refuse its connections (closes a live one)"),
                       ("remove", "delete its registration"),
                       ("rotate-key", "send a connected charger a new AuthorizationKey"),
                       ("show", "print its registration")):
        command = sub.add_parser(name, help=text)
        command.add_argument("charge_point", metavar="CHARGE_POINT")
        _client_options(command)
    password = sub.add_parser("password", help="set a charge point's password (profiles 1, 2)")
    password.add_argument("charge_point", metavar="CHARGE_POINT")
    _password_options(password, required=True)
    _client_options(password)


def _password_options(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--password-stdin", action="store_true",
                       help="read the password (16-40 characters) from standard input")
    group.add_argument("--generate-password", action="store_true",
                       help="make a random 40-character password and print it once")


#: Answer statuses that mean the charge point did what it was asked.
_DONE_STATUSES = frozenset({"Accepted", "Scheduled", "RebootRequired", "Unlocked"})


def _exit_code(response: ApiResponse) -> int:
    """The exit code of an API client command for ``response`` (see the module doc)."""
    if response.status in (400, 401, 403, 405, 415):
        return 2
    if response.status in (404, 429, 503):
        return 3
    if response.status in (502, 504):
        return 4
    if response.status >= 300:
        return 1
    body = response.body
    if isinstance(body, dict) and "error" in body:
        return 1
    result = body.get("result") if isinstance(body, dict) else None
    if isinstance(result, dict) and "status" in result and result["status"] not in _DONE_STATUSES:
        return 1
    return 0


def _print_response(response: ApiResponse) -> None:
    if response.body is None:
        return
    stream = sys.stdout if response.status < 400 else sys.stderr
    print(json.dumps(response.body, indent=2), file=stream)


def run_client(args: argparse.Namespace) -> int:
    """Run one API client command; returns the exit code."""
    try:
        if args.command == "send":
            return _send(args)
        if args.command == "tags":
            return _tags(args)
        if args.command == "chargers":
            return _chargers(args)
        return _transactions(args)
    except ApiUnreachable as exc:
        print(f"python -m csms {args.command}: cannot reach the API: {exc}", file=sys.stderr)
        return 3


def _send(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        print(f"python -m csms send: PAYLOAD is not JSON: {exc}", file=sys.stderr)
        return 2
    response = call_api(
        args.api, "POST",
        f"/api/charge-points/{quote(args.charge_point)}/ocpp16/{quote(args.action)}",
        body=payload, query={"timeout": args.timeout}, token=args.token,
        timeout=(args.timeout or 60.0) + 30.0,
    )
    _print_response(response)
    return _exit_code(response)


def _tags(args: argparse.Namespace) -> int:
    path = f"/api/id-tags/{quote(args.id_tag)}"
    if args.tags_command == "set":
        body = {"status": args.status, "expiryDate": args.expiry, "parentIdTag": args.parent}
        response = call_api(args.api, "PUT", path, body=body, token=args.token)
    elif args.tags_command == "get":
        response = call_api(args.api, "GET", path, token=args.token)
    else:
        response = call_api(args.api, "DELETE", path, token=args.token)
    _print_response(response)
    if response.status == 404:
        return 1  # the idTag has no data (the API was reached)
    return _exit_code(response)


def _transactions(args: argparse.Namespace) -> int:
    query = {"chargePoint": args.charge_point, "idTag": args.tx_id_tag,
             "active": True if args.active else None, "limit": args.limit}
    response = call_api(args.api, "GET", "/api/transactions", query=query, token=args.token)
    if response.status != 200 or args.json:
        _print_response(response)
        return _exit_code(response)
    rows = response.body or []
    print(f"{'id':>6}  {'charge point':<14} {'conn':>4}  {'idTag':<20} {'started':<24} "
          f"{'stopped':<24} {'energy Wh':>10}  reason")
    for tx in rows:
        print(f"{tx['transactionId']:>6}  {tx['chargePoint']:<14} {tx['connectorId']:>4}  "
              f"{tx['idTag']:<20} {tx['startTimestamp']:<24} "
              f"{(tx['stopTimestamp'] or 'active'):<24} {tx['energyWh']:>10.0f}  "
              f"{tx['stopReason'] or ''}")
    return 0


def _chargers(args: argparse.Namespace) -> int:
    command = args.chargers_command
    if command == "list":
        response = call_api(args.api, "GET", "/api/registrations", token=args.token)
        if response.status != 200 or args.json:
            _print_response(response)
            return _exit_code(response)
        print(f"{'charge point':<24} {'status':<9} {'profile':>7}  {'password':<8}  connected")
        for row in response.body or []:
            print(f"{row['chargePoint']:<24} {row['status']:<9} "
                  f"{row['effectiveSecurityProfile']:>7}  "
                  f"{'set' if row['passwordSet'] else '-':<8}  "
                  f"{'yes' if row['connected'] else 'no'}")
        return 0
    path = f"/api/registrations/{quote(args.charge_point)}"
    if command == "rotate-key":
        response = call_api(args.api, "POST", path + "/authorization-key", body={},
                            token=args.token)
        _print_response(response)
        return _exit_code(response)
    if command in ("show", "remove"):
        method = "GET" if command == "show" else "DELETE"
        response = call_api(args.api, method, path, token=args.token)
        _print_response(response)
        return 1 if response.status == 404 else _exit_code(response)
    body: dict[str, Any] = {}
    if command == "accept":
        body["status"] = "accepted"
    elif command == "disable":
        body["status"] = "disabled"
    elif command == "add":
        if args.status is not None:
            body["status"] = args.status
        if args.security_profile is not None:
            body["securityProfile"] = args.security_profile
    generated = None
    if getattr(args, "password_stdin", False):
        body["password"] = sys.stdin.readline().rstrip("\r\n")
    elif getattr(args, "generate_password", False):
        body["password"] = generated = new_password()
    response = call_api(args.api, "PUT", path, body=body, token=args.token)
    _print_response(response)
    if generated is not None and response.status == 200:
        # Printed once, for the charger's AuthorizationKey; the CSMS keeps only its hash.
        print(f"password: {generated}")
    return _exit_code(response)
