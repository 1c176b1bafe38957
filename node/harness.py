"""Run a federation of node processes on loopback and talk to their desks.

Used by ``intelshare demo``, the integration tests, the benchmark and
``examples/scenario.py``. Nodes are separate processes started with ``subprocess``
(fork+exec), never forked from a process holding a gRPC channel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import grpc

from node.config import NodeConfig, load_node_config
from node.wire import desk_pb2, desk_pb2_grpc
from protocol.classification import Band
from protocol.item import RawData, ReportTemplate
from protocol.label import Category, InformationCredibility, Label, SourceReliability, UseLimitation
from protocol.roster import Roster
from protocol.statements import Signed

__all__ = ["DeskClient", "DeskError", "LocalFederation", "NodeProcess", "eventually", "make_label"]

_READY_TIMEOUT = 30.0


def eventually(predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


class DeskError(RuntimeError):
    """The desk refused an officer's request; ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DeskClient:
    """A node officer's client over the node's unix socket (``Desk`` service)."""

    def __init__(self, socket_path: Path, *, deadline: float = 15.0) -> None:
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        self.stub = desk_pb2_grpc.DeskStub(self.channel)
        self.deadline = deadline

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def call(self, method: str, request: Any) -> Any:
        """Call a Desk RPC; a refusal becomes ``DeskError`` with the node's message."""
        try:
            return getattr(self.stub, method)(request, timeout=self.deadline)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise DeskError(code, details or code) from exc

    def submit(self, label: Label, item: ReportTemplate | RawData, recipients: Sequence[str], suite: str = "") -> Any:
        """Share a new item; returns ``SubmitResponse``."""
        return self.call(
            "Submit",
            desk_pb2.SubmitRequest(
                label_json=label.model_dump_json(),
                item_json=item.model_dump_json(),
                recipients=list(recipients),
                suite=suite,
            ),
        )

    def reshare(self, item_id: str, recipients: Sequence[str], version: int = 1) -> Any:
        """Pass a held item on; returns ``SubmitResponse``."""
        return self.call(
            "Reshare", desk_pb2.ReshareRequest(item_id=item_id, item_version=version, recipients=list(recipients))
        )

    def inbox(self, limit: int = 100) -> list[Any]:
        """Held items, newest first."""
        return list(self.call("ListInbox", desk_pb2.ListInboxRequest(limit=limit)).entries)

    def read(self, item_id: str, version: int = 1) -> Any:
        """Read a held item (audited as an officer read)."""
        return self.call("ReadItem", desk_pb2.ReadItemRequest(item_id=item_id, item_version=version))

    def ask_consent(self, item_id: str, third_party: str, purpose: str, version: int = 1) -> Any:
        """Ask the originator for consent to pass an item to ``third_party``."""
        return self.call(
            "AskConsent",
            desk_pb2.AskConsentRequest(item_id=item_id, item_version=version, third_party=third_party, purpose=purpose),
        )

    def consent_requests(self, state: str = "") -> list[Any]:
        """Consent requests, incoming and outgoing."""
        return list(self.call("ListConsentRequests", desk_pb2.ListConsentRequestsRequest(state=state)).requests)

    def decide(
        self, request_id: str, *, grant: bool, reason: str = "", transferable: bool = False, valid_days: int = 30
    ) -> Any:
        """Grant or deny an incoming consent request."""
        return self.call(
            "DecideConsent",
            desk_pb2.DecideConsentRequest(
                request_id=request_id, grant=grant, reason=reason, transferable=transferable, valid_days=valid_days
            ),
        )

    def recall(self, item_id: str, reason: str, version: int = 1) -> Any:
        """Recall an item this node originated."""
        return self.call("Recall", desk_pb2.RecallRequest(item_id=item_id, item_version=version, reason=reason))

    def audit(self, after_seq: int = 0, limit: int = 1000, event: str = "") -> list[dict[str, Any]]:
        """Audit rows as dicts."""
        rows = self.call("QueryAudit", desk_pb2.QueryAuditRequest(after_seq=after_seq, limit=limit, event=event)).rows
        return [json.loads(row.json) | {"at": row.at} for row in rows]

    def outbox(self, state: str = "") -> list[Any]:
        """Outbox entries."""
        return list(self.call("Outbox", desk_pb2.OutboxRequest(state=state)).entries)

    def status(self) -> Any:
        """Node status."""
        return self.call("Status", desk_pb2.StatusRequest())

    def wait_settled(self, envelope_ids: Sequence[str], timeout: float = 20.0) -> dict[str, Any]:
        """Wait until each envelope left ``pending``; returns its outbox entry by id."""
        wanted = {e for e in envelope_ids if e}
        deadline = time.monotonic() + timeout
        while True:
            entries = {e.envelope_id: e for e in self.outbox() if e.envelope_id in wanted}
            if all(e.state != "pending" for e in entries.values()) and len(entries) == len(wanted):
                return entries
            if time.monotonic() > deadline:
                raise TimeoutError(f"deliveries still pending: {sorted(wanted)}")
            time.sleep(0.05)


