"""Run a federation of node processes on loopback and talk to their desks.

Used by ``intelshare demo``, the integration tests, the benchmark and
``examples/scenario.py``. Nodes are separate processes started with ``subprocess``
(fork+exec), never forked from a process holding a gRPC channel.
"""

from __future__ import annotations

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

from node.client import DeskClient
from node.config import NodeConfig, load_node_config
from node.federation import DUTY_OFFICER
from protocol.classification import Band
from protocol.label import Category, InformationCredibility, Label, SourceReliability, UseLimitation
from protocol.roster import Roster
from protocol.statements import Signed

__all__ = ["LocalFederation", "NodeProcess", "eventually", "make_label"]

_READY_TIMEOUT = 30.0


#: Entries a node appends on its own schedule, whatever a test or a desk call does (SPEC §11.10.8).
WITNESSING_EVENTS = ("CHECKPOINT_WITNESSED", "COSIGNATURE_RECEIVED")


def written_since(desk: DeskClient, head: int) -> list[dict[str, Any]]:
    """The entries a node appended after ``head``, but its witnessing (which runs on its own schedule)."""
    return [e for e in desk.audit(after_seq=head) if e["event"] not in WITNESSING_EVENTS]


def eventually(predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


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

    def desk(self, officer: str = DUTY_OFFICER) -> DeskClient:
        """A desk client for this node, as ``officer`` (the duty officer ``federation init`` made)."""
        config = self.config
        return DeskClient.for_officer(config.node_dir, config.desk_socket, officer)


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

    def desk(self, member_id: str, officer: str = DUTY_OFFICER) -> DeskClient:
        """A desk client for a member's node, as ``officer``."""
        return self.nodes[member_id].desk(officer)


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
