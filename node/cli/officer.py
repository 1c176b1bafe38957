"""Officer commands: send, correct, reshare, inbox, show, recall, notices, outbox (through the node's desk)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from node.cli.base import (
    DirOpt,
    ExitCode,
    MemberOpt,
    VersionOpt,
    app,
    console,
    fail,
    one_line,
    open_desk,
    outcomes_table,
    print_table,
)
from node.client import DeskClient
from node.lifecycle import OutboxState
from node.wire import desk_pb2
from protocol.classification import parse_band
from protocol.errors import IntelshareError
from protocol.item import RawData, ReportTemplate, item_from_bytes
from protocol.label import Category, InformationCredibility, Label, SourceReliability

__all__ = ["correct", "inbox", "notices", "outbox", "recall", "reshare", "send", "show"]


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
    retain_days: Annotated[int, typer.Option(help="Retention in days (1 or more).", min=1)] = 180,
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
        fail(str(exc), ExitCode.INVALID)
    try:
        roster = LocalFederation(directory).roster
    except (OSError, ValueError, IntelshareError) as exc:  # missing, not JSON, not a roster
        fail(f"cannot read the roster of {directory}: {one_line(exc)}")
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
    except (ValueError, OSError) as exc:  # a value the label or report refuses: one line, no pydantic links
        fail(one_line(exc), ExitCode.INVALID)
    with open_desk(directory, member) as desk:
        response = desk.submit(label, item, to)
        _report(desk, response, f"item {response.item_id} v{response.item_version}", wait=wait)


def _report(client: DeskClient, response: desk_pb2.SubmitResponse, title: str, *, wait: bool) -> None:
    """The decisions, then (if asked) each delivery's outcome.

    Exit 3 if any recipient was refused by policy; else exit 8 if a delivery is still
    queued after its first attempt failed (the peer is down or unreachable: the node
    retries it, SPEC §11.6), said in one line.
    """
    console.print(outcomes_table(response, title))
    queued: list[str] = []
    if wait:
        for entry in _first_attempts(client, [o.envelope_id for o in response.outcomes if o.allowed]).values():
            if entry.state == OutboxState.PENDING.value:
                queued.append(entry.recipient)
                console.print(f"  {entry.recipient}: [yellow]queued[/] {entry.last_error}")
            else:
                colour = "green" if entry.state == OutboxState.DELIVERED.value else "red"
                console.print(f"  {entry.recipient}: [{colour}]{entry.state}[/] {entry.reason}")
    if not all(o.allowed for o in response.outcomes):
        raise typer.Exit(ExitCode.REFUSED)
    if queued:
        fail(
            f"not delivered yet to {', '.join(queued)} (not reachable now): queued, the node retries until "
            "it is; 'intelshare outbox' shows it",
            ExitCode.UNAVAILABLE,
        )


def _first_attempts(client: DeskClient, envelope_ids: list[str], timeout: float = 30.0) -> dict[str, Any]:
    """Each envelope's outbox entry once it is settled, or once a first attempt failed (it stays queued)."""
    wanted = set(envelope_ids)
    deadline = time.monotonic() + timeout
    while True:
        entries = {e.envelope_id: e for e in client.outbox() if e.envelope_id in wanted}
        decided = [e for e in entries.values() if e.state != OutboxState.PENDING.value or e.attempts > 0]
        if len(decided) == len(wanted) or time.monotonic() > deadline:
            return entries
        time.sleep(0.1)


@app.command()
def reshare(
    item_id: Annotated[str, typer.Argument(help="Item id, or a prefix of exactly one.")],
    directory: DirOpt,
    member: MemberOpt,
    to: Annotated[list[str], typer.Option("--to", help="Recipient (repeat).")],
    version: VersionOpt = 1,
    wait: Annotated[bool, typer.Option(help="Wait for receipts.")] = True,
) -> None:
    """Pass a held item to other members; needs the originator's consent for third parties."""
    with open_desk(directory, member) as desk:
        response = desk.reshare(item_id, to, version)
        _report(desk, response, f"re-share of {response.item_id} v{response.item_version}", wait=wait)


@app.command()
def inbox(directory: DirOpt, member: MemberOpt, limit: Annotated[int, typer.Option(help="How many.")] = 50) -> None:
    """List items held by the node, each label in the reader's marking beside the originator's."""
    with open_desk(directory, member) as desk:
        entries = desk.inbox(limit)
    columns = ("item", "v", "from", "originator", "band", "originator's marking", "our marking", "topics", "status")
    rows = [
        (
            e.item_id,
            str(e.item_version),
            e.sender,
            e.originator,
            e.band,
            e.originator_marking,
            e.reader_marking,
            ", ".join(e.topics),
            e.status,
        )
        for e in entries
    ]
    print_table(f"{member.upper()} inbox", columns, rows)


@app.command()
def show(
    item_id: Annotated[str, typer.Argument(help="Item id, or a prefix of exactly one.")],
    directory: DirOpt,
    member: MemberOpt,
    version: VersionOpt = 1,
) -> None:
    """Show one item: its label in both markings, its content and its consent chain (audited)."""
    with open_desk(directory, member) as desk:
        response = desk.read(item_id, version)
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
            f"{grant['expires_at']} (transferable: {grant['transferable']}); conditions: "
            f"{', '.join(grant['conditions']) or '-'}"
        )


