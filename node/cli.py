"""``intelshare``: the command line for officers, auditors and trainers.

Every command has ``--help``; user mistakes print one clear line and exit non-zero,
never a traceback. Node commands talk to the node's desk socket; ``audit`` commands
open the node's database directly, so an auditor can work with the node stopped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from protocol.classification import parse_band
from protocol.errors import IntelshareError
from protocol.item import RawData, ReportTemplate
from protocol.label import Category, InformationCredibility, SourceReliability

__all__ = ["app", "main"]

app = typer.Typer(
    help="intelshare: policy-enforcing intelligence sharing between member services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
federation_app = typer.Typer(help="Create a federation directory.", no_args_is_help=True)
node_app = typer.Typer(help="Run a member service's node.", no_args_is_help=True)
consent_app = typer.Typer(help="Third-party consent requests and decisions.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect, export and verify a node's audit log.", no_args_is_help=True)
app.add_typer(federation_app, name="federation")
app.add_typer(node_app, name="node")
app.add_typer(consent_app, name="consent")
app.add_typer(audit_app, name="audit")

console = Console()
err = Console(stderr=True)

DirOpt = Annotated[Path, typer.Option("--dir", "-d", help="Federation directory.", envvar="INTELSHARE_DIR")]
MemberOpt = Annotated[
    str, typer.Option("--member", "-m", help="Member id of the node, e.g. TR.", envvar="INTELSHARE_MEMBER")
]
VersionOpt = Annotated[int, typer.Option("--version", help="Item version.")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line to stderr and exit non-zero."""
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _config_path(directory: Path, member: str) -> Path:
    path = directory / "nodes" / member.upper() / "node.toml"
    if not path.is_file():
        fail(f"no node {member!r} in {directory} (expected {path})")
    return path


@contextmanager
def _desk(directory: Path, member: str) -> Iterator[Any]:
    from node.config import load_node_config
    from node.harness import DeskClient, DeskError

    cfg = load_node_config(_config_path(directory, member))
    if not cfg.desk_socket.exists():
        fail(
            f"node {member} is not running (no desk socket at {cfg.desk_socket}); start it with "
            f"'intelshare node run --dir {directory} --member {member}'"
        )
    client = DeskClient(cfg.desk_socket)
    try:
        yield client
    except DeskError as exc:
        if exc.code == "UNAVAILABLE":
            fail(f"node {member} is not reachable: {exc}")
        fail(str(exc))
    finally:
        client.close()


def _outcomes_table(response: Any, title: str) -> Table:
    table = Table(title=title)
    for column in ("recipient", "decision", "reason", "rule", "detail", "envelope"):
        table.add_column(column)
    for o in response.outcomes:
        table.add_row(
            o.recipient,
            "[green]allowed[/]" if o.allowed else "[red]refused[/]",
            o.reason,
            o.rule,
            o.detail,
            o.envelope_id[:12],
        )
    return table


# --- federation, node ----------------------------------------------------------------


@federation_app.command("init")
def federation_init(
    config: Annotated[Path, typer.Argument(help="Federation TOML file (see examples/federation.toml).")],
    directory: DirOpt,
    base_port: Annotated[int | None, typer.Option(help="First TCP port; free ports are picked if unset.")] = None,
) -> None:
    """Create the CA, member keys and certificates, signed roster and agreements in DIR."""
    from node.federation import init_federation

    if not config.is_file():
        fail(f"no federation file {config}")
    layout = init_federation(config, directory, now=datetime.now(UTC), base_port=base_port)
    console.print(f"federation written to [bold]{layout.root}[/] for {', '.join(layout.members)}")


@node_app.command("run")
def node_run(
    directory: Annotated[Path | None, typer.Option("--dir", "-d", help="Federation directory.")] = None,
    member: Annotated[str | None, typer.Option("--member", "-m", help="Member id.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Path to the node's node.toml.")] = None,
) -> None:
    """Run a node in the foreground until SIGTERM or Ctrl-C."""
    from node.server import run_node

    if config is None:
        if directory is None or member is None:
            fail("give --config, or both --dir and --member")
        config = _config_path(directory, member)
    run_node(config)


# --- officer commands -----------------------------------------------------------------


