"""Outbound mutual-TLS channels to the federation's members, one per member (SPEC §11.2)."""

from __future__ import annotations

import grpc

from node.errors import NotFoundError
from node.transport import CHANNEL_OPTIONS, channel_credentials
from protocol.roster import Roster

__all__ = ["Channels"]


class Channels:
    """A cached channel per member, to the endpoint the roster names."""

    def __init__(self, roster: Roster, cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> None:
        self._roster = roster
        self._ca_pem = ca_pem
        self._cert_pem = cert_pem
        self._credentials = channel_credentials(cert_pem, key_pem, ca_pem)
        self._channels: dict[str, grpc.aio.Channel] = {}

    def update(self, roster: Roster, cert_pem: bytes, key_pem: bytes) -> list[grpc.aio.Channel]:
        """Follow a new roster (SPEC §11.12); the channels to close, which the caller closes.

        A member that left, or whose endpoint or certificate changed, gets a new channel
        on its next call; all do when this node's own certificate changed. A call on a
        closed channel fails and its messages are retried on the new one (SPEC §11.6).
        """
        stale: list[str] = []
        if cert_pem != self._cert_pem:
            self._cert_pem = cert_pem
            self._credentials = channel_credentials(cert_pem, key_pem, self._ca_pem)
            stale = list(self._channels)
        else:
            for member_id in self._channels:
                old, new = self._roster.member(member_id), roster.member(member_id)
                if (
                    new is None
                    or old is None
                    or (old.endpoint, old.tls_fingerprint) != (new.endpoint, new.tls_fingerprint)
                ):
                    stale.append(member_id)
        self._roster = roster
        return [self._channels.pop(member_id) for member_id in stale]

    def get(self, member_id: str) -> grpc.aio.Channel:
        """The channel to ``member_id``; ``NotFoundError`` if the roster has no such member."""
        channel = self._channels.get(member_id)
        if channel is None:
            member = self._roster.member(member_id)
            if member is None:
                raise NotFoundError(f"{member_id} is not in the roster")
            channel = grpc.aio.secure_channel(member.endpoint, self._credentials, options=CHANNEL_OPTIONS)
            self._channels[member_id] = channel
        return channel

    async def reset(self, member_id: str, channel: grpc.aio.Channel) -> None:
        """Drop ``channel`` to ``member_id`` (if still the cached one) and close it; the next ``get`` dials anew.

        For a connection that stopped answering without being reset (packets dropped on
        the way, a firewall that lost its state): gRPC would go on using it until keepalive
        gives up on it, a minute or more; a new channel makes a new connection (SPEC §11.6).
        """
        if self._channels.get(member_id) is channel:
            del self._channels[member_id]
        await channel.close(None)

    async def close(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()
