"""Desk replies built from the services' results and stored rows (``node.rpc.desk``)."""

from __future__ import annotations

import json
from datetime import datetime

from node import audit
from node.lifecycle import OutboxState
from node.services.egress import Outcome, SubmitResult
from node.store import AgreementProposalRow
from node.wire import desk_pb2
from protocol.agreement import AgreementProposal
from protocol.consent import ConsentGrant
from protocol.statements import Signed

__all__ = ["grant_entry", "grant_id_of", "iso", "outcome", "proposal_entry", "submit_response"]


def outcome(planned: Outcome) -> desk_pb2.Outcome:
    """One recipient's decision, as the desk replies it."""
    d = planned.decision
    return desk_pb2.Outcome(
        recipient=planned.recipient,
        allowed=d.allowed,
        reason=d.reason.value,
        rule=d.rule,
        detail=d.detail,
        envelope_id=planned.envelope_id or "",
        delivery_state=OutboxState.PENDING.value if d.allowed else "not sent",
    )


def submit_response(result: SubmitResult) -> desk_pb2.SubmitResponse:
    """A submission's, correction's or re-share's reply."""
    return desk_pb2.SubmitResponse(
        item_id=result.item_id, item_version=result.item_version, outcomes=[outcome(o) for o in result.outcomes]
    )


def iso(at: datetime | None) -> str:
    """RFC 3339 UTC, or empty for none."""
    return "" if at is None else audit.format_time(at)


def proposal_entry(row: AgreementProposalRow) -> desk_pb2.AgreementProposalEntry:
    proposal = AgreementProposal.from_bytes(Signed.model_validate_json(row.proposal).payload)
    return desk_pb2.AgreementProposalEntry(
        proposal_id=row.proposal_id,
        direction=row.direction.value,
        agreement_id=row.agreement_id,
        version=row.version,
        proposer=row.proposer,
        counterparty=row.counterparty,
        state=row.state.value,
        note=row.note,
        reason=row.reason or "",
        created_at=iso(row.created_at),
        decided_at=iso(row.decided_at),
        agreement_json=proposal.proposed.model_dump_json(),
    )


def grant_entry(statement: bytes, revoked_at: datetime | None) -> desk_pb2.GrantEntry:
    grant = ConsentGrant.from_bytes(Signed.model_validate_json(statement).payload)
    return desk_pb2.GrantEntry(
        grant_id=grant.grant_id,
        item_id=grant.item_id,
        item_version=grant.item_version,
        grantor=grant.grantor,
        holder=grant.holder,
        grantee=grant.grantee,
        expires_at=iso(grant.expires_at),
        transferable=grant.transferable,
        conditions=list(grant.conditions),
        revoked_at=iso(revoked_at),
        request_id=grant.request_id or "",
    )


def grant_id_of(row_decision: bytes | None) -> str:
    """The grant id of a granted request's decision, else empty."""
    if row_decision is None:
        return ""
    return str(json.loads(Signed.model_validate_json(row_decision).payload).get("grant_id", ""))
