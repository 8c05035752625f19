"""TLS for the OCPP server (security profiles 2 and 3): the server's context, and the
charge point's identity in its client certificate."""

from __future__ import annotations

import ssl
from typing import Any

import trio


class TlsConfigError(ValueError):
    """A certificate, key or CA file that cannot be used (the message names it)."""


def server_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """The server's TLS context: TLS 1.2 or later, its certificate chain and key; with
    ``client_ca``, client certificates are asked for and, when given, must chain to it
    (optional, so that profile 2 chargers without one still connect; profile 3 chargers
    are required to present one by the admission check).

    Raises:
        TlsConfigError: a file is missing or not what it should be.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"--tls-cert {cert} / --tls-key {key}: {exc}") from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsConfigError(f"--tls-client-ca {client_ca}: {exc}") from None
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def peer_common_name(stream: trio.abc.Stream) -> str | None:
    """The subject commonName of the verified client certificate on ``stream`` (a TLS
    stream after its handshake); None without TLS or without a certificate."""
    if not isinstance(stream, trio.SSLStream):
        return None
    cert: Any = stream.getpeercert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None
