"""The demo's referee and narrator: who plays which role, what the federation file says each
transfer comes to, and the transcript that records which expectations held (``node.demo``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from node.codec import envelope_to_pb
from node.config import ConsentDecision, load_material, load_node_config
from node.config.federation_file import load_federation_spec
from node.federation import open_layout
from node.harness import make_label
from node.transport import CHANNEL_OPTIONS, channel_credentials
from node.wire import exchange_pb2_grpc
from protocol.agreement import AgreementBook
from protocol.classification import Band
from protocol.envelope import OriginAttestation, Suite, attest, seal
from protocol.item import ContentKind, ReportTemplate
from protocol.label import Label
from protocol.policy import Decision, PolicyContext, Reason, Transfer, check_egress
from protocol.receipt import Receipt
from protocol.roster import MemberStatus, Roster
from protocol.statements import Signed

__all__ = ["CONSENT_DECIDES", "Cast", "Referee", "Transcript", "forge_delivery"]

#: Decisions that leave the question to consent: the agreement itself allows the transfer.
CONSENT_DECIDES = frozenset({Reason.ALLOWED, Reason.THIRD_PARTY_WITHOUT_CONSENT, Reason.NOT_RELEASABLE})


@dataclass
class Transcript:
    """Narration plus the record of which expectations held."""

    console: Console
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    step_no: int = 0

    def step(self, title: str, story: str) -> None:
        self.step_no += 1
        self.console.print()
        self.console.print(Panel(story, title=f"[bold]{self.step_no}. {title}", title_align="left"))

    def expect(self, what: str, ok: bool, got: str) -> None:
        self.checks.append((what, ok, got))
        mark = "[green]✔ as expected[/]" if ok else "[bold red]✘ NOT as expected[/]"
        self.console.print(f"   {mark}: {what} — {got}")

    def note(self, text: str) -> None:
        """A line of narration that is no expectation."""
        self.console.print(f"   [cyan]→[/] {text}")

    def skip(self, what: str, why: str) -> None:
        """A step the federation file made moot: said, not counted."""
        self.console.print(f"   [yellow]– skipped[/]: {what} — {why}")

    def refused(self, response: Any, reason: str) -> None:
        """Show a desk response's decisions and expect its single outcome refused with ``reason``."""
        self.decisions(response)
        got = response.outcomes[0].reason
        self.expect(f"refused {reason}", got == reason, got)

    def decided(self, response: Any, expected: Decision) -> bool:
        """Show the decisions and expect the first as ``expected`` says; whether it was allowed."""
        self.decisions(response)
        outcome = response.outcomes[0]
        if expected.allowed:
            self.expect("allowed, as the agreement says", outcome.allowed, outcome.reason)
        else:
            whose = "the re-sharing ban" if expected.reason in CONSENT_DECIDES else "the federation file's agreement"
            self.note(f"{whose} says no: {expected.reason.value} ({expected.rule})")
            self.expect(f"refused {expected.reason.value}", outcome.reason == expected.reason.value, outcome.reason)
        return bool(outcome.allowed)

    def decisions(self, response: Any) -> None:
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        for column in ("to", "decision", "reason code", "rule", "why"):
            table.add_column(column)
        for o in response.outcomes:
            verdict = "[green]allowed[/]" if o.allowed else "[red]refused[/]"
            table.add_row(o.recipient, verdict, o.reason, o.rule, o.detail)
        self.console.print(table)


@dataclass(frozen=True)
class Cast:
    """Who plays which role: the federation file's ``[demo]`` table (SPEC-free, scenario only)."""

    originator: str = "KZ"
    recipient: str = "TR"
    reshare_target: str = "AZ"
    refused_target: str = "UZ"

    @classmethod
    def from_roles(cls, roles: Mapping[str, str]) -> Cast:
        defaults = cls()
        return cls(
            originator=roles.get("originator", defaults.originator),
            recipient=roles.get("recipient", defaults.recipient),
            reshare_target=roles.get("reshare_target", defaults.reshare_target),
            refused_target=roles.get("refused_target", defaults.refused_target),
        )


