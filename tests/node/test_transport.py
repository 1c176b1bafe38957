"""mTLS transport: handshake acceptance/refusal, peer identity, port clash, health, reflection."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from node import pki
from node.transport import (
    CHANNEL_OPTIONS,
    SERVER_OPTIONS,
    PeerIdentity,
    PortInUseError,
    add_health_and_reflection,
    bind_secure,
    channel_credentials,
    peer_identity,
    server_credentials,
)

# TLS verifies validity against the real clock, so certificates are issued "now".
NOW = datetime.now(UTC)
WHOAMI = "/intelshare.test.Whoami/Get"
TEST_SERVICE = "intelshare.test.Whoami"
# Refused handshakes surface as UNAVAILABLE; a short deadline keeps those tests fast.
DEADLINE = 5.0


@dataclass(frozen=True)
class Party:
    cert_pem: bytes
    key_pem: bytes
    cert: x509.Certificate


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    server: Party
    client: Party
    stranger: Party  # issued by a different CA
    stranger_ca_pem: bytes


def _party(ca_key: pki.PrivateKey, ca_cert: x509.Certificate, member: str) -> Party:
    key, cert = pki.issue_member_cert(ca_key, ca_cert, member, now=NOW, valid_days=30)
    return Party(pki.cert_to_pem(cert), pki.key_to_pem(key), cert)


@pytest.fixture(scope="module")
def certs() -> Pki:
    ca_key, ca_cert = pki.make_ca("test federation", NOW, 365)
    other_key, other_cert = pki.make_ca("someone else", NOW, 365)
    return Pki(
        ca_pem=pki.cert_to_pem(ca_cert),
        server=_party(ca_key, ca_cert, "SRV"),
        client=_party(ca_key, ca_cert, "CLI"),
        stranger=_party(other_key, other_cert, "CLI"),
        stranger_ca_pem=pki.cert_to_pem(other_cert),
    )


async def _whoami(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    ident = peer_identity(context)
    if ident is None:
        return b"null"
    return json.dumps({"san_uris": list(ident.san_uris), "fingerprint": ident.fingerprint}).encode()


@asynccontextmanager
async def running_server(certs: Pki, address: str = "127.0.0.1:0") -> AsyncIterator[int]:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    handler = grpc.method_handlers_generic_handler(TEST_SERVICE, {"Get": grpc.unary_unary_rpc_method_handler(_whoami)})
    server.add_generic_rpc_handlers((handler,))
    await add_health_and_reflection(server, [TEST_SERVICE])
    creds = server_credentials(certs.server.cert_pem, certs.server.key_pem, certs.ca_pem)
    port = bind_secure(server, address, creds)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


def _run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


def test_ca_issued_client_passes_health_and_is_identified(certs: Pki) -> None:
    async def main() -> None:
        async with running_server(certs) as port:
            creds = channel_credentials(certs.client.cert_pem, certs.client.key_pem, certs.ca_pem)
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=CHANNEL_OPTIONS) as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                for service in ("", TEST_SERVICE):
                    resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=DEADLINE)
                    assert resp.status == health_pb2.HealthCheckResponse.SERVING
                raw = await ch.unary_unary(WHOAMI, None, None)(b"", timeout=DEADLINE)
        seen = json.loads(raw)
        assert seen == {
            "san_uris": [pki.member_san_uri("CLI")],
            "fingerprint": pki.cert_fingerprint(certs.client.cert_pem),
        }

    _run(main)


async def _expect_refused(port: int, creds: grpc.ChannelCredentials) -> None:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=CHANNEL_OPTIONS) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_from_unknown_ca_is_refused(certs: Pki) -> None:
    async def main() -> None:
        async with running_server(certs) as port:
            creds = channel_credentials(certs.stranger.cert_pem, certs.stranger.key_pem, certs.ca_pem)
            await _expect_refused(port, creds)

    _run(main)


def test_client_without_certificate_is_refused(certs: Pki) -> None:
    async def main() -> None:
        async with running_server(certs) as port:
            await _expect_refused(port, grpc.ssl_channel_credentials(root_certificates=certs.ca_pem))

    _run(main)


def test_client_refuses_server_it_does_not_trust(certs: Pki) -> None:
    async def main() -> None:
        async with running_server(certs) as port:
            creds = channel_credentials(certs.client.cert_pem, certs.client.key_pem, certs.stranger_ca_pem)
            await _expect_refused(port, creds)

    _run(main)


def test_second_server_on_same_port_fails(certs: Pki) -> None:
    async def main() -> None:
        async with running_server(certs) as port:
            second = grpc.aio.server(options=SERVER_OPTIONS)
            creds = server_credentials(certs.server.cert_pem, certs.server.key_pem, certs.ca_pem)
            try:
                with pytest.raises(PortInUseError) as info:
                    bind_secure(second, f"127.0.0.1:{port}", creds)
                assert str(port) in str(info.value)
            finally:
                await second.stop(None)

    _run(main)


def test_reflection_lists_registered_services(certs: Pki) -> None:
    async def main() -> None:
        async with running_server(certs) as port:
            creds = channel_credentials(certs.client.cert_pem, certs.client.key_pem, certs.ca_pem)
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=CHANNEL_OPTIONS) as ch:
                stub = reflection_pb2_grpc.ServerReflectionStub(ch)
                call = stub.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                    timeout=DEADLINE,
                )
                names = set()
                async for resp in call:
                    names |= {s.name for s in resp.list_services_response.service}
        assert names == {TEST_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME}

    _run(main)


def test_peer_identity_none_without_certificate() -> None:
    class Ctx:
        def auth_context(self) -> dict[str, list[bytes]]:
            return {"transport_security_type": [b"insecure"]}

    assert peer_identity(Ctx()) is None  # type: ignore[arg-type]
    assert PeerIdentity(("a",), "f") == PeerIdentity(("a",), "f")


def test_member_cert_shape_and_private_pem_mode(certs: Pki, tmp_path: Path) -> None:
    cert = pki.cert_from_pem(certs.client.cert_pem)
    assert pki.cert_san_uris(cert) == ("urn:intelshare:member:CLI",)
    assert pki.member_id_from_san_uri(pki.cert_san_uris(cert)[0]) == "CLI"
    assert len(pki.cert_fingerprint(cert)) == 64
    assert pki.cert_fingerprint(cert) == pki.cert_fingerprint(certs.client.cert_pem.decode())
    path = tmp_path / "member.key"
    path.write_text("old")
    path.chmod(0o644)
    key = pki.key_from_pem(certs.client.key_pem)
    pki.write_private_pem(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pki.key_from_pem(path.read_bytes()).private_numbers() == key.private_numbers()
