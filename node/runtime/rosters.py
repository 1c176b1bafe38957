"""A running node's roster: settled at start, replaced at once when a newer one is published (SPEC §11.12).

``RosterKeeper`` owns what a roster change touches outside the database: the key files
(a staged key becomes current once the roster names it), the server's certificate
(``ServerCertificate``, reloaded without a restart) and the outbound channels (rebuilt
for members whose endpoint or certificate changed). The decisions and the writes are
``node.services.roster``'s, each in a job of the group commit.
"""

from __future__ import annotations

import asyncio
import logging

from node.config import NodeConfig, NodeMaterial
from node.config.keyring import KeyCandidates, NodeKeys, load_candidates, promote_keys, select_keys, staged_path
from node.runtime.channels import Channels
from node.runtime.clock import Clock
from node.runtime.commit import GroupCommit
from node.runtime.tasks import Background
from node.services.roster import (
    KeysFor,
    RosterChange,
    add_opening_key,
    adopt_roster,
    receive_roster,
    settle_roster_at_start,
)
from node.transport import ServerCertificate
from protocol.ack import Ack
from protocol.errors import ConfigurationError, IntelshareError
from protocol.keys import HpkeKeyPair, PublicSigningKey
from protocol.roster import Member
from protocol.statements import Signed

__all__ = ["RosterKeeper"]

log = logging.getLogger("intelshare.node")


class RosterKeeper:
    """Applies roster versions to a running node."""

    def __init__(
        self,
        cfg: NodeConfig,
        material: NodeMaterial,
        commit: GroupCommit,
        channels: Channels,
        background: Background,
        clock: Clock,
    ) -> None:
        self._cfg = cfg
        self._commit = commit
        self._channels = channels
        self._background = background
        self._clock = clock
        self._agreement_files = material.agreement_files
        self.keys: NodeKeys = material.keys
        #: Roster statements (by digest) stored and being put in place: a repeat waits for them.
        self._adopting: dict[str, asyncio.Future[None]] = {}
        self.server_certificate = ServerCertificate(material.tls_cert_pem, material.tls_key_pem, material.ca_pem)

    def _keys_for(self, candidates: KeyCandidates | None) -> KeysFor:
        def keys_for(member: Member) -> NodeKeys:
            if candidates is None:
                raise ConfigurationError(f"{self._cfg.path}: the node's key files do not load")
            return select_keys(self._cfg, candidates, member)

        return keys_for

    def _candidates(self) -> KeyCandidates | None:
        # Read again each time: a rotation stages its keys while the node runs.
        try:
            return load_candidates(self._cfg)
        except IntelshareError as exc:
            log.error("key files: %s", exc)
            return None

    def own_signing_keys(self) -> list[PublicSigningKey]:
        """Every signing key the node held: its own log's checkpoints verify with one of them."""
        return [self.keys.signing.public(), *(key.public() for key in self.keys.previous_signing)]

    async def watch_staged_hpke(self, *, interval: float = 1.0) -> None:
        """Open with a staged HPKE key as soon as a rotation writes it (SPEC §5.4.4); until cancelled.

        A peer that applies the roster naming the key before this node does seals to it;
        this node must open that envelope, or its stored refusal would be final (§11.3).
        """
        path = staged_path(self._cfg.keys.hpke)
        seen: int | None = None
        while True:
            await asyncio.sleep(interval)
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            if mtime == seen:
                continue
            seen = mtime
            try:
                staged = HpkeKeyPair.from_json(path.read_text(encoding="utf-8"))
            except (OSError, IntelshareError) as exc:
                log.error("staged HPKE key %s: %s", path, exc)
                continue
            await self._commit.run(add_opening_key, keys=staged)
            log.info("staged HPKE key %s loaded: envelopes sealed to it open", path.name)

    async def settle_at_start(self) -> None:
        """Run under the newest roster held (SPEC §11.12); refuses to start if the node has no keys for it."""
        candidates = load_candidates(self._cfg)
        change = await self._commit.run(
            settle_roster_at_start,
            agreement_files=self._agreement_files,
            keys_for=self._keys_for(candidates),
            now=self._clock(),
        )
        await self._adopt(change)

    async def publish(self, signed: Signed, source: str) -> Ack:
        """A roster version delivered by ``source``: verified, stored, audited and put in place at once."""
        answer = await self._commit.run(
            receive_roster, signed=signed, source=source, keys_for=self._keys_for(self._candidates()), now=self._clock()
        )
        if answer.change is not None:
            done = self._adopting[signed.digest] = asyncio.get_running_loop().create_future()
            try:
                await self._adopt(answer.change)
            finally:
                done.set_result(None)
                del self._adopting[signed.digest]
            log.info("roster v%d held (from %s)", answer.change.roster.version, source)
        elif (adopting := self._adopting.get(signed.digest)) is not None:
            # Stored by an earlier delivery and not yet in place: "held" must mean in force.
            await asyncio.shield(adopting)
        return answer.ack

    async def _adopt(self, change: RosterChange) -> None:
        if not await self._commit.run(adopt_roster, change=change):
            return  # a newer roster was put in place meanwhile
        previous = self.keys
        keys = change.keys or previous  # none matching: the node keeps the keys it has
        self.keys = keys
        if keys.tls.cert_pem != previous.tls.cert_pem:
            self.server_certificate.replace(keys.tls.cert_pem, keys.tls.key_pem)
        for channel in self._channels.update(change.roster, keys.tls.cert_pem, keys.tls.key_pem):
            self._background.spawn(channel.close(grace=1.0))
        if change.keys is None:
            return
        try:
            promote_keys(self._cfg, keys)
        except OSError as exc:  # the node runs with the new keys; the files catch up at the next start
            log.error("could not rename the key files: %s", exc)