@app.command()
def recall(
    item_id: Annotated[str, typer.Argument(help="Item id, or a prefix of exactly one.")],
    directory: DirOpt,
    member: MemberOpt,
    reason: Annotated[str, typer.Option(help="Why.")],
    version: VersionOpt = 1,
) -> None:
    """Recall an item this node originated; the notice reaches every holder, downstream too."""
    with open_desk(directory, member) as desk:
        response = desk.recall(item_id, reason, version)
    console.print(f"recall {response.recall_id} sent to {', '.join(response.notified) or 'nobody'}")


@app.command()
def correct(
    item_id: Annotated[str, typer.Argument(help="Item id of an item this node originated.")],
    directory: DirOpt,
    member: MemberOpt,
    to: Annotated[list[str] | None, typer.Option("--to", help="Recipients of the new version (repeat).")] = None,
    source: Annotated[
        Path | None, typer.Option("--from", help="JSON object of the report fields to change (title, body, …).")
    ] = None,
    title: Annotated[str | None, typer.Option(help="New title.")] = None,
    summary: Annotated[str | None, typer.Option(help="New summary.")] = None,
    body: Annotated[str | None, typer.Option(help="New body.")] = None,
    assessment: Annotated[str | None, typer.Option(help="New assessment.")] = None,
    band: Annotated[str | None, typer.Option(help="New band (the label is otherwise kept).")] = None,
    reason: Annotated[str, typer.Option(help="Why; every holder of the old version is told.")] = "",
    wait: Annotated[bool, typer.Option(help="Wait for the receivers' receipts.")] = True,
) -> None:
    """Issue a corrected version of an item this node originated (SPEC §10.2).

    The new version keeps the newest version's label and content except what is given,
    and goes to --to (default: the label's release list). Every holder of the version it
    corrects is sent a signed correction, and passes it on to whoever it re-shared to,
    like a recall.
    """
    from node.harness import LocalFederation

    with open_desk(directory, member) as desk:
        previous = desk.read(item_id, 0)
        if previous.entry.originator != member.upper():
            fail(f"{member.upper()} did not originate {item_id}: only its originator corrects it", ExitCode.PERMISSION)
        label = Label.model_validate_json(previous.label_json)
        content = item_from_bytes(previous.item_json.encode())
        if not isinstance(content, ReportTemplate):
            fail("only a report can be corrected from the command line", ExitCode.INVALID)
        changes: dict[str, object] = {}
        if source is not None:
            try:
                loaded = json.loads(source.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                fail(f"{source}: {exc}")
            if not isinstance(loaded, dict):
                fail(f"{source}: expected a JSON object of report fields")
            changes |= loaded
        given = {"title": title, "summary": summary, "body": body, "assessment": assessment}
        changes |= {key: value for key, value in given.items() if value is not None}
        try:
            if band is not None:
                new_band = parse_band(band)
                marking = LocalFederation(directory).roster.marking(member.upper(), new_band)
                label = label.model_copy(update={"band": new_band, "originator_marking": marking})
            corrected = ReportTemplate.model_validate(content.model_dump() | changes)
        except ValueError as exc:
            fail(str(exc), ExitCode.INVALID)
        if corrected == content and band is None:
            fail("nothing to correct: give --from, --title, --summary, --body, --assessment or --band", ExitCode.USAGE)
        recipients = to or list(label.releasable_to)
        response = desk.correct(item_id, label, corrected, recipients, reason)
        console.print(f"item {item_id} v{previous.entry.item_version} corrected by v{response.item_version}")
        _report(desk, response, f"item {response.item_id} v{response.item_version}", wait=wait)


_NOTICE_EVENTS = (
    "RECALL_SENT",
    "CORRECTION_SENT",
    "RECALL_RECEIVED",
    "CORRECTION_RECEIVED",
    "NOTICE_ACKNOWLEDGED",
    "CONSENT_REVOCATION_SENT",
    "CONSENT_REVOKED",
)


@app.command()
def notices(
    item_id: Annotated[str, typer.Argument(help="Item id.")],
    directory: DirOpt,
    member: MemberOpt,
) -> None:
    """Recalls, corrections and revocations of an item at this node, and who acknowledged them (SPEC §10.3)."""
    with open_desk(directory, member) as desk:
        entries = [e for e in desk.audit(item_id=item_id, limit=10_000) if e["event"] in _NOTICE_EVENTS]
    rows = []
    for e in entries:
        d = e["detail"]
        if e["event"] == "NOTICE_ACKNOWLEDGED":
            what = f"{d.get('holder')} applied {d.get('kind')} (its entry #{d.get('holder_seq')}) via {d.get('via')}"
        elif e["event"].endswith("_SENT"):
            what = f"notified {', '.join(d.get('notified', [])) or 'nobody'}"
        else:
            what = f"from {e['peer']}; passed on to {', '.join(d.get('forwarded_to', [])) or 'nobody'}"
        rows.append((str(e["seq"]), e["at"], e["event"], f"v{e['item_version']}", e["reason"] or "", what))
    columns = ("seq", "at", "event", "version", "reason", "what")
    print_table(f"{member.upper()}: notices of {item_id}", columns, rows)


@app.command()
def outbox(
    directory: DirOpt,
    member: MemberOpt,
    state: Annotated[str, typer.Option(help="pending, delivered, refused or failed.")] = "",
) -> None:
    """Show the node's outbox."""
    with open_desk(directory, member) as desk:
        entries = desk.outbox(state)
    columns = ("envelope", "to", "item", "state", "attempts", "reason", "last error")
    rows = [(e.envelope_id, e.recipient, e.item_id, e.state, str(e.attempts), e.reason, e.last_error) for e in entries]
    print_table(f"{member.upper()} outbox", columns, rows)
