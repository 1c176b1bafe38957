"""``intelshare audit``: list, export and verify a node's audit log, with the node running or not."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from node.audit.sources import AuditView

from node.cli.base import DirOpt, ExitCode, MemberOpt, audit_app, config_path, console, err, fail, print_table

__all__ = ["audit_export", "audit_list", "audit_verify"]


def _view(directory: Path) -> AuditView:
    from node.audit.sources import federation_view

    if not (directory / "roster.json").is_file():
        fail(f"{directory} is not a federation directory (no roster.json)")
    return federation_view(directory)


@contextmanager
def _audit_session(directory: Path, member: str) -> Iterator[Session]:
    """A read-only session on a member's log: an auditor never writes to a node's database."""
    from node.store import NoDatabaseError

    config_path(directory, member)  # fails with one line for an unknown member
    source = _view(directory).sources.get(member.upper())
    if source is None:
        fail(f"no node {member!r} in {directory}")
    try:
        with source.session() as session:
            yield session
    except NoDatabaseError:
        fail(f"node {member.upper()} has no audit log yet (it never started): {source.url}", ExitCode.NOT_FOUND)


@audit_app.command("list")
def audit_list(
    directory: DirOpt,
    member: MemberOpt,
    event: Annotated[str | None, typer.Option(help="Only this event, e.g. INGRESS.")] = None,
    after: Annotated[int, typer.Option(help="Entries after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(help="How many.")] = 100,
) -> None:
    """List audit entries: every decision with its reason code and rule."""
    from node import audit

    with _audit_session(directory, member) as session:
        rows = audit.list_entries(session, after_seq=after, limit=limit, event=event)
        lines = [
            (
                str(r.seq),
                audit.format_time(r.at)[:19],
                r.event,
                r.peer or "",
                (r.item_id or "")[:12],
                "" if r.allowed is None else ("[green]yes[/]" if r.allowed else "[red]no[/]"),
                r.reason or "",
                r.rule or "",
            )
            for r in rows
        ]
    columns = ("seq", "at", "event", "peer", "item", "allowed", "reason", "rule")
    print_table(f"{member.upper()} audit log", columns, lines)


@audit_app.command("export")
def audit_export(
    directory: DirOpt,
    member: MemberOpt,
    output: Annotated[Path, typer.Option("--out", "-o", help="Output file.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
) -> None:
    """Export the whole audit log as JSON Lines or CSV."""
    from node import audit

    if fmt not in ("jsonl", "csv"):
        fail("--format must be jsonl or csv")
    with _audit_session(directory, member) as session, output.open("w", encoding="utf-8", newline="") as out:
        count = (audit.export_jsonl if fmt == "jsonl" else audit.export_csv)(session, out)
    console.print(f"{count} entries written to {output}")


@audit_app.command("verify")
def audit_verify(directory: DirOpt, member: MemberOpt) -> None:
    """Verify a node's log: hash chain, Merkle tree, its signed checkpoints and what peers hold. Exit 1 if broken.

    Names the first entry that is not as the node wrote it: an edited, removed or
    reordered entry, a tail cut off, entries the node never signed, or a rewrite that
    no longer agrees with a checkpoint a peer witnessed or a receipt a peer holds.
    """
    from node import audit
    from node.audit.sources import pins_for

    view = _view(directory)
    member = member.upper()
    pins = pins_for(view, member)
    with _audit_session(directory, member) as session:
        report = audit.verify(session, roster=view.roster, member=member, pins=pins)
    if report.ok:
        signed = "no checkpoint yet" if report.checkpoint is None else f"signed checkpoint at {report.checkpoint}"
        console.print(
            f"[green]audit log of {member} verifies[/]: {report.entries} entries, head {report.head_seq}, "
            f"{signed}, {report.compared} comparisons with checkpoints and peers' receipts and witnessed checkpoints"
        )
        return
    for problem in report.problems:
        err.print(f"[red]entry {problem.seq}: {problem.kind}[/] — {problem.message}")
    raise typer.Exit(1)