@app.command()
def send(
    directory: DirOpt,
    member: MemberOpt,
    to: Annotated[list[str], typer.Option("--to", help="Recipient member id (repeat for several).")],
    band: Annotated[str, typer.Option(help="UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET or TOP_SECRET.")],
    title: Annotated[str, typer.Option(help="Report title.")],
    summary: Annotated[str, typer.Option(help="Report summary.")] = "",
    body: Annotated[str, typer.Option(help="Report body.")] = "",
    assessment: Annotated[str, typer.Option(help="The originator's assessment.")] = "",
    category: Annotated[Category, typer.Option(help="Category.")] = Category.INTELLIGENCE,
    topic: Annotated[list[str] | None, typer.Option("--topic", help="Topic (repeat).")] = None,
    releasable_to: Annotated[list[str] | None, typer.Option(help="Release list; defaults to --to.")] = None,
    retain_days: Annotated[int, typer.Option(help="Retention in days.")] = 180,
    reliability: Annotated[SourceReliability, typer.Option(help="Source reliability A–F.")] = SourceReliability.B,
    credibility: Annotated[InformationCredibility, typer.Option(help="Credibility 1–6.")] = (
        InformationCredibility.PROBABLY_TRUE
    ),
    raw_file: Annotated[Path | None, typer.Option(help="Send this file as raw data instead of a report.")] = None,
    media_type: Annotated[str, typer.Option(help="Media type of --raw-file.")] = "application/octet-stream",
    wait: Annotated[bool, typer.Option(help="Wait for the receivers' receipts.")] = True,
) -> None:
    """Share a new item with one or more members, each under its own agreement."""
    from node.harness import LocalFederation, make_label

    try:
        parsed_band = parse_band(band)
    except ValueError as exc:
        fail(str(exc))
    roster = LocalFederation(directory).roster
    try:
        label = make_label(
            roster,
            member.upper(),
            band=parsed_band,
            category=category,
            topics=topic or ["terrorism"],
            releasable_to=releasable_to or to,
            retain_days=retain_days,
            grading=(reliability, credibility),
        )
        item: ReportTemplate | RawData
        if raw_file is not None:
            item = RawData(description=title, media_type=media_type, data=raw_file.read_bytes())
        else:
            item = ReportTemplate(
                title=title,
                summary=summary or title,
                body=body or title,
                assessment=assessment or "not assessed",
                grading=label.grading,
            )
    except (ValueError, OSError) as exc:
        fail(str(exc))
    with _desk(directory, member) as desk:
        response = desk.submit(label, item, to)
        console.print(_outcomes_table(response, f"item {response.item_id} v{response.item_version}"))
        if wait:
            _print_settled(desk, response)
    if not all(o.allowed for o in response.outcomes):
        raise typer.Exit(2)


def _print_settled(desk: Any, response: Any) -> None:
    settled = desk.wait_settled([o.envelope_id for o in response.outcomes if o.allowed])
    for entry in settled.values():
        colour = "green" if entry.state == "delivered" else "red"
        console.print(f"  {entry.recipient}: [{colour}]{entry.state}[/] {entry.reason}")


@app.command()
def reshare(
    item_id: Annotated[str, typer.Argument(help="Item id.")],
    directory: DirOpt,
    member: MemberOpt,
    to: Annotated[list[str], typer.Option("--to", help="Recipient (repeat).")],
    version: VersionOpt = 1,
    wait: Annotated[bool, typer.Option(help="Wait for receipts.")] = True,
) -> None:
    """Pass a held item to other members; needs the originator's consent for third parties."""
    with _desk(directory, member) as desk:
        response = desk.reshare(item_id, to, version)
        console.print(_outcomes_table(response, f"re-share of {item_id} v{version}"))
        if wait:
            _print_settled(desk, response)
    if not all(o.allowed for o in response.outcomes):
        raise typer.Exit(2)


@app.command()
def inbox(directory: DirOpt, member: MemberOpt, limit: Annotated[int, typer.Option(help="How many.")] = 50) -> None:
    """List items held by the node, each label in the reader's marking beside the originator's."""
    with _desk(directory, member) as desk:
        entries = desk.inbox(limit)
    table = Table(title=f"{member.upper()} inbox")
    for column in (
        "item",
        "v",
        "from",
        "originator",
        "band",
        "originator's marking",
        "our marking",
        "topics",
        "status",
    ):
        table.add_column(column)
    for e in entries:
        table.add_row(
            e.item_id[:12],
            str(e.item_version),
            e.sender,
            e.originator,
            e.band,
            e.originator_marking,
            e.reader_marking,
            ", ".join(e.topics),
            e.status,
        )
    console.print(table)


@app.command()
def show(
    item_id: Annotated[str, typer.Argument(help="Item id.")],
    directory: DirOpt,
    member: MemberOpt,
    version: VersionOpt = 1,
) -> None:
    """Show one item: its label in both markings, its content and its consent chain (audited)."""
    with _desk(directory, member) as desk:
        response = desk.read(_expand(desk, item_id), version)
    e = response.entry
    label = json.loads(response.label_json)
    console.print(f"[bold]{e.item_id}[/] v{e.item_version} from {e.sender}, originator {e.originator}")
    console.print(
        f"  classification: [bold]{e.originator_marking}[/] ({e.originator}) = "
        f"[bold]{e.reader_marking}[/] ({member.upper()}) = {e.band}"
    )
    console.print(
        f"  category {label['category']}; topics {', '.join(label['topics'])}; grading "
        f"{label['source_reliability']}{label['information_credibility']}; retain until "
        f"{label['retain_until']}; use: {', '.join(label['use_limitations']) or '-'}"
    )
    item = json.loads(response.item_json)
    for key in ("title", "summary", "body", "assessment", "description", "media_type"):
        if key in item:
            console.print(f"  {key}: {item[key]}")
    for link in response.consent_chain_json:
        grant = json.loads(link)
        console.print(
            f"  consent: {grant['grantor']} lets {grant['holder']} pass it to {grant['grantee']} until "
            f"{grant['expires_at']} (transferable: {grant['transferable']})"
        )


