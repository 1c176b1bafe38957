"""The end of the trainers' demo: an auditor's view across the federation (SPEC §11.10).

``witnessed`` runs while the nodes do: it waits until every log is co-signed by a peer
up to its last entry and shows who witnessed what. ``audit_after`` runs once they have
stopped: an auditor reconciles the five logs from audit bundles alone, then an insider
at TR deletes the entry of the item it received from KZ, re-chains the log and signs
it again with TR's own key, in a copy of the federation; the other members' signed
checkpoints and TR's own receipt name the entry, and the item's trace shows the gap.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.table import Table

from node import audit
from node.audit.bundle import BundleError, open_bundle, write_bundle
from node.audit.reconcile import reconcile
from node.audit.sources import AuditView, bundle_view, federation_view, pins_for, roster_from_bundles
from node.audit.trace import trace
from node.cli.oversight import trace_tree
from node.config import load_material, load_node_config
from node.config.material import read_secretariat
from node.harness import LocalFederation, eventually
from node.insider import Insider
from node.store import make_reader, make_sessionmaker

__all__ = ["audit_after", "witnessed"]

#: Entries about witnessing itself start no new exchange (SPEC §11.10.8).
_WITNESS_EVENTS = ("CHECKPOINT_WITNESSED", "COSIGNATURE_RECEIVED")


class Narrator(Protocol):
    """What the demo's transcript offers (``node.demo.Transcript``)."""

    console: Console

    def step(self, title: str, story: str) -> None: ...

    def expect(self, what: str, ok: bool, got: str) -> None: ...


def _rows(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql, args).fetchall()


def _database(root: Path, member: str) -> Path:
    return Path(load_node_config(root / "nodes" / member / "node.toml").database_url.removeprefix("sqlite:///"))


def _last_entry(root: Path, member: str) -> int:
    marks = ",".join("?" * len(_WITNESS_EVENTS))
    sql = f"SELECT coalesce(max(seq), 0) FROM audit_log WHERE event NOT IN ({marks})"  # noqa: S608 (placeholders)
    return int(str(_rows(_database(root, member), sql, *_WITNESS_EVENTS)[0][0]))


def _witnesses(root: Path, members: tuple[str, ...], member: str) -> dict[str, int]:
    """Each peer that co-signed ``member``'s log, and the largest size it co-signed."""
    sql = "SELECT max(size) FROM witnessed_checkpoints WHERE member = ?"
    held = {peer: _rows(_database(root, peer), sql, member)[0][0] for peer in members if peer != member}
    return {peer: int(str(size)) for peer, size in held.items() if size is not None}


def witnessed(fed: LocalFederation, t: Narrator, members: tuple[str, ...]) -> None:
    """Wait until each log is witnessed up to its last entry; show the witnesses."""
    t.step(
        "Every node's log is witnessed by its partners",
        "After every commit a node signs a checkpoint of its log (its size and Merkle root). Its agreement "
        "partners co-sign each new checkpoint only if it extends the last one they co-signed, and keep it. "
        "From then on no one at that node can rewrite what the checkpoint covers without the partners noticing.",
    )
    table = Table(title="Checkpoints and witnesses")
    for column in ("log", "entries", "co-signed by (up to entry)"):
        table.add_column(column)

    def covered(member: str) -> bool:
        return max(_witnesses(fed.root, members, member).values(), default=0) >= _last_entry(fed.root, member)

    revoked = _revoked(fed.root, members)
    for member in members:
        held = _witnesses(fed.root, members, member)
        if member in revoked:  # its checkpoints are signed with a revoked key: no witness counts them now
            table.add_row(member, str(_last_entry(fed.root, member)), "key revoked: no longer witnessed")
            continue
        done = eventually(partial(covered, member), timeout=60)
        held = _witnesses(fed.root, members, member)
        table.add_row(member, str(_last_entry(fed.root, member)), ", ".join(f"{p} ({s})" for p, s in held.items()))
        t.expect(f"{member}'s log is co-signed by a partner", done, ", ".join(held) or "no witness")
    t.console.print(table)


def _revoked(root: Path, members: tuple[str, ...]) -> set[str]:
    """The members whose signing key the federation's roster has revoked (an earlier step may have)."""
    roster = federation_view(root).roster
    return {m for m in members if roster.trusted_signer(m) is None}


def _verify(view: AuditView, member: str) -> audit.AuditReport:
    engine = make_reader(view.sources[member].url)
    try:
        with make_sessionmaker(engine)() as session:
            return audit.verify(session, roster=view.roster, member=member, pins=pins_for(view, member))
    finally:
        engine.dispose()


