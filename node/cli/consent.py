"""``intelshare consent``: ask, list, grant, deny, grant onward and revoke third-party consent (SPEC §9.4)."""

from __future__ import annotations

from typing import Annotated

import typer

from node.cli.base import DirOpt, MemberOpt, VersionOpt, consent_app, console, open_desk, print_table

__all__ = [
    "consent_ask",
    "consent_deny",
    "consent_grant",
    "consent_grants",
    "consent_list",
    "consent_onward",
    "consent_revoke",
]

ConditionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--condition",
        help="A condition every later holder is held to (repeat): onward-to:<MEMBER> or "
        "retain-until:<YYYY-MM-DDTHH:MM:SSZ>.",
    ),
]


@consent_app.command("list")
def consent_list(
    directory: DirOpt, member: MemberOpt, state: Annotated[str, typer.Option(help="pending, granted or denied.")] = ""
) -> None:
    """List consent requests (incoming: to decide; outgoing: asked by this node), with the denial's reason."""
    with open_desk(directory, member) as desk:
        rows = desk.consent_requests(state)
    columns = ("request", "direction", "item", "requester", "third party", "purpose", "state", "grant / reason")
    lines = [
        (
            r.request_id,
            r.direction,
            r.item_id,
            r.requester,
            r.third_party,
            r.purpose,
            r.state,
            r.grant_id if r.state == "granted" else r.reason,
        )
        for r in rows
    ]
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
    """Ask the originator for consent to pass an item to a third party; shows its answer when it comes at once."""
    with open_desk(directory, member) as desk:
        response = desk.ask_consent(item_id, third_party, purpose, version)
        decided = desk.wait_decided(response.request_id, timeout=5.0) if response.state == "decided" else None
    if decided is None:
        console.print(f"request {response.request_id}: {response.state} {response.reason}")
    elif decided.state == "granted":
        console.print(f"request {response.request_id}: [green]granted[/] (grant {decided.grant_id})")
    else:
        console.print(f"request {response.request_id}: [red]denied[/]: {decided.reason}")


@consent_app.command("grant")
def consent_grant(
    request_id: Annotated[str, typer.Argument(help="Request id, or a prefix of exactly one.")],
    directory: DirOpt,
    member: MemberOpt,
    valid_days: Annotated[int, typer.Option(help="Validity.")] = 30,
    transferable: Annotated[bool, typer.Option(help="May the grantee pass it on?")] = False,
    condition: ConditionOpt = None,
) -> None:
    """Grant a pending request (signed by this node, the originator)."""
    with open_desk(directory, member) as desk:
        response = desk.decide(
            request_id, grant=True, transferable=transferable, valid_days=valid_days, conditions=condition or ()
        )
    console.print(f"request {response.request_id}: granted (grant {response.grant_id})")


@consent_app.command("deny")
def consent_deny(
    request_id: Annotated[str, typer.Argument(help="Request id, or a prefix of exactly one.")],
    directory: DirOpt,
    member: MemberOpt,
    reason: Annotated[str, typer.Option(help="Why; the requester is shown it.")],
) -> None:
    """Deny a pending request with a reason."""
    with open_desk(directory, member) as desk:
        response = desk.decide(request_id, grant=False, reason=reason)
    console.print(f"request {response.request_id}: denied")


@consent_app.command("onward")
def consent_onward(
    item_id: Annotated[str, typer.Argument(help="Item id.")],
    directory: DirOpt,
    member: MemberOpt,
    to: Annotated[str, typer.Option("--to", help="Member this node may then pass the item to.")],
    version: VersionOpt = 1,
    valid_days: Annotated[int, typer.Option(help="Validity (at most the grant it rests on).")] = 30,
    transferable: Annotated[bool, typer.Option(help="May that member pass it on in turn?")] = False,
    condition: ConditionOpt = None,
) -> None:
    """Sign an onward grant under the transferable grant this node holds, then 'reshare' passes the item on."""
    with open_desk(directory, member) as desk:
        grant = desk.grant_onward(
            item_id,
            to.upper(),
            version=version,
            valid_days=valid_days,
            transferable=transferable,
            conditions=condition or (),
        )
    console.print(
        f"grant {grant.grant_id}: {grant.grantor} lets itself pass {grant.item_id} v{grant.item_version} to "
        f"{grant.grantee} until {grant.expires_at} (transferable: {grant.transferable})"
    )


@consent_app.command("grants")
def consent_grants(directory: DirOpt, member: MemberOpt) -> None:
    """The grants this node signed or was given, with their conditions and whether revoked."""
    with open_desk(directory, member) as desk:
        grants = desk.grants()
    columns = ("grant", "item", "grantor", "holder → grantee", "expires", "transferable", "conditions", "revoked")
    rows = [
        (
            g.grant_id,
            f"{g.item_id} v{g.item_version}",
            g.grantor,
            f"{g.holder} → {g.grantee}",
            g.expires_at,
            "yes" if g.transferable else "no",
            ", ".join(g.conditions) or "-",
            g.revoked_at or "-",
        )
        for g in grants
    ]
    print_table(f"{member.upper()} grants", columns, rows)


@consent_app.command("revoke")
def consent_revoke(
    grant_id: Annotated[str, typer.Argument(help="Grant id (see 'consent list' or 'consent grants').")],
    directory: DirOpt,
    member: MemberOpt,
    reason: Annotated[str, typer.Option(help="Why; sent with the revocation.")] = "revoked by the grantor",
) -> None:
    """Revoke a grant this node signed; every holder of it applies the revocation and passes it on."""
    with open_desk(directory, member) as desk:
        response = desk.revoke_grant(grant_id, reason)
    console.print(
        f"revocation {response.revocation_id} of grant {grant_id} sent to {', '.join(response.notified) or 'nobody'}"
    )