def _expand(desk: Any, prefix: str) -> str:
    """Accept the 12-character prefix the tables show."""
    if len(prefix) >= 32:
        return prefix
    matches = {e.item_id for e in desk.inbox(1000) if e.item_id.startswith(prefix)}
    return matches.pop() if len(matches) == 1 else prefix


@app.command()
def recall(
    item_id: Annotated[str, typer.Argument(help="Item id.")],
    directory: DirOpt,
    member: MemberOpt,
    reason: Annotated[str, typer.Option(help="Why.")],
    version: VersionOpt = 1,
) -> None:
    """Recall an item this node originated; the notice reaches every holder, downstream too."""
    with _desk(directory, member) as desk:
        response = desk.recall(item_id, reason, version)
    console.print(f"recall {response.recall_id} sent to {', '.join(response.notified) or 'nobody'}")


@app.command()
def outbox(
    directory: DirOpt,
    member: MemberOpt,
    state: Annotated[str, typer.Option(help="pending, delivered, refused or failed.")] = "",
) -> None:
    """Show the node's outbox."""
    with _desk(directory, member) as desk:
        entries = desk.outbox(state)
    table = Table(title=f"{member.upper()} outbox")
    for column in ("envelope", "to", "item", "state", "attempts", "reason", "last error"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.envelope_id[:12], e.recipient, e.item_id[:12], e.state, str(e.attempts), e.reason, e.last_error)
    console.print(table)


# --- consent --------------------------------------------------------------------------


@consent_app.command("list")
def consent_list(
    directory: DirOpt, member: MemberOpt, state: Annotated[str, typer.Option(help="pending, granted or denied.")] = ""
) -> None:
    """List consent requests (incoming: to decide; outgoing: asked by this node)."""
    with _desk(directory, member) as desk:
        rows = desk.consent_requests(state)
    table = Table(title=f"{member.upper()} consent requests")
    for column in ("request", "direction", "item", "requester", "third party", "purpose", "state"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.request_id, r.direction, r.item_id[:12], r.requester, r.third_party, r.purpose, r.state)
    console.print(table)


@consent_app.command("ask")
def consent_ask(
    item_id: Annotated[str, typer.Argument(help="Item id.")],
    directory: DirOpt,
    member: MemberOpt,
    third_party: Annotated[str, typer.Option("--for", help="Member to pass it to.")],
    purpose: Annotated[str, typer.Option(help="Why.")],
    version: VersionOpt = 1,
) -> None:
    """Ask the originator for consent to pass an item to a third party."""
    with _desk(directory, member) as desk:
        response = desk.ask_consent(item_id, third_party, purpose, version)
    console.print(f"request {response.request_id}: {response.state} {response.reason}")


@consent_app.command("grant")
def consent_grant(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    directory: DirOpt,
    member: MemberOpt,
    valid_days: Annotated[int, typer.Option(help="Validity.")] = 30,
    transferable: Annotated[bool, typer.Option(help="May the grantee pass it on?")] = False,
) -> None:
    """Grant a pending request (signed by this node, the originator)."""
    with _desk(directory, member) as desk:
        response = desk.decide(request_id, grant=True, transferable=transferable, valid_days=valid_days)
    console.print(f"request {response.request_id}: granted (grant {response.grant_id})")


@consent_app.command("deny")
def consent_deny(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    directory: DirOpt,
    member: MemberOpt,
    reason: Annotated[str, typer.Option(help="Why.")],
) -> None:
    """Deny a pending request with a reason."""
    with _desk(directory, member) as desk:
        response = desk.decide(request_id, grant=False, reason=reason)
    console.print(f"request {response.request_id}: denied")


# --- audit ----------------------------------------------------------------------------


@contextmanager
def _audit_session(directory: Path, member: str) -> Iterator[Any]:
    from node.config import load_node_config
    from node.storage import make_engine, make_sessionmaker

    cfg = load_node_config(_config_path(directory, member))
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
        table = Table(title=f"{member.upper()} audit log")
        for column in ("seq", "at", "event", "peer", "item", "allowed", "reason", "rule"):
            table.add_column(column)
        for r in rows:
            allowed = "" if r.allowed is None else ("[green]yes[/]" if r.allowed else "[red]no[/]")
            table.add_row(
                str(r.seq),
                audit.format_time(r.at)[:19],
                r.event,
                r.peer or "",
                (r.item_id or "")[:12],
                allowed,
                r.reason or "",
                r.rule or "",
            )
    console.print(table)


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


# --- demo -----------------------------------------------------------------------------


@app.command()
def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", "-d", help="Where to build it (default: a new temporary directory).")
    ] = None,
    federation: Annotated[
        Path | None, typer.Option(help="Federation TOML (default: examples/federation.toml).")
    ] = None,
) -> None:
    """Build the five-member demonstration federation and play the trainers' scenario."""
    from node.demo import run_demo

    raise typer.Exit(run_demo(directory, federation, console))


def main() -> None:
    """Console entry point: typed errors become one line, never a traceback."""
    try:
        app()
    except IntelshareError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