def _bundle_all(root: Path, members: tuple[str, ...], out: Path) -> list[Path]:
    out.mkdir(exist_ok=True)
    paths = []
    for member in members:
        material = load_material(load_node_config(root / "nodes" / member / "node.toml"))
        path = out / f"{member}.bundle"
        path.unlink(missing_ok=True)
        write_bundle(
            material.config.database_url,
            path,
            member=member,
            federation=material.roster.federation,
            key=material.signing_key,
            now=datetime.now(UTC),
        )
        paths.append(path)
    return paths


def audit_after(fed: LocalFederation, t: Narrator, members: tuple[str, ...]) -> None:
    """With the nodes stopped: reconcile from bundles, then catch an insider's rewrite."""
    root = fed.root
    t.step(
        "An auditor reconciles the federation from audit bundles",
        "Each node exports a signed bundle of its audit data (metadata and digests, never content). The "
        "auditor holds only the secretariat's public keys: it takes the roster from the bundles, checks "
        "each bundle against it, verifies every log against its checkpoints and what the other members "
        "hold, and compares both sides of every transfer, consent and recall.",
    )
    revoked = _revoked(root, members)
    bundles = dict(zip(members, _bundle_all(root, members, root / "bundles"), strict=True))
    roster = roster_from_bundles(list(bundles.values()), read_secretariat(root / "secretariat.json"))
    in_force = federation_view(root).roster.version
    t.expect(
        "the bundles carry the roster in force, signed by the secretariat",
        roster.version == in_force,
        f"version {roster.version}",
    )
    for member in sorted(revoked):  # signed with a key the roster revoked: not evidence of anything
        try:
            open_bundle(bundles[member], roster=roster)
        except BundleError as exc:
            t.expect(f"{member}'s bundle is refused: its key was revoked", True, str(exc).split(": ", 1)[-1])
        else:
            t.expect(f"{member}'s bundle is refused: its key was revoked", False, "accepted")
    trusted = tuple(m for m in members if m not in revoked)
    view = bundle_view(roster, [bundles[m] for m in trusted])
    broken = [m for m in trusted if not _verify(view, m).ok]
    t.expect("every other bundled log verifies", not broken, ", ".join(broken) or f"{len(trusted)} logs")
    mismatches = reconcile(view)
    t.expect("the logs reconcile: no mismatch", not mismatches, f"{len(mismatches)} mismatches")

    copy = root.with_name(root.name + "-insider")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("*.sock", "bundles"))
    ingress = _rows(
        _database(copy, "TR"),
        "SELECT seq, item_id FROM audit_log WHERE event = 'INGRESS' AND allowed AND peer = 'KZ' ORDER BY seq LIMIT 1",
    )
    t.step(
        "An insider at TR covers its tracks",
        f"In a copy of the federation ({copy}), someone with TR's database and key files deletes the entry "
        "recording the item TR received from KZ, re-links every later entry, moves the head and signs a "
        "fresh checkpoint with TR's own key. Nothing inside TR's database contradicts the rewrite any more.",
    )
    if not ingress:
        t.expect("TR's log holds an item received from KZ", False, "none")
        return
    seq, item_id = int(str(ingress[0][0])), str(ingress[0][1])
    Insider(copy, "TR").rewrite(lambda entries: [e for e in entries if e["seq"] != seq])
    copied = federation_view(copy)
    report = _verify(copied, "TR")
    named = next((p for p in report.problems if p.seq == report.first_altered), None)
    t.expect(
        f"verify finds the rewrite at TR's entry {seq}, from what KZ and the others hold",
        named is not None and named.seq <= seq and (f"entry {seq}" in named.message or ".." in named.message),
        named.message if named else "the log verified",
    )
    kinds = sorted({m.kind for m in reconcile(copied)})
    t.expect(
        "reconciliation shows KZ's receipt with no INGRESS at TR",
        "not_received" in kinds and "signed_entry_differs" in kinds,
        ", ".join(kinds) or "no mismatch",
    )
    t.console.print(trace_tree(trace(copied, item_id)))
    t.console.print("   (KZ → TR shows no 'TR logged …': TR's INGRESS entry is gone, KZ's signed receipt is not.)")
    t.console.print(
        f"   Try it: [bold]intelshare audit verify --dir {copy} --member TR[/]  ·  "
        f"[bold]intelshare audit reconcile --dir {copy}[/]  ·  "
        f"[bold]intelshare audit trace {item_id[:20]} --dir {copy}[/]"
    )
