"""The CSMS configuration: one frozen record, built from the command line."""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen

from csms.smart.site import SiteConfig

#: Largest WebSocket message accepted by default; a larger one closes the connection (1009).
DEFAULT_MAX_FRAME_SIZE = 1024 * 1024
#: CALLs a charge point may send at once before ``max_call_rate`` applies: a charger
#: delivering the transaction messages it queued while offline is not slowed.
CALL_BURST = 200.0


@frozen
class CsmsConfig:
    """Everything that may differ between dev, CI and production.

    Attributes:
        host: address the OCPP WebSocket server binds.
        port: its port (0 picks a free one).
        path_prefix: charge points connect to ``ws://host:port{path_prefix}{chargePointId}``.
        relaxed_ids: accept legacy charge point ids (any printable character but ``/``)
            instead of only letters, digits and ``-._~*=:+|@``; see :mod:`ocppj.identity`.
        strict_payloads: answer every CALL that breaks its schema with a CALLERROR.
            By default the transaction-bearing ones (StartTransaction, StopTransaction,
            MeterValues, StatusNotification, Authorize) are accepted when their meaning
            is clear, the usable data kept and the deviation recorded as an anomaly (see
            :mod:`ocppj.tolerance`).
        max_frame_size: largest incoming WebSocket message, in bytes.
        max_call_rate: CALLs per second one charge point may send on average (bursts of
            ``CALL_BURST``); past it its connection is read slower (None: no limit).
        max_connections: charge point connections at once; a new id beyond it is
            refused at the handshake (503). A reconnecting id always gets in.
        max_pending_handshakes: TCP connections that have not finished their WebSocket
            handshake; one more is closed at once. As many as a fleet that reconnects all
            at once after a restart (10,000: ``benchmarks/fleet_scale.py`` measured the
            storm 24 s with it, 30 s and 31,000 connections dropped unread with 1,000).
        heartbeat_interval: seconds, sent in the BootNotification answer.
        call_timeout: seconds from a CALL of ours being asked for to the charge point's
            answer, the wait behind its earlier CALLs included. Also how long a charge
            point's socket may take no bytes of a frame being sent: past that, a charger
            that does not read is dropped (1001; see :mod:`csms.ocpp.stall`).
        max_queued_calls: CALLs of ours that may wait behind the one outstanding at one
            charge point; one more is not sent (the API answers 429).
        drop_after_timeouts: consecutive CALLs of ours a charge point may leave unanswered
            before its connection is closed (1001) and it is recorded as disconnected;
            0: never.
        close_timeout: seconds allowed for a WebSocket closing handshake.
        shutdown_grace: seconds a shutdown lets chargers answer its 1001 close (all at
            once) before their sockets are dropped; the process exits about this long
            after SIGTERM.
        ping_interval: seconds without a frame from a charge point before the CSMS sends
            it a WebSocket ping (checked every half interval); None: never. Twice the
            usual 60 s meter interval, so a charger in a transaction is never pinged. A
            charger whose link died without a close (a power cut, a mobile network
            dropping it) is otherwise shown connected until the kernel gives up on the TCP
            connection, hours later.
        ping_timeout: seconds to wait for the pong; then the connection is closed (1001)
            and recorded as disconnected.
        db_path: the SQLite file (``:memory:`` keeps nothing after exit; the CLI's
            default is ``csms.db``).
        synchronous: SQLite ``PRAGMA synchronous`` (FULL: a commit survives power loss).
        db_inline: run SQLite on the event loop's own thread, blocking every connection
            during each commit. Only for virtual-time runs (the simulator's embedded
            CSMS), where a worker thread's wall-clock timing would decide the order of
            events at the same virtual instant; see :mod:`csms.storage.sqlite_db`.
        id_tags: idTag → idTagInfo status; tags not listed get ``unknown_id_tags``.
        unknown_id_tags: the idTagInfo status of an idTag with no data: ``Accepted``
            (the library default: the simulator's scenarios need no tag list) or
            ``Invalid`` (``python -m csms``'s default: an unknown card does not charge).
        concurrent_tx: what a StartTransaction gets for an idTag that has an open session
            on another connector (of any charge point): ``allow`` (its status as it is; the
            library default, for scenarios whose EVs share tags) or ``refuse``
            (ConcurrentTx, which OCPP 1.6 defines for StartTransaction only;
            ``python -m csms``'s default). The session is recorded either way.
        unknown_chargers: charge points with no registration: ``accept`` (as if
            registered and accepted; the library default, for development and the
            simulator's embedded CSMS), ``pending`` (registered as pending at their first
            connection; BootNotification answered Pending until an operator accepts them)
            or ``reject`` (refused at the handshake, 404). See :mod:`csms.registry`.
        security_profile: the OCPP security profile of charge points whose registration
            names none: 0 (no authentication), 1 (HTTP Basic with the charger's
            password), 2 (the same over TLS), 3 (TLS with a client certificate).
        tls_cert, tls_key: PEM files of the server's certificate chain and key; with both,
            the OCPP server speaks TLS only (``wss://``).
        tls_client_ca: PEM file of the CA that client certificates must chain to
            (profile 3); certificates are then asked for, and optional for others.
        site: the site model; with a site or group limit, smart charging is on.
        api_host: address the operator HTTP API binds (loopback by default: it can send
            any command to any charger, so expose it deliberately).
        api_port: its port (0 picks a free one); None runs no API. The library default
            is None; ``python -m csms`` serves it on 8180 unless ``--no-api``.
        api_token: a bearer token every API request must carry; None: the environment's
            ``CSMS_API_TOKEN``, if set, else no token is asked for. Without one, the API
            refuses to start on an address beyond loopback.
        api_allowed_hosts: host names, besides loopback's and ``api_host``, that requests
            may carry in ``Host`` (the names operators reach the API by).
    """

    host: str = "127.0.0.1"
    port: int = 9000
    path_prefix: str = "/ocpp/"
    relaxed_ids: bool = False
    strict_payloads: bool = False
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_call_rate: float | None = None
    max_connections: int = 20_000
    max_pending_handshakes: int = 10_000
    heartbeat_interval: int = 300
    call_timeout: float = 30.0
    max_queued_calls: int = 16
    drop_after_timeouts: int = 3
    close_timeout: float = 5.0
    shutdown_grace: float = 1.0
    ping_interval: float | None = 120.0
    ping_timeout: float = 30.0
    db_path: str = ":memory:"
    synchronous: str = "FULL"
    db_inline: bool = False
    id_tags: Mapping[str, str] = field(factory=dict)
    unknown_id_tags: str = "Accepted"
    concurrent_tx: str = "allow"
    unknown_chargers: str = "accept"
    security_profile: int = 0
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    site: SiteConfig = field(factory=SiteConfig)
    api_host: str = "127.0.0.1"
    api_port: int | None = None
    api_token: str | None = None
    api_allowed_hosts: tuple[str, ...] = ()
