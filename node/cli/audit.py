"""``intelshare audit``: list, export and verify a node's audit log, with the node running or not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from node.audit import AuditEvent
    from node.audit.sources import AuditView
    from node.audit.verify import Pin

from node.cli.base import (
    BundleOpt,
    DirOpt,
    ExitCode,
    MemberOpt,
    audit_app,
    audit_view,
    config_path,
    console,
    err,
    fail,
    print_table,
)

__all__ = ["audit_bundle", "audit_export", "audit_list", "audit_verify"]


@contextmanager
def _audit_session(directory: Path, member: str) -> Iterator[Session]:
    """A read-only session on a member's log: an auditor never writes to a node's database."""
    from node.store import NoDatabaseError, opening

    config_path(directory, member)  # fails with one line for an unknown member
    source = audit_view(directory).sources.get(member.upper())
    if source is None:
        fail(f"no node {member!r} in {directory}")
    try:
        with opening(source.url), source.session() as session:  # unreachable, not a database: one line
            yield session
    except NoDatabaseError:
        fail(f"node {member.upper()} has no audit log yet (it never started): {source.url}", ExitCode.NOT_FOUND)


def _event(text: str | None) -> AuditEvent | None:
    """An event name in any case; an unknown one fails with the list of known ones."""
    from node.audit import AuditEvent

    if text is None:
        return None
    try:
        return AuditEvent(text.upper())
    except ValueError:
        fail(f"unknown event {text!r}; one of: {', '.join(e.value for e in AuditEvent)}", ExitCode.INVALID)


def _when(text: str | None, what: str) -> datetime | None:
    """An RFC 3339 time; one without an offset is UTC."""
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{what} {text!r} is not a time like 2026-12-02T09:00:00Z", ExitCode.INVALID)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _failing(session: Session) -> set[int]:
    """The entries that do not verify (their hash or link)."""
    from node import audit

    return {p.seq for p in audit.verify(session).problems if p.kind in ("edited", "reordered")}


@audit_app.command("list")
def audit_list(
    directory: DirOpt,
    member: MemberOpt,
    event: Annotated[str | None, typer.Option(help="Only this event, e.g. INGRESS (any case).")] = None,
    item: Annotated[str | None, typer.Option(help="Only entries about this item id.")] = None,
    peer: Annotated[str | None, typer.Option(help="Only entries with this peer, e.g. KZ.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code, e.g. BAND_ABOVE_CEILING.")] = None,
    officer: Annotated[str | None, typer.Option(help="Only entries by this officer (the actor).")] = None,
    since: Annotated[str | None, typer.Option(help="Entries at or after this time (RFC 3339, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Entries before this time (RFC 3339, UTC).")] = None,
    after: Annotated[int, typer.Option(help="Entries after this sequence number.", min=0)] = 0,
    limit: Annotated[int, typer.Option(help="How many (1 to 100000).", min=1, max=100_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, fields in SPEC order.")] = False,
) -> None:
    """List audit entries: every decision with its reason code and rule; times are UTC.

    An entry that does not match its hash or its link is marked (✘ in the table,
    ``"verified": false`` in JSON).
    """
    from node import audit
    from node.audit.export import record

    where = audit.EntryFilter(
        item_id=item,
        peer=peer.upper() if peer else None,
        reason=reason.upper() if reason else None,
        event=_event(event),
        actor=officer,
        since=_when(since, "--since"),
        until=_when(until, "--until"),
    )
    with _audit_session(directory, member) as session:
        rows = audit.list_entries(session, after_seq=after, limit=limit, where=where)
        failing = _failing(session) if rows else set()
        if as_json:
            for row in rows:  # plain lines for programs: no colour, no wrapping
                typer.echo(json.dumps(record(row, verified=row.seq not in failing), ensure_ascii=False))
            return
        # The actor is the node itself but for officers' reads: a column only when it says something.
        officers = any(r.actor != member.upper() for r in rows)
        lines = [
            (
                str(r.seq) + (" [red]✘[/]" if r.seq in failing else ""),
                audit.format_time(r.at)[:19] + "Z",
                r.event,
                *((r.actor,) if officers else ()),
                r.peer or "",
                r.item_id or "",
                "" if r.allowed is None else ("[green]yes[/]" if r.allowed else "[red]no[/]"),
                r.reason or "",
                r.rule or "",
            )
            for r in rows
        ]
    columns = (
        "seq",
        "at (UTC)",
        "event",
        *(("actor",) if officers else ()),
        "peer",
        "item",
        "allowed",
        "reason",
        "rule",
    )
    print_table(f"{member.upper()} audit log", columns, lines)


@audit_app.command("export")
def audit_export(
    directory: DirOpt,
    member: MemberOpt,
    output: Annotated[Path, typer.Option("--out", "-o", help="Output file.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
) -> None:
    """Export the whole audit log as JSON Lines or CSV, fields in SPEC order, each entry marked verified or not."""
    from node import audit

    if fmt not in ("jsonl", "csv"):
        fail("--format must be jsonl or csv", ExitCode.INVALID)
    if not output.parent.is_dir():
        fail(f"cannot write {output}: no folder {output.parent}", ExitCode.INVALID)
    with _audit_session(directory, member) as session:
        failing = _failing(session)
        with output.open("w", encoding="utf-8", newline="") as out:
            count = (audit.export_jsonl if fmt == "jsonl" else audit.export_csv)(session, out, failing=failing)
    console.print(f"{count} entries written to {output}" + (f"; {len(failing)} do not verify" if failing else ""))


@audit_app.command("verify")
def audit_verify(
    directory: DirOpt,
    member: Annotated[
        str | None,
        typer.Option(
            "--member",
            "-m",
            help="Member id of the log; with --bundle, every bundled log if not given.",
            envvar="INTELSHARE_MEMBER",
        ),
    ] = None,
    bundle: BundleOpt = None,
    ask_peers: Annotated[
        bool,
        typer.Option(
            "--ask-peers",
            help="Ask the other members' running nodes what they hold about this log, over mutual TLS with "
            "this member's identity, instead of reading their databases.",
        ),
    ] = False,
) -> None:
    """Verify a node's log: hash chain, Merkle tree, its signed checkpoints and what peers hold. Exit 1 if broken.

    Names the first entry that is not as the node wrote it: an edited, removed or
    reordered entry, a tail cut off, entries the node never signed, or a rewrite that
    no longer agrees with a checkpoint a peer witnessed, or a receipt or acknowledgement
    a peer holds. With ``--bundle``, the logs and what the peers hold are read from audit
    bundles, each checked against the roster first; with ``--ask-peers``, what the peers
    hold comes from their running nodes (SPEC §11.10.9).
    """
    view = audit_view(directory, bundle)
    if member is None and not bundle:
        fail("--member is required without --bundle", ExitCode.USAGE)
    if ask_peers and (bundle or member is None):
        fail("--ask-peers takes one --member and no --bundle", ExitCode.USAGE)
    members = [member.upper()] if member else sorted(view.sources)
    broken = False
    for name in members:
        if bundle and name not in view.sources:
            fail(f"no bundle of {name} among those given", ExitCode.NOT_FOUND)
        pins = _pins_over_the_wire(directory, name) if ask_peers else None
        broken |= not _verify_one(directory, view, name, from_bundle=bool(bundle), pins=pins)
    if broken:
        raise typer.Exit(ExitCode.FAILED)


def _pins_over_the_wire(directory: Path, member: str) -> list[Pin]:
    """What the other members' running nodes hold about ``member``'s log, asked with its TLS identity."""
    from node.config import load_material, load_node_config
    from node.peers import evidence_from_peers

    material = load_material(load_node_config(config_path(directory, member)))
    pins: list[Pin] = []
    for answer in evidence_from_peers(material):
        if answer.error is not None:
            console.print(f"[dim]{answer.peer} not asked: {answer.error}[/]")
        else:
            console.print(f"{answer.peer} told of {len(answer.pins)} checkpoints, receipts and acknowledgements")
        pins += answer.pins
    return pins


def _verify_one(
    directory: Path, view: AuditView, member: str, *, from_bundle: bool, pins: list[Pin] | None = None
) -> bool:
    """Verify one member's log against what the others hold; print the outcome; whether it verifies."""
    from node import audit
    from node.audit.sources import pins_for

    pins = pins_for(view, member) if pins is None else pins
    sessions = view.sources[member].session() if from_bundle else _audit_session(directory, member)
    with sessions as session:
        report = audit.verify(session, roster=view.roster, member=member, pins=pins)
    if report.ok:
        signed = "no checkpoint yet" if report.checkpoint is None else f"signed checkpoint at {report.checkpoint}"
        console.print(
            f"[green]audit log of {member} verifies[/]: {report.entries} entries, head {report.head_seq}, "
            f"{signed}, {report.compared} comparisons with checkpoints and what peers hold"
        )
        return True
    for problem in report.problems:
        err.print(f"[red]{member} entry {problem.seq}: {problem.kind}[/] — {problem.message}")
    return False


@audit_app.command("bundle")
def audit_bundle(
    directory: DirOpt,
    member: MemberOpt,
    output: Annotated[Path, typer.Option("--out", "-o", help="The bundle file to write (must not exist).")],
) -> None:
    """Write the node's audit data, signed, for an auditor who cannot reach it: metadata only, no content."""
    from datetime import UTC, datetime

    from node.audit.bundle import write_bundle
    from node.config import load_material, load_node_config

    if not output.parent.is_dir():
        fail(f"cannot write {output}: no folder {output.parent}", ExitCode.INVALID)
    material = load_material(load_node_config(config_path(directory, member)))
    manifest = write_bundle(
        material.config.database_url,
        output,
        member=material.config.member_id,
        federation=material.roster.federation,
        key=material.signing_key,
        now=datetime.now(UTC),
    )
    console.print(
        f"bundle of {manifest.member} written to {output}: {manifest.log_size} entries, "
        f"root {manifest.log_root[:16]}…, {len(manifest.tables)} tables, signed by {manifest.member}"
    )
