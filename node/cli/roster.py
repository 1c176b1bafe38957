"""``intelshare roster``: the secretariat keeps the roster (SPEC §5.3, §5.4.3, §11.12).

``show`` prints a roster; ``add-member``, ``remove-member``, ``rotate-key`` and
``revoke-key`` each write the next version, signed by a threshold of the secretariat's key
holders; ``publish`` sends it to every node, which applies it at once. Every command
works on the federation directory (``--dir``) and needs no node's key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from node.cli.base import DirOpt, ExitCode, app, console, exit_code_for, fail, print_table
from node.secretariat import Delivered, KeyKind, Secretariat, parse_markings
from protocol.errors import IntelshareError, MalformedError
from protocol.roster import MemberStatus, Roster
from protocol.statements import Signed

__all__ = ["roster_app"]

roster_app = typer.Typer(
    help="The federation roster: members and their keys, kept by the secretariat.", no_args_is_help=True
)
app.add_typer(roster_app, name="roster")

SignAsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--sign-as",
        help="A secretariat key holder who signs (repeat; default: the first holders the threshold needs).",
    ),
]
MemberArg = Annotated[str, typer.Option("--member", "-m", help="Member id, e.g. UZ.")]


def _short(text: str | None, length: int = 12) -> str:
    return "—" if not text else text[:length] + "…"


def _open(directory: Path, sign_as: list[str] | None = None) -> Secretariat:
    """The directory's secretariat, checked able to sign before anything is changed."""
    try:
        secretariat = Secretariat.open(directory)
        if sign_as is not None:
            secretariat.check_signers(sign_as)
    except IntelshareError as exc:
        fail(str(exc), exit_code_for(exc))
    return secretariat


def show_roster(roster: Roster, title: str) -> None:
    """A roster as tables: members, then keys the roster retires or revokes, and the secretariat."""
    rows = [
        (
            m.member_id,
            m.state,
            m.status.value,
            m.endpoint,
            _short(m.signing_key.keyid),
            "[red]revoked[/]" if roster.is_revoked(m.signing_key.keyid) else "valid",
            _short(m.hpke_keys.x25519.hex()),
            _short(m.tls_fingerprint),
        )
        for m in roster.members
    ]
    columns = ("member", "state", "status", "endpoint", "signing key", "key", "HPKE x25519", "TLS fingerprint")
    print_table(title, columns, rows)
    if roster.retired_keys:
        retired = [(r.member_id, _short(r.signing_key.keyid), r.until.isoformat()) for r in roster.retired_keys]
        print_table("Retired signing keys (verify until)", ("member", "key", "until"), retired)
    if roster.revoked_keyids:
        print_table("Revoked keys", ("key id",), [(k,) for k in roster.revoked_keyids])
    if roster.secretariat is not None:
        keys = ", ".join(_short(key.keyid) for key in roster.secretariat.keys)
        console.print(f"secretariat: {roster.secretariat.threshold} of {len(roster.secretariat.keys)} keys ({keys})")


def _written(secretariat: Secretariat, roster: Roster, sign_as: list[str] | None, what: str) -> None:
    try:
        signed = secretariat.write(roster, sign_as or [])
    except IntelshareError as exc:
        fail(str(exc), exit_code_for(exc))
    signers = roster.secretariat.signers(signed) if roster.secretariat else len(signed.signatures)
    console.print(f"roster v{roster.version} written ({what}), signed by {signers} secretariat key(s)")
    console.print(f"publish it: [bold]intelshare roster publish --dir {secretariat.root}[/]")


@roster_app.command("show")
def show(
    directory: DirOpt,
    file: Annotated[Path | None, typer.Option(help="A roster file (default: the directory's roster.json).")] = None,
) -> None:
    """Print the roster: members, their keys and status, retired and revoked keys."""
    path = file or directory / "roster.json"
    try:
        roster = Roster.from_bytes(Signed.from_bytes(path.read_bytes()).payload)
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")
    except MalformedError as exc:
        fail(f"{path}: not a signed roster: {exc}")
    show_roster(
        roster, f"Roster of {roster.federation}, version {roster.version}, issued {roster.issued_at:%Y-%m-%d %H:%M}Z"
    )