@dataclass
class NodeProcess:
    """One node process."""

    member_id: str
    config_path: Path
    process: subprocess.Popen[str] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> NodeConfig:
        """The node's configuration."""
        return load_node_config(self.config_path)

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        """Start the process and wait for its ``ready`` line."""
        log = (self.config_path.parent / "node.log").open("a", encoding="utf-8")
        env = {**os.environ, **self.env, **(extra_env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "node", "run", "--config", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        _wait_ready(self.process, self.process.stdout, self.member_id)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill9(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def desk(self) -> DeskClient:
        """A desk client for this node."""
        return DeskClient(self.config.desk_socket)


def _wait_ready(process: subprocess.Popen[str], stdout: IO[str], member_id: str) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        line = stdout.readline()
        if "ready" in line:
            return
        if not line and process.poll() is not None:
            raise RuntimeError(f"node {member_id} exited with {process.returncode}; see its node.log")
    process.kill()
    raise RuntimeError(f"node {member_id} did not become ready in {_READY_TIMEOUT:.0f}s")


class LocalFederation:
    """A federation directory (from ``intelshare federation init``) and its node processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: dict[str, NodeProcess] = {}
        for config in sorted((root / "nodes").glob("*/node.toml")):
            member_id = config.parent.name
            self.nodes[member_id] = NodeProcess(member_id, config)

    @classmethod
    def create(cls, federation_toml: Path, root: Path, *, now: datetime | None = None) -> LocalFederation:
        """Initialise a federation directory from a federation TOML file."""
        from node.federation import init_federation

        init_federation(federation_toml, root, now=now or datetime.now(UTC))
        return cls(root)

    @property
    def roster(self) -> Roster:
        """The roster as written (not re-verified: nodes verify it themselves)."""
        signed = Signed.model_validate_json((self.root / "roster.json").read_bytes())
        return Roster.from_bytes(signed.payload)

    def start(self, members: Sequence[str] | None = None) -> None:
        """Start nodes (all by default)."""
        for member_id in members or list(self.nodes):
            self.nodes[member_id].start()

    def stop(self) -> None:
        """Stop every running node."""
        for node in self.nodes.values():
            node.stop()

    @contextmanager
    def running(self, members: Sequence[str] | None = None) -> Iterator[LocalFederation]:
        """Start nodes for the duration of a ``with`` block."""
        try:
            self.start(members)
            yield self
        finally:
            self.stop()

    def desk(self, member_id: str) -> DeskClient:
        """A desk client for a member's node."""
        return self.nodes[member_id].desk()


def make_label(
    roster: Roster,
    originator: str,
    *,
    band: Band,
    category: Category = Category.INTELLIGENCE,
    topics: Sequence[str] = ("terrorism",),
    releasable_to: Sequence[str] = (),
    retain_days: int = 180,
    now: datetime | None = None,
    grading: tuple[SourceReliability, InformationCredibility] = (
        SourceReliability.B,
        InformationCredibility.PROBABLY_TRUE,
    ),
    use_limitations: Sequence[UseLimitation] = (UseLimitation.INTELLIGENCE_USE_ONLY,),
    originator_controlled: bool = True,
) -> Label:
    """A label in the originator's own national marking."""
    marking = roster.marking(originator, band)
    if marking is None:
        raise ValueError(f"{originator} has no national marking for {band.title}")
    return Label(
        band=band,
        originator=originator,
        originator_marking=marking,
        category=category,
        topics=tuple(topics),
        releasable_to=tuple(releasable_to),
        originator_controlled=originator_controlled,
        use_limitations=tuple(use_limitations),
        retain_until=(now or datetime.now(UTC)) + timedelta(days=retain_days),
        source_reliability=grading[0],
        information_credibility=grading[1],
        item_version=1,
    )
