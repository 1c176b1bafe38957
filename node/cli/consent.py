"""``intelshare consent``: ask, list, grant and deny third-party consent (SPEC §9.4.1)."""

from __future__ import annotations

from typing import Annotated

import typer

from node.cli.base import DirOpt, MemberOpt, VersionOpt, consent_app, console, open_desk, print_table

__all__ = ["consent_ask", "consent_deny", "consent_grant", "consent_list"]


@consent_app.command("list")
def consent_list(
    directory: DirOpt, member: MemberOpt, state: Annotated[str, typer.Option(help="pending, granted or denied.")] = ""
) -> None:
    """List consent requests (incoming: to decide; outgoing: asked by this node)."""
    with open_desk(directory, member) as desk:
        rows = desk.consent_requests(state)
    columns = ("request", "direction", "item", "requester", "third party", "purpose", "state")
    lines = [(r.request_id, r.direction, r.item_id, r.requester, r.third_party, r.purpose, r.state) for r in rows]
    print_table(f"{member.upper()} consent requests", columns, lines)


@consent_app.command("ask")
def consent_ask(
    item_id: Annotated[str, typer.Argument(help="Item id, or a prefix of exactly one.")],
    directory: DirOpt,
    member: MemberOpt,
    third_party: Annotated[str, typer.Option("--for", help="Member to pass it to.")],
    purpose: Annotated[str, typer.Option(help="Why.")],
    version: VersionOpt = 1,
) -> None:
    """Ask the originator for consent to pass an item to a third party."""
    with open_desk(directory, member) as desk:
        response = desk.ask_consent(item_id, third_party, purpose, version)
    console.print(f"request {response.request_id}: {response.state} {response.reason}")


@consent_app.command("grant")
def consent_grant(
    request_id: Annotated[str, typer.Argument(help="Request id, or a prefix of exactly one.")],
    directory: DirOpt,
    member: MemberOpt,
    valid_days: Annotated[int, typer.Option(help="Validity.")] = 30,
    transferable: Annotated[bool, typer.Option(help="May the grantee pass it on?")] = False,
) -> None:
    """Grant a pending request (signed by this node, the originator)."""
    with open_desk(directory, member) as desk:
        response = desk.decide(request_id, grant=True, transferable=transferable, valid_days=valid_days)
    console.print(f"request {response.request_id}: granted (grant {response.grant_id})")


@consent_app.command("deny")
def consent_deny(
    request_id: Annotated[str, typer.Argument(help="Request id, or a prefix of exactly one.")],
    directory: DirOpt,
    member: MemberOpt,
    reason: Annotated[str, typer.Option(help="Why.")],
) -> None:
    """Deny a pending request with a reason."""
    with open_desk(directory, member) as desk:
        response = desk.decide(request_id, grant=False, reason=reason)
    console.print(f"request {response.request_id}: denied")