@roster_app.command("add-member")
def add_member(
    directory: DirOpt,
    member: MemberArg,
    state: Annotated[str, typer.Option(help="The member's state, e.g. Turkmenistan.")],
    service: Annotated[str, typer.Option(help="The member service's name.")],
    marking: Annotated[list[str], typer.Option(help="BAND=national marking (repeat for each band it uses).")],
    status: Annotated[MemberStatus, typer.Option(help="member or observer.")] = MemberStatus.MEMBER,
    endpoint: Annotated[str | None, typer.Option(help="host:port of its node (default: a free local port).")] = None,
    sign_as: SignAsOpt = None,
) -> None:
    """Add a member: write its node directory (keys, certificate, node.toml) and the next roster version."""
    secretariat = _open(directory, sign_as or [])
    try:
        roster = secretariat.add_member(
            member_id=member.upper(),
            state=state,
            service=service,
            status=status,
            markings=parse_markings(marking),
            endpoint=endpoint,
            now=datetime.now(UTC),
        )
    except IntelshareError as exc:
        fail(str(exc), exit_code_for(exc))
    _written(secretariat, roster, sign_as, f"{member.upper()} added; its node: nodes/{member.upper()}")


@roster_app.command("remove-member")
def remove_member(directory: DirOpt, member: MemberArg, sign_as: SignAsOpt = None) -> None:
    """Remove a member from the next roster version; its partners set their agreements with it aside."""
    secretariat = _open(directory, sign_as or [])
    try:
        roster = secretariat.remove_member(member.upper(), datetime.now(UTC))
    except IntelshareError as exc:
        fail(str(exc), exit_code_for(exc))
    _written(secretariat, roster, sign_as, f"{member.upper()} removed")


@roster_app.command("rotate-key")
def rotate_key(
    directory: DirOpt,
    member: MemberArg,
    key: Annotated[
        list[KeyKind] | None, typer.Option(help="Which key to replace (repeat; default: signing, hpke and tls).")
    ] = None,
    overlap_days: Annotated[
        int, typer.Option(min=1, max=365, help="Days the old signing key still verifies what it signed before.")
    ] = 14,
    sign_as: SignAsOpt = None,
) -> None:
    """Give a member new keys, staged in its node directory; its node switches when it gets the new version."""
    secretariat = _open(directory, sign_as or [])
    kinds = key or list(KeyKind)
    try:
        roster = secretariat.rotate_key(member.upper(), kinds, timedelta(days=overlap_days), datetime.now(UTC))
    except IntelshareError as exc:
        fail(str(exc), exit_code_for(exc))
    _written(secretariat, roster, sign_as, f"{member.upper()}'s {', '.join(kinds)} key(s) rotated")


@roster_app.command("revoke-key")
def revoke_key(
    directory: DirOpt,
    member: Annotated[str | None, typer.Option("--member", "-m", help="Revoke this member's signing key.")] = None,
    keyid: Annotated[str | None, typer.Option(help="Revoke this key id instead (e.g. a retired key).")] = None,
    sign_as: SignAsOpt = None,
) -> None:
    """Revoke a compromised signing key: once published, everything signed with it is refused."""
    secretariat = _open(directory, sign_as or [])
    try:
        roster = secretariat.revoke_key(member.upper() if member else None, keyid, datetime.now(UTC))
    except IntelshareError as exc:
        fail(str(exc), exit_code_for(exc))
    _written(secretariat, roster, sign_as, f"key of {member.upper()} revoked" if member else f"key {keyid} revoked")


def _publish_table(results: list[Delivered], version: int) -> None:
    colour = {"applied": "green", "already held": "green", "refused": "red", "unreachable": "yellow"}
    rows = [
        (
            r.member_id,
            r.endpoint,
            f"[{colour[r.outcome]}]{r.outcome}[/]",
            r.reason,
            f"v{r.roster_version}" if r.roster_version else "—",
            r.detail,
        )
        for r in results
    ]
    print_table(f"Roster v{version} published", ("node", "endpoint", "outcome", "reason", "holds", "detail"), rows)


@roster_app.command("publish")
def publish(
    directory: DirOpt,
    file: Annotated[Path | None, typer.Option(help="The roster version to send (default: roster.json).")] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="Only these nodes (repeat).")] = None,
) -> None:
    """Send the roster to every node; each applies a newer version at once and passes it on.

    Exit 0 when every node holds it, 1 when a node refused it (the table says why), 8 when
    a node was not reachable (the nodes that applied it pass it on).
    """
    secretariat = _open(directory)
    path = file or secretariat.layout.roster
    try:
        signed = Signed.from_bytes(path.read_bytes())
        version = Roster.from_bytes(signed.payload).version
        results = secretariat.publish(signed, [m.upper() for m in to or []])
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")
    except IntelshareError as exc:
        fail(str(exc), exit_code_for(exc))
    _publish_table(results, version)
    if any(r.outcome == "refused" for r in results):
        raise typer.Exit(ExitCode.FAILED)
    if any(r.outcome == "unreachable" for r in results):
        raise typer.Exit(ExitCode.UNAVAILABLE)
