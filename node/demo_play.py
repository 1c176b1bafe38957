"""The trainers' scenario, step by step (``node.demo``; examples/TRAINERS.md explains each step).

Each step asks the ``Referee`` what the federation file says before it acts, expects that,
and skips, saying why, what an earlier refusal made moot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.table import Table

from node import audit
from node.client import DeskClient, DeskError
from node.config import AutoGrant, load_node_config
from node.demo_referee import Cast, Referee, Transcript, forge_delivery
from node.harness import LocalFederation, eventually, make_label
from node.store import make_reader, make_sessionmaker
from protocol.classification import Band
from protocol.item import ReportTemplate
from protocol.label import Label
from protocol.policy import Reason

__all__ = ["SHORT_RETENTION", "play"]

#: How long the short-lived item of the retention step is kept.
SHORT_RETENTION = timedelta(seconds=8)


def _holdings(fed: LocalFederation, members: tuple[str, ...], t: Transcript) -> None:
    table = Table(title="Who holds what, under which rule")
    for column in ("holder", "item", "originator", "from", "band (holder's marking)", "held under", "status"):
        table.add_column(column)
    for member in members:
        desk = fed.desk(member)
        try:
            held = {a.agreement_id: a for a in desk.agreements().agreements}
            for e in desk.inbox():
                ag = next((a for a in held.values() if e.sender in a.parties), None)
                rule = f"{ag.agreement_id} v{ag.version}" if ag else "?"
                if e.sender != e.originator:
                    rule += f" + {e.originator}'s signed consent"
                table.add_row(
                    member, e.item_id, e.originator, e.sender, f"{e.band} ({e.reader_marking})", rule, e.status
                )
        finally:
            desk.close()
    t.console.print(table)


def _verify_audits(fed: LocalFederation, members: tuple[str, ...], t: Transcript) -> None:
    table = Table(title="Audit logs")
    for column in ("node", "entries", "verifies"):
        table.add_column(column)
    for member in members:
        cfg = load_node_config(fed.root / "nodes" / member / "node.toml")
        engine = make_reader(cfg.database_url)  # the node runs: read, never write
        try:
            with make_sessionmaker(engine)() as session:
                report = audit.verify(session)
        finally:
            engine.dispose()
        table.add_row(member, str(report.entries), "[green]yes[/]" if report.ok else "[red]NO[/]")
        t.expect(f"{member}'s audit log verifies", report.ok, f"{report.entries} entries")
    t.console.print(table)


def _audit_has(desk: DeskClient, event: str, reason: str, peer: str) -> bool:
    return any(r["reason"] == reason and r["peer"] == peer for r in desk.audit(event=event))


def _report(label: Label, title: str, summary: str, body: str, assessment: str) -> ReportTemplate:
    """A report in the federation's template, graded as its label says."""
    return ReportTemplate(title=title, summary=summary, body=body, assessment=assessment, grading=label.grading)


def _status(desk: DeskClient, item_id: str) -> str | None:
    return next((e.status for e in desk.inbox(1000) if e.item_id == item_id), None)


