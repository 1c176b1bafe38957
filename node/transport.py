"""gRPC (grpc.aio) transport plumbing: mutual TLS credentials, options, peer identity,
health and reflection, and binding that fails loudly on a port clash.

Authorisation must use the peer certificate's SAN URI and fingerprint (see peer_identity),
never the common name; grpc's own peer_identities() silently falls back to the CN.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509

# Same module as the public grpc_health.v1.health.aio, which mypy sees as not re-exported.
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from node.pki import cert_fingerprint, cert_san_uris
from protocol.errors import ConfigurationError

__all__ = [
    "CHANNEL_OPTIONS",
    "MAX_MESSAGE_BYTES",
    "SERVER_OPTIONS",
    "STREAM_WINDOW_BYTES",
    "HealthServicer",
    "PeerIdentity",
    "PortInUseError",
    "ServerCertificate",
    "add_health_and_reflection",
    "bind_secure",
    "channel_credentials",
    "peer_identity",
    "server_credentials",
]

HealthServicer = health_aio.HealthServicer

# Default is 4 MiB each way; envelopes with attachments can be larger.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: HTTP/2 stream window (``grpc.http2.lookahead_bytes``), on both sides.
STREAM_WINDOW_BYTES = 4 * 1024 * 1024

# Client pings every 30 s even when idle (detects dead peers behind NAT/firewalls); the
# server below permits pings down to 10 s apart, so this never earns too_many_pings.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # A restarted peer should be reachable within seconds, not the 120 s default backoff.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 10_000),
    # Per-stream flow-control window: an EnvelopeBatch is a few hundred KiB, and the
    # default 64 KiB window made every batch wait for window updates.
    ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
)

SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Without this a second server can silently bind the same port (grpc/grpc#16005).
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 2),
    # Per-stream flow-control window: an EnvelopeBatch is a few hundred KiB, and the
    # default 64 KiB window made every batch wait for window updates.
    ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
)


class PortInUseError(ConfigurationError):
    """The server could not bind its address (normally: another process holds the port)."""

    def __init__(self, address: str, detail: str = "") -> None:
        self.address = address
        super().__init__(
            f"cannot listen on {address}: the port is in use or the address is not this host's"
            + (f" ({detail})" if detail else "")
        )


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """What the TLS handshake proved about the peer: its SAN URIs and cert fingerprint."""

    san_uris: tuple[str, ...]
    fingerprint: str


def server_credentials(cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> grpc.ServerCredentials:
    """Server credentials that demand a client certificate issued by ca_pem."""
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)],
        root_certificates=ca_pem,
        # Defaults to False, in which case the client is never asked for a certificate.
        require_client_auth=True,
    )


class ServerCertificate:
    """The server's certificate, replaced while the server runs when the roster rotates it (SPEC §11.12).

    ``credentials`` are gRPC's dynamic server credentials: before each new handshake gRPC
    asks ``_fetch`` whether the certificate changed, so connections opened after
    ``replace`` present the new one; open connections keep the old one until they close.
    Client certificates are still required and must chain to the federation CA.
    """

    def __init__(self, cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> None:
        self._ca_pem = ca_pem
        self._initial = self._config(cert_pem, key_pem)
        self._pending: Any = None

    def _config(self, cert_pem: bytes, key_pem: bytes) -> Any:
        return grpc.ssl_server_certificate_configuration([(key_pem, cert_pem)], root_certificates=self._ca_pem)

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials that demand a client certificate issued by the CA, with a certificate that can change."""
        return grpc.dynamic_ssl_server_credentials(self._initial, self._fetch, require_client_authentication=True)

    def replace(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Present this certificate from the next handshake on."""
        self._pending = self._config(cert_pem, key_pem)

    def _fetch(self) -> Any:
        # Called by gRPC (on its own thread) before a handshake: the new configuration once, else None.
        pending, self._pending = self._pending, None
        return pending


def channel_credentials(cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> grpc.ChannelCredentials:
    """Client credentials presenting our certificate and trusting only ca_pem."""
    return grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem)


@functools.lru_cache(maxsize=1024)
def _identity_from_pem(pem: bytes) -> PeerIdentity:
    # Parsed from the certificate itself: auth_context's SAN list loses the entry types,
    # so a DNS name could pass for a URI.
    cert = x509.load_pem_x509_certificate(pem)
    return PeerIdentity(san_uris=cert_san_uris(cert), fingerprint=cert_fingerprint(cert))


def peer_identity(context: grpc.aio.ServicerContext[Any, Any]) -> PeerIdentity | None:
    """The authenticated peer's identity, or None if it presented no certificate."""
    pem = next(iter(context.auth_context().get("x509_pem_cert", ())), None)
    if not pem:
        return None
    try:
        return _identity_from_pem(bytes(pem))
    except ValueError:
        return None


async def add_health_and_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> health_aio.HealthServicer:
    """Register health (SERVING for each service and "") and reflection; return the servicer.

    A coroutine because the asyncio health servicer's set() is one.
    """
    names = list(dict.fromkeys(service_names))
    servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ["", *names, health.SERVICE_NAME]:
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    return servicer


def _probe(address: str) -> None:
    """Raise ``PortInUseError`` if ``address`` (host:port) cannot be bound now.

    Checked with a plain socket first so that a clash is one typed error, without the
    gRPC core's own log line on stderr. ``SO_REUSEADDR`` as gRPC sets it: a port held
    only by connections closing (TIME_WAIT) is free, one with a listener is not.
    """
    host, _, port = address.rpartition(":")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise PortInUseError(address, str(exc)) from exc
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                raise PortInUseError(address, exc.strerror or str(exc)) from exc


def bind_secure(server: grpc.aio.Server, address: str, creds: grpc.ServerCredentials) -> int:
    """add_secure_port that raises PortInUseError instead of returning 0; returns the port.

    Use with SERVER_OPTIONS (so_reuseport=0), otherwise a clash may go unnoticed.
    """
    _probe(address)
    try:
        port = server.add_secure_port(address, creds)
    except RuntimeError as exc:
        raise PortInUseError(address, str(exc)) from exc
    if port == 0:
        raise PortInUseError(address)
    return int(port)
