"""``intelshare agreement``: held agreements, and amendments between the two parties (SPEC §6.4).

A party's officer proposes a new version (``propose``); the node signs it with its own
key and sends it to the other party, whose officer lists it and countersigns or rejects
it. Countersigned, the version is in force on both nodes at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from node.cli.base import DirOpt, ExitCode, MemberOpt, agreement_app, console, fail, open_desk, print_table

__all__ = ["agreement_countersign", "agreement_list", "agreement_propose", "agreement_reject", "agreement_show"]


@agreement_app.command("list")
def agreement_list(directory: DirOpt, member: MemberOpt) -> None:
    """The agreements this node holds, and every proposal sent or received."""
    with open_desk(directory, member) as desk:
        reply = desk.agreements()
    rows = [
        (a.agreement_id, str(a.version), " ".join(a.parties), "[green]yes[/]" if a.in_force else "[red]no[/]")
        for a in reply.agreements
    ]
    print_table(f"{member.upper()} agreements", ("agreement", "version", "parties", "in force"), rows)
    proposals = [
        (
            p.proposal_id,
            p.direction,
            f"{p.agreement_id} v{p.version}",
            f"{p.proposer} → {p.counterparty}",
            p.state,
            p.note,
            p.reason,
        )
        for p in reply.proposals
    ]
    columns = ("proposal", "direction", "version", "from → to", "state", "note", "reason")
    print_table(f"{member.upper()} proposals", columns, proposals)


@agreement_app.command("show")
def agreement_show(
    directory: DirOpt,
    member: MemberOpt,
    other: Annotated[str, typer.Option("--with", help="The other party, e.g. TR.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the terms as JSON, to edit and propose.")] = False,
) -> None:
    """The agreement held with another member: its terms and whether it is in force."""
    with open_desk(directory, member) as desk:
        held = desk.held_agreement(other.upper())
    if held is None:
        fail(f"{member.upper()} holds no agreement with {other.upper()}", ExitCode.NOT_FOUND)
    terms = json.loads(held.agreement_json)
    if as_json:
        console.print_json(json.dumps(terms, ensure_ascii=False))
        return
    console.print(f"[bold]{held.agreement_id}[/] v{held.version}: {'in force' if held.in_force else 'NOT in force'}")
    for key, value in terms.items():
        console.print(f"  {key}: {value}")


@agreement_app.command("propose")
def agreement_propose(
    directory: DirOpt,
    member: MemberOpt,
    other: Annotated[str, typer.Option("--with", help="The other party, e.g. TR.")],
    source: Annotated[
        Path,
        typer.Option("--from", help="The new terms: JSON (as 'agreement show --json' prints) or one TOML table."),
    ],
    note: Annotated[str, typer.Option(help="A note for the other party's officer.")] = "",
) -> None:
    """Propose a new version to the other party; this node signs it with its own key (SPEC §6.4)."""
    from node.config.federation_file import load_agreement_file

    agreement = load_agreement_file(source)
    if other.upper() not in agreement.parties:
        fail(f"{source} is not an agreement with {other.upper()} (parties {', '.join(agreement.parties)})")
    with open_desk(directory, member) as desk:
        entry = desk.propose_agreement(agreement, note)
    console.print(
        f"proposal {entry.proposal_id}: {entry.agreement_id} v{entry.version} sent to {entry.counterparty} "
        f"for countersignature"
    )


@agreement_app.command("countersign")
def agreement_countersign(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id (see 'agreement list').")],
    directory: DirOpt,
    member: MemberOpt,
) -> None:
    """Countersign a proposal received: the version is in force here now, and at the proposer when it arrives."""
    with open_desk(directory, member) as desk:
        entry = desk.countersign(proposal_id)
    if entry.state != "countersigned":
        fail(
            f"{entry.agreement_id} v{entry.version} was not countersigned: {entry.state}, {entry.reason}",
            ExitCode.PRECONDITION,
        )
    console.print(f"{entry.agreement_id} v{entry.version} countersigned: in force at {member.upper()}")


@agreement_app.command("reject")
def agreement_reject(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id (see 'agreement list').")],
    directory: DirOpt,
    member: MemberOpt,
    reason: Annotated[str, typer.Option(help="Why; sent to the proposer.")],
) -> None:
    """Reject a proposal received; the proposer's node is told why, and the held version stays in force."""
    with open_desk(directory, member) as desk:
        entry = desk.reject_agreement(proposal_id, reason)
    console.print(f"{entry.agreement_id} v{entry.version} rejected: {entry.reason}")