def _waited(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    return eventually(predicate, timeout=timeout)


@dataclass
class _Story:
    """What the scenario established so far, for the steps that build on it."""

    item_id: str = ""
    held_by_recipient: bool = False
    grant_id: str = ""
    transferable: bool = False
    held_by_target: bool = False


def play(fed: LocalFederation, t: Transcript, referee: Referee | None = None) -> None:
    """The trainers' scenario (examples/TRAINERS.md explains each step)."""
    referee = referee or Referee(fed.root)
    c = referee.cast
    o_id, r_id, t_id, u_id = c.originator, c.recipient, c.reshare_target, c.refused_target
    o, r, tgt, u = (fed.desk(m) for m in (o_id, r_id, t_id, u_id))
    story = _Story()
    try:
        _share(fed, t, referee, o, r, story)
        _reshare_without_consent(t, referee, r, story)
        _consent(t, referee, o, r, story)
        _reshare_with_consent(t, referee, r, tgt, story)
        _onward(t, referee, tgt, story)
        _ceiling(fed, t, referee, r)
        _forgery(fed, t, r, c)
        _revoke(t, o, r, tgt, c, story)
        _recall(t, o, r, tgt, c, story)
        _retention(fed, t, referee, o, r, c)
        t.step(
            "Every node's audit log verifies; who holds what",
            "Each log is a hash-linked chain (RFC 9162 leaf hashes): an edited, removed or reordered entry "
            "would be named. The table shows every copy and the rule it is held under.",
        )
        members = referee.members()
        _verify_audits(fed, members, t)
        _holdings(fed, members, t)
        if story.item_id:
            at_target = any(e.item_id == story.item_id for e in tgt.inbox())
            at_refused = any(e.item_id == story.item_id for e in u.inbox())
            t.expect(
                f"the item reached exactly {o_id}'s recipients and consented third parties",
                not at_refused and at_target == story.held_by_target,
                f"{t_id} {'holds' if at_target else 'does not hold'} it; {u_id} does not",
            )
    finally:
        for desk in (o, r, tgt, u):
            desk.close()


def _share(fed: LocalFederation, t: Transcript, referee: Referee, o: DeskClient, r: DeskClient, s: _Story) -> None:
    c = referee.cast
    t.step(
        f"{c.originator} shares a SECRET item with {c.recipient}",
        f"{c.originator}'s service reports a cell moving along the Caspian coast to {c.recipient}'s service, "
        f"under their bilateral agreement. {c.originator} signs the origin attestation, seals the item to "
        f"{c.recipient} with HPKE, and {c.recipient} re-checks everything on arrival.",
    )
    label = make_label(
        fed.roster, c.originator, band=Band.SECRET, topics=["terrorism"], releasable_to=[c.recipient], retain_days=90
    )
    item = _report(
        label,
        "Cell movement on the Caspian coast",
        "Three members of a known cell crossed at Aktau.",
        "Observed crossing on the ferry line; documents in false names.",
        "Likely preparing logistics for an attack abroad.",
    )
    expected = referee.decide(c.originator, c.recipient, label)
    sent = o.submit(label, item, [c.recipient])
    s.item_id = sent.item_id
    if not t.decided(sent, expected):
        t.note(f"{c.recipient} does not receive the item: the steps that need it are skipped")
        return
    settled = o.wait_settled([out.envelope_id for out in sent.outcomes if out.allowed])
    delivered = all(e.state == "delivered" for e in settled.values())
    t.expect(
        f"{c.originator}→{c.recipient} delivered with {c.recipient}'s signed receipt",
        delivered,
        ", ".join(e.state for e in settled.values()),
    )
    held = [e for e in r.inbox() if e.item_id == s.item_id]
    shown = f"{held[0].originator_marking} ({c.originator}) = {held[0].reader_marking} ({c.recipient})" if held else "-"
    t.expect(f"{c.recipient} holds it, label shown in both national markings", bool(held), shown)
    s.held_by_recipient = bool(held)


def _reshare_without_consent(t: Transcript, referee: Referee, r: DeskClient, s: _Story) -> None:
    c = referee.cast
    t.step(
        f"{c.recipient} tries to pass it to {c.reshare_target} without consent",
        "The bilateral protocols ban re-sharing with a third party without the originator's written "
        f"consent. {c.recipient}'s own node refuses at egress, and the refusal is audited.",
    )
    if not s.held_by_recipient:
        t.skip("the re-share", f"{c.recipient} does not hold the item")
        return
    label = Label.model_validate_json(r.read(s.item_id).label_json)
    expected = referee.decide(c.recipient, c.reshare_target, label)
    refused = r.reshare(s.item_id, [c.reshare_target])
    t.decided(refused, expected)
    t.expect(
        f"the refusal is in {c.recipient}'s audit log",
        _audit_has(r, "RESHARE", expected.reason.value, c.reshare_target),
        f"RESHARE … {expected.reason.value}",
    )


def _consent(t: Transcript, referee: Referee, o: DeskClient, r: DeskClient, s: _Story) -> None:
    c = referee.cast
    rule = referee.consent(c.originator, c.reshare_target, Band.SECRET)
    if isinstance(rule, AutoGrant):
        how = (
            f"{c.originator}'s standing rule grants consent for {c.reshare_target} up to {rule.max_band.name}, for "
            f"{rule.valid_days} days, {'transferable' if rule.transferable else 'not transferable'}"
        )
    elif rule == "manual":
        how = f"{c.originator}'s officer decides by hand here, and grants it for 30 days, not transferable"
    else:
        how = f"{c.originator}'s standing rules deny it, with a reason {c.recipient} is shown"
    t.step(
        f"{c.recipient} asks {c.originator} for consent",
        f"{c.recipient}'s request travels to {c.originator} over mutual TLS. {how}; the signed answer travels back.",
    )
    if not s.held_by_recipient:
        t.skip("the consent request", f"{c.recipient} does not hold the item")
        return
    asked = r.ask_consent(s.item_id, c.reshare_target, "joint operation against the same network")
    t.note(f"request {asked.request_id}: {asked.state} {asked.reason}")
    if rule == "manual":
        _waited(lambda: any(q.request_id == asked.request_id for q in o.consent_requests("pending")))
        o.decide(asked.request_id, grant=True, valid_days=30)
    answer = r.wait_decided(asked.request_id, timeout=20.0)
    if rule == "deny":
        t.expect(
            f"{c.originator} denied it and {c.recipient} is shown why",
            answer is not None and answer.state == "denied" and bool(answer.reason),
            "no answer" if answer is None else f"{answer.state}: {answer.reason}",
        )
        return
    granted = answer is not None and answer.state == "granted"
    t.expect(
        f"{c.originator}'s signed grant reached {c.recipient}", granted, "no answer" if answer is None else answer.state
    )
    if granted and answer is not None:
        s.grant_id, s.transferable = answer.grant_id, isinstance(rule, AutoGrant) and rule.transferable


def _reshare_with_consent(t: Transcript, referee: Referee, r: DeskClient, tgt: DeskClient, s: _Story) -> None:
    c = referee.cast
    t.step(
        f"{c.recipient} re-shares with {c.reshare_target}, carrying {c.originator}'s grant",
        f"{c.reshare_target} verifies {c.originator}'s origin attestation and the whole consent chain before "
        "accepting.",
    )
    if not s.grant_id:
        t.skip("the re-share", f"{c.recipient} holds no grant from {c.originator}")
        return
    label = Label.model_validate_json(r.read(s.item_id).label_json)
    refusal = referee.agreement_refusal(c.recipient, c.reshare_target, label)
    reshared = r.reshare(s.item_id, [c.reshare_target])
    if refusal is not None:
        t.decided(reshared, refusal)
        return
    t.decisions(reshared)
    settled = r.wait_settled([out.envelope_id for out in reshared.outcomes if out.allowed])
    t.expect(
        f"{c.recipient}→{c.reshare_target} delivered",
        bool(settled) and all(e.state == "delivered" for e in settled.values()),
        ", ".join(f"{e.state} {e.reason}" for e in settled.values()) or reshared.outcomes[0].reason,
    )
    read = tgt.read(s.item_id) if settled else None
    chain = [] if read is None else list(read.consent_chain_json)
    t.expect(
        f"{c.reshare_target} holds it with {c.originator}'s grant in its consent chain",
        len(chain) == 1,
        ", ".join(link[:60] + "…" for link in chain) or "not held",
    )
    s.held_by_target = read is not None


def _onward(t: Transcript, referee: Referee, tgt: DeskClient, s: _Story) -> None:
    c = referee.cast
    t.step(
        f"{c.reshare_target} tries to pass it on to {c.refused_target}",
        f"{c.originator}'s grant let {c.recipient} pass the item to {c.reshare_target}; only a transferable "
        f"grant would let {c.reshare_target} pass it on, and then only with a grant of its own.",
    )
    if not s.held_by_target:
        t.skip("the onward transfer", f"{c.reshare_target} does not hold the item")
        return
    label = Label.model_validate_json(tgt.read(s.item_id).label_json)
    refusal = referee.agreement_refusal(c.reshare_target, c.refused_target, label)
    onward = tgt.reshare(s.item_id, [c.refused_target])
    if refusal is not None:
        t.decided(onward, refusal)
    else:
        reason = Reason.THIRD_PARTY_WITHOUT_CONSENT if s.transferable else Reason.CONSENT_NOT_TRANSFERABLE
        t.refused(onward, reason.value)


def _ceiling(fed: LocalFederation, t: Transcript, referee: Referee, r: DeskClient) -> None:
    c = referee.cast
    agreement = referee.book.get(c.recipient, c.refused_target)
    terms = f"{agreement.agreement_id} v{agreement.version}" if agreement else "no agreement"
    t.step(
        f"{c.recipient} sends {c.refused_target} a SECRET item",
        f"{c.recipient} and {c.refused_target} share under {terms}. In the demonstration file it is hierarchical: "
        f"{c.recipient}, the senior party, sends no higher than CONFIDENTIAL, so a SECRET item is refused at "
        "egress, before anything is sealed. Whatever the file says decides.",
    )
    high = make_label(
        fed.roster,
        c.recipient,
        band=Band.SECRET,
        topics=["terrorism"],
        releasable_to=[c.refused_target],
        retain_days=90,
    )
    report = _report(high, "Network financing routes", "Hawala routes used by a network.", "Routes.", "Moderate.")
    t.decided(r.submit(high, report, [c.refused_target]), referee.decide(c.recipient, c.refused_target, high))


def _forgery(fed: LocalFederation, t: Transcript, r: DeskClient, c: Cast) -> None:
    t.step(
        "A misbehaving node forges a delivery",
        f"{c.refused_target}'s node, with its genuine certificate, delivers to {c.recipient} an envelope it signed "
        f"in {c.originator}'s name. {c.recipient} sees that the TLS peer is not the member that claims to have "
        "signed, refuses it and audits the refusal.",
    )
    receipt = forge_delivery(fed.root, rogue=c.refused_target, claimed_sender=c.originator, victim=c.recipient)
    t.expect(
        f"{c.recipient} refused SENDER_IDENTITY_MISMATCH",
        not receipt.accepted and receipt.reason == "SENDER_IDENTITY_MISMATCH",
        f"{receipt.reason} ({receipt.rule})",
    )
    t.expect(
        f"the forgery stored nothing in {c.recipient}'s inbox",
        not any(e.item_id == "forged-0001" for e in r.inbox()),
        "inbox unchanged",
    )
    t.expect(
        f"the refusal is in {c.recipient}'s audit log",
        _audit_has(r, "INGRESS", "SENDER_IDENTITY_MISMATCH", c.refused_target),
        "INGRESS … SENDER_IDENTITY_MISMATCH",
    )


def _applied(desk: DeskClient, event: str, item_id: str) -> list[dict[str, Any]]:
    """The allowed ``event`` entries about ``item_id`` in ``desk``'s audit log."""
    return [e for e in desk.audit(event=event, item_id=item_id) if e["allowed"]]


def _revoke(t: Transcript, o: DeskClient, r: DeskClient, tgt: DeskClient, c: Cast, s: _Story) -> None:
    t.step(
        f"{c.originator} revokes its grant",
        f"{c.originator} withdraws the consent it gave. The signed revocation goes to {c.recipient}, the grant's "
        f"holder, which applies it and passes it on to {c.reshare_target}, which received the item under it. "
        "Copies already delivered stay (a recall withdraws those); the grant carries no consent any more.",
    )
    if not s.grant_id:
        t.skip("the revocation", f"{c.originator} issued no grant in this run")
        return
    revoked = o.revoke_grant(s.grant_id, "the source is at risk")
    t.note(f"revocation {revoked.revocation_id} sent to {', '.join(revoked.notified)}")
    applied = _waited(lambda: len(_applied(r, "CONSENT_REVOKED", s.item_id)) == 1)
    t.expect(f"{c.recipient} applied the revocation", applied, "CONSENT_REVOKED … REVOKED" if applied else "not yet")
    if s.held_by_target:
        passed = _waited(lambda: len(_applied(tgt, "CONSENT_REVOKED", s.item_id)) == 1)
        got = _applied(tgt, "CONSENT_REVOKED", s.item_id)
        t.expect(
            f"{c.reshare_target} applied it too, passed on by {c.recipient}",
            passed and got[0]["peer"] == c.recipient,
            f"from {got[0]['peer']}" if got else "not yet",
        )
        t.refused(r.reshare(s.item_id, [c.reshare_target]), Reason.CONSENT_REVOKED.value)


def _recall(t: Transcript, o: DeskClient, r: DeskClient, tgt: DeskClient, c: Cast, s: _Story) -> None:
    t.step(
        f"{c.originator} recalls the item",
        f"The source is withdrawn. {c.originator} signs a recall; {c.recipient} applies it and passes the same "
        f"signed bytes to {c.reshare_target}, to which it re-shared the item. Each holder signs an "
        f"acknowledgement naming the entry in its own log, and {c.reshare_target}'s travels back through "
        f"{c.recipient}: {c.originator} holds every holder's signed word (see 'intelshare notices ITEM').",
    )
    if not s.held_by_recipient:
        t.skip("the recall", f"{c.recipient} does not hold the item")
        return
    recalled = o.recall(s.item_id, "source withdrawn")
    t.note(f"recall {recalled.recall_id} sent to {', '.join(recalled.notified)}")
    holders = [(c.recipient, r)] + ([(c.reshare_target, tgt)] if s.held_by_target else [])
    for member, desk in holders:
        done = _waited(lambda d=desk: _status(d, s.item_id) == "recalled")  # type: ignore[misc]
        t.expect(f"{member}'s copy is recalled", done, _status(desk, s.item_id) or "-")
    expected = {member for member, _ in holders}
    _waited(lambda: {str(a["detail"]["holder"]) for a in _applied(o, "NOTICE_ACKNOWLEDGED", s.item_id)} >= expected)
    acks = _applied(o, "NOTICE_ACKNOWLEDGED", s.item_id)
    table = Table(title=f"{c.originator}'s signed acknowledgements of the recall", box=None)
    for column in ("holder", "via", "holder's entry", "kept at"):
        table.add_column(column)
    for a in acks:
        d = a["detail"]
        table.add_row(str(d["holder"]), str(d["via"]), f"#{d['holder_seq']} {str(d['holder_leaf'])[:12]}…", a["at"])
    t.console.print(table)
    t.expect(
        f"{c.originator} holds the acknowledgement of every holder",
        {str(a["detail"]["holder"]) for a in acks} >= expected,
        ", ".join(f"{a['detail']['holder']} via {a['detail']['via']}" for a in acks) or "none",
    )


def _retention(fed: LocalFederation, t: Transcript, referee: Referee, o: DeskClient, r: DeskClient, c: Cast) -> None:
    seconds = int(SHORT_RETENTION.total_seconds())
    t.step(
        "An item reaches its retention date and is purged",
        f"{c.originator} sends {c.recipient} a CONFIDENTIAL item to be kept {seconds} seconds. When its retention "
        f"ends each holder destroys the content (the sealed copy, and the envelopes and keys that would open it), "
        "keeps the metadata, and audits ITEM_PURGED; reading it then says it was purged, and passing it on is "
        "refused RETENTION_EXPIRED everywhere.",
    )
    label = make_label(
        fed.roster, c.originator, band=Band.CONFIDENTIAL, topics=["terrorism"], releasable_to=[c.recipient]
    ).model_copy(update={"retain_until": datetime.now(UTC) + SHORT_RETENTION})
    item = _report(label, "Ferry schedule", "Crossings this week.", "Times and berths.", "For this week only.")
    expected = referee.decide(c.originator, c.recipient, label)
    sent = o.submit(label, item, [c.recipient])
    if not t.decided(sent, expected):
        t.skip("the purge", f"{c.recipient} does not receive the item")
        return
    o.wait_settled([out.envelope_id for out in sent.outcomes if out.allowed])
    purged = _waited(lambda: _status(r, sent.item_id) == "purged", timeout=seconds + 30)
    t.expect(f"{c.recipient}'s copy is purged at its retention date", purged, _status(r, sent.item_id) or "-")
    try:
        r.read(sent.item_id)
        said = "still readable"
    except DeskError as exc:
        said = str(exc)
    t.expect("reading it says it was purged", "was purged" in said, said)
    entries = r.audit(event="ITEM_PURGED", item_id=sent.item_id)
    t.expect(
        f"{c.recipient} audited the purge",
        bool(entries),
        f"ITEM_PURGED {entries[0]['reason']} ({entries[0]['rule']})" if entries else "no entry",
    )
    own = _waited(lambda: bool(o.audit(event="ITEM_PURGED", item_id=sent.item_id)), timeout=10)
    t.note(
        f"{c.originator}'s own copy follows its node's \\[retention] configuration: "
        f"{'purged too' if own else 'kept (originals = keep)'}"
    )
