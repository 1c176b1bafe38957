"""``intelshare audit``: list, export and verify a node's audit log, with the node running or not."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from node.cli.base import DirOpt, MemberOpt, audit_app, config_path, console, err, fail, print_table

__all__ = ["audit_export", "audit_list", "audit_verify"]


@contextmanager
def _audit_session(directory: Path, member: str) -> Iterator[Session]:
    from node.config import load_node_config
    from node.store import make_engine, make_sessionmaker

    cfg = load_node_config(config_path(directory, member))
    engine = make_engine(cfg.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


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
    """Verify the hash chain; names any edited, removed or reordered entry. Exit 1 if broken."""
    from node import audit

    with _audit_session(directory, member) as session:
        report = audit.verify(session)
    if report.ok:
        console.print(
            f"[green]audit log of {member.upper()} verifies[/]: {report.entries} entries, head {report.head_seq}"
        )
        return
    for problem in report.problems:
        err.print(f"[red]entry {problem.seq}: {problem.kind}[/] — {problem.message}")
    raise typer.Exit(1)
