"""The overseer's commands across the federation's logs: ``audit reconcile`` and ``audit trace``.

They read every node's database of a federation directory read-only (or audit
bundles) and need no private key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.tree import Tree

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

if TYPE_CHECKING:
    from node.audit.sources import AuditView
    from node.audit.trace import Trace

__all__ = ["audit_prove", "audit_reconcile", "audit_trace", "trace_tree"]


@audit_app.command("reconcile")
def audit_reconcile(directory: DirOpt, bundle: BundleOpt = None) -> None:
    """Compare every node's log with the others': transfers, consents, recalls and corrections. Exit 1 on a mismatch."""
    from node.audit.reconcile import reconcile

    mismatches = reconcile(audit_view(directory, bundle))
    if not mismatches:
        console.print("[green]the federation's logs reconcile[/]: every transfer, consent and notice on both sides")
        return
    rows = [(m.kind, m.item_id or "", m.detail, "; ".join(e.describe() for e in m.entries)) for m in mismatches]
    print_table(f"{len(mismatches)} mismatches", ("kind", "item", "what", "entries"), rows)
    raise typer.Exit(ExitCode.FAILED)


def _item_id(view: AuditView, prefix: str) -> str:
    """The one item id starting with ``prefix`` in any log; ambiguous or unknown prefixes fail, listing matches."""
    from sqlalchemy import select

    from node.store import AuditEntryRow

    found: set[str] = set()
    for source in view.sources.values():
        try:
            with source.session() as session:
                found |= set(
                    session.scalars(
                        select(AuditEntryRow.item_id)
                        .where(AuditEntryRow.item_id.startswith(prefix))
                        .distinct()
                        .limit(20)
                    )
                )
        except FileNotFoundError:
            continue
    if not found:
        fail(f"no log mentions an item {prefix!r}", ExitCode.NOT_FOUND)
    if len(found) > 1:
        fail(f"{prefix!r} is ambiguous: {', '.join(sorted(found))}", ExitCode.INVALID)
    return found.pop()


def trace_tree(result: Trace) -> Tree:
    root = Tree(f"[bold]{result.item_id}[/] originated by [bold]{result.originator or '?'}[/]")
    nodes = {result.originator: root}
    pending = list(result.transfers)
    ordered = []
    while pending:  # each transfer under the branch that brought the item to its sender
        ready = [t for t in pending if t.sender in nodes] or pending[:1]
        for t in ready:
            pending.remove(t)
            ordered.append(t)
            if t.allowed:
                nodes.setdefault(t.recipient, root)
    nodes = {result.originator: root}
    for t in ordered:
        parent = nodes.get(t.sender, root)
        verdict = "[green]sent[/]" if t.allowed else f"[red]refused {t.reason}[/]"
        got = "" if t.received is None else f", {t.recipient} logged {t.received}"
        grants = f", grants {', '.join(g[:12] for g in t.grants)}" if t.grants else ""
        under = f" under {t.agreement}" if t.agreement else ""
        branch = parent.add(f"→ {t.recipient} v{t.version}: {verdict}{under}{grants}{got}")
        if t.allowed:
            nodes.setdefault(t.recipient, branch)
    holders = root.add("holders")
    for h in sorted(result.holdings, key=lambda h: (h.member, h.version)):
        holders.add(f"{h.member} v{h.version}: {h.state} (from {h.sender})")
    if result.notices:
        notices = root.add("recalls and corrections")
        for e in result.notices:
            notices.add(e.describe())
        for e in result.acknowledgements:
            notices.add(f"{e.member} holds {e.detail.get('holder')}'s signed acknowledgement (#{e.seq})")
    return root


@audit_app.command("trace")
def audit_trace(
    item: Annotated[str, typer.Argument(help="Item id, or a unique prefix of one.")],
    directory: DirOpt,
    bundle: BundleOpt = None,
) -> None:
    """The item's path across the federation: originator, recipients, re-shares, notices, holders."""
    from node.audit.trace import trace

    view = audit_view(directory, bundle)
    console.print(trace_tree(trace(view, _item_id(view, item))))


@audit_app.command("prove")
def audit_prove(
    directory: DirOpt,
    member: MemberOpt,
    log: Annotated[str, typer.Option("--log", help="The member whose log to check, e.g. TR.")],
    limit: Annotated[
        int, typer.Option(help="How many of its latest statements (1 to 100000).", min=1, max=100_000)
    ] = 1000,
) -> None:
    """Ask LOG's running node to prove the entries MEMBER holds its signed word for. Exit 1 if one is not proved.

    Every receipt and recall acknowledgement MEMBER holds from LOG names an entry of LOG's
    log; LOG's node must prove that entry is in the largest checkpoint of its log that
    MEMBER co-signed (inclusion proofs, SPEC §11.10.9). A log rewritten under a running
    node cannot.
    """
    from datetime import UTC, datetime

    from node.config import load_material, load_node_config
    from node.peers import check_inclusions

    material = load_material(load_node_config(config_path(directory, member)))
    log = log.upper()
    size, results = check_inclusions(material, log, limit=limit, now=datetime.now(UTC))
    failed = [r for r in results if not r.included]
    if not failed:
        console.print(
            f"[green]{len(results)} entries of {log}'s log included[/] in the checkpoint of size {size} "
            f"that {material.config.member_id} co-signed"
        )
        return
    for result in failed:
        err.print(f"[red]{log} entry {result.seq}[/]: {result.source}: {result.detail}")
    raise typer.Exit(ExitCode.FAILED)