class Referee:
    """What the federation file says a transfer comes to: the policy engine over its signed documents."""

    def __init__(self, root: Path) -> None:
        layout = open_layout(root)
        self.roster = Roster.from_bytes(Signed.model_validate_json(layout.roster.read_bytes()).payload)
        self.book = AgreementBook()
        for path in sorted(layout.agreements_dir.glob("*.json")):
            self.book.accept(Signed.model_validate_json(path.read_bytes()), self.roster)
        self.spec = load_federation_spec(layout.config)
        self.cast = Cast.from_roles(layout.demo)

    def members(self) -> tuple[str, ...]:
        """The members whose nodes the demo starts: every full member, and the cast."""
        full = [m.member_id for m in self.roster.members if m.status is MemberStatus.MEMBER]
        cast = (self.cast.originator, self.cast.recipient, self.cast.reshare_target, self.cast.refused_target)
        return tuple(dict.fromkeys([*full, *cast]))

    def decide(self, sender: str, recipient: str, label: Label) -> Decision:
        """The egress decision for an item with ``label``, carrying no consent, now."""
        now = datetime.now(UTC)
        attestation = OriginAttestation(
            item_id="demo-forecast",
            item_version=1,
            originator=label.originator,
            label=label,
            content_kind=ContentKind.REPORT,
            plaintext_digest="0" * 64,
            attested_at=now,
        )
        ctx = PolicyContext(self.roster, self.book, now, lambda item, version: False, lambda grant: False)
        return check_egress(Transfer(sender, recipient, attestation, "0" * 64, ()), ctx)

    def agreement_refusal(self, sender: str, recipient: str, label: Label) -> Decision | None:
        """The agreement's own refusal of a re-share, if it has one (consent aside)."""
        decision = self.decide(sender, recipient, label)
        return None if decision.reason in CONSENT_DECIDES else decision

    def consent(self, originator: str, third_party: str, band: Band) -> ConsentDecision:
        """What the originator's consent rules answer (``[members.X.consent]``)."""
        member = next(m for m in self.spec.members if m.member_id == originator)
        return member.consent.decide(third_party, band)


def forge_delivery(root: Path, *, rogue: str, claimed_sender: str, victim: str) -> Receipt:
    """A misbehaving node: ``rogue`` delivers an envelope it signed in ``claimed_sender``'s name.

    It uses its own genuine TLS certificate (it is a federation member) but claims to be
    another member, and returns the victim's signed receipt.
    """
    cfg = load_node_config(root / "nodes" / rogue / "node.toml")
    material = load_material(cfg)
    roster = material.roster
    victim_member = roster.member(victim)
    agreement = material.agreements.get(claimed_sender, victim)
    assert victim_member is not None
    now = datetime.now(UTC)
    label = make_label(roster, claimed_sender, band=Band.CONFIDENTIAL, releasable_to=[victim], now=now)
    item = ReportTemplate(
        title="Fabricated alert",
        summary="A fabricated warning.",
        body="Invented.",
        assessment="Meant to mislead.",
        grading=label.grading,
    )
    origin, plaintext = attest(
        item_id="forged-0001", label=label, item=item, originator_key=material.signing_key, now=now
    )
    envelope = seal(
        plaintext=plaintext,
        origin=origin,
        sender=claimed_sender,
        sender_key=material.signing_key,
        recipient=victim_member,
        agreement_id=agreement.agreement_id if agreement else "none",
        agreement_version=agreement.version if agreement else 1,
        consents=(),
        suite=Suite.X25519_AES256GCM,
        now=now,
    )
    creds = channel_credentials(material.tls_cert_pem, material.tls_key_pem, material.ca_pem)
    with grpc.secure_channel(victim_member.endpoint, creds, options=CHANNEL_OPTIONS) as channel:
        reply = exchange_pb2_grpc.ExchangeStub(channel).Deliver(envelope_to_pb(envelope), timeout=10)
    statement = Signed(payload_type=reply.statement.payload_type, payload=reply.statement.payload, signatures=())
    return Receipt.from_bytes(statement.payload)
