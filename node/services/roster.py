"""Roster versions at a node: verified, stored, audited, applied at once and passed on (SPEC §5.3, §11.12).

A roster arrives by ``PublishRoster`` (from the secretariat's tool or from a member
passing it on) or from the node's roster file at start. ``receive_roster`` verifies it
against the roster held (the secretariat's threshold, a strictly higher version), and in
one job stores it, audits ``ROSTER_UPDATED`` (applied or refused, e.g. a rollback) and
queues it for every other member (``PublishRoster`` control messages), so a member that
was down catches up. What the new roster changes in the running node — the agreements
it may still hold, the node's own keys after a rotation — is worked out in the same job
(``RosterChange``) and put in place by ``adopt_roster`` once that job committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from node import audit
from node.audit import AuditEvent, AuditReason
from node.audit.tree import CheckpointSigner, LogTree
from node.audit.writer import TREE_KEY
from node.config.keyring import NodeKeys
from node.config.material import hold_agreements
from node.lifecycle import CONTROL_MESSAGE, ControlEvent, ControlRpc, ControlState
from node.services.control import queue_control
from node.services.federation import held_agreement_versions
from node.services.state import NodeState
from node.store import ControlMessage, RosterRow
from protocol.ack import Ack, AckReason
from protocol.agreement import AgreementBook
from protocol.envelope import BatchKeys
from protocol.errors import ConfigurationError, IntelshareError, MalformedError, RollbackError, SignatureError
from protocol.keys import HpkeKeyPair
from protocol.roster import Member, Roster, accept_roster
from protocol.statements import Signed

__all__ = [
    "RosterAnswer",
    "RosterChange",
    "add_opening_key",
    "adopt_roster",
    "receive_roster",
    "roster_changes",
    "settle_roster_at_start",
    "stored_rosters",
]

#: Picks the node's own keys for its entry in a roster; ``ConfigurationError`` if it has none.
KeysFor = Callable[[Member], NodeKeys]


@dataclass(frozen=True, eq=False)
class RosterChange:
    """A roster version the node holds from now on, and what it changes in the running node."""

    signed: Signed
    roster: Roster
    agreements: AgreementBook
    #: (agreement id, why) of agreements the node held and may not hold under this roster.
    set_aside: tuple[tuple[str, str], ...]
    #: The node's keys for its entry; None if it holds none that match (or it was removed).
    keys: NodeKeys | None


@dataclass(frozen=True)
class RosterAnswer:
    """The answer to a published roster, and the change to put in place once committed."""

    ack: Ack
    change: RosterChange | None


def stored_rosters(session: Session, state: NodeState) -> list[Signed]:
    """Every roster version the node held, oldest first."""
    rows = session.scalars(select(RosterRow).order_by(RosterRow.version))
    return [Signed.model_validate_json(row.statement) for row in rows]


def _store(session: Session, signed: Signed, roster: Roster, source: str, now: datetime) -> None:
    session.add(
        RosterRow(
            version=roster.version,
            digest=signed.digest,
            statement=signed.model_dump_json().encode(),
            source=source,
            held_at=now,
        )
    )


def roster_changes(old: Roster, new: Roster) -> dict[str, list[str]]:
    """What a new version changes, for the audit entry and the secretariat's tool."""
    before, after = set(old.member_ids()), set(new.member_ids())
    rotated = []
    for member_id in sorted(before & after):
        a, b = old.member(member_id), new.member(member_id)
        assert a is not None
        assert b is not None
        keys = [
            name
            for name, changed in (
                ("signing", a.signing_key != b.signing_key),
                ("hpke", a.hpke_keys != b.hpke_keys),
                ("tls", a.tls_fingerprint != b.tls_fingerprint),
                ("endpoint", a.endpoint != b.endpoint),
            )
            if changed
        ]
        if keys:
            rotated.append(f"{member_id}:{'+'.join(keys)}")
    return {
        "added": sorted(after - before),
        "removed": sorted(before - after),
        "revoked": sorted(set(new.revoked_keyids) - set(old.revoked_keyids)),
        "changed": rotated,
    }


def _rehold(state: NodeState, roster: Roster) -> tuple[AgreementBook, tuple[tuple[str, str], ...]]:
    """The node's agreements accepted again under ``roster``, as a restart would (SPEC §6.2)."""
    book = AgreementBook()
    set_aside: list[tuple[str, str]] = []
    for agreement in sorted(state.agreements.agreements(), key=lambda a: a.agreement_id):
        statement = state.agreements.signed(*agreement.parties)
        assert statement is not None
        absent = [p for p in agreement.parties if roster.member(p) is None]
        if absent:
            set_aside.append((agreement.agreement_id, f"party {', '.join(absent)} is not in roster v{roster.version}"))
            continue
        try:
            book.accept(statement, roster)
        except IntelshareError as exc:  # e.g. signed with a key this roster revokes (SPEC §12.8)
            set_aside.append((agreement.agreement_id, f"{exc} (roster v{roster.version})"))
    return book, tuple(set_aside)


def _change(state: NodeState, signed: Signed, roster: Roster, keys_for: KeysFor) -> RosterChange:
    book, set_aside = _rehold(state, roster)
    me = roster.member(state.me)
    keys: NodeKeys | None = None
    if me is not None:
        try:
            keys = keys_for(me)
        except IntelshareError:
            keys = None  # the node keeps the keys it has; peers refuse what they no longer verify
    return RosterChange(signed, roster, book, set_aside, keys)


def _audit_applied(
    session: Session, state: NodeState, change: RosterChange, *, source: str, previous: Roster, now: datetime
) -> None:
    detail: dict[str, audit.DetailValue] = {
        "version": change.roster.version,
        "previous_version": previous.version,
        "digest": change.signed.digest,
        "source": source,
        **roster_changes(previous, change.roster),
        "agreements": held_agreement_versions(change.agreements),
    }
    if change.keys is None:
        detail["own_keys"] = "this node holds no private key its roster entry names"
    audit.append(
        session,
        now=now,
        event=AuditEvent.ROSTER_UPDATED,
        actor=state.me,
        peer=source,
        allowed=True,
        reason=AuditReason.ROSTER_HELD.value,
        detail=detail,
    )
    _audit_set_aside(session, state, change, now=now)


def _audit_set_aside(session: Session, state: NodeState, change: RosterChange, *, now: datetime) -> None:
    for agreement_id, why in change.set_aside:
        audit.append(
            session,
            now=now,
            event=AuditEvent.AGREEMENT_UPDATED,
            actor=state.me,
            allowed=False,
            reason=AuditReason.AGREEMENT_SET_ASIDE.value,
            detail={"agreement": agreement_id, "detail": why, "roster_version": change.roster.version},
        )


def _pass_on(session: Session, state: NodeState, signed: Signed, roster: Roster, now: datetime) -> None:
    """Queue the new version for every other member; older versions not yet delivered are dropped."""
    for row in session.scalars(
        select(ControlMessage).where(
            ControlMessage.rpc == ControlRpc.PUBLISH_ROSTER, ControlMessage.state == ControlState.PENDING
        )
    ):
        row.state = CONTROL_MESSAGE.next(row.state, ControlEvent.ACKNOWLEDGED)
        row.ack, row.updated_at = f"superseded by roster v{roster.version}", now
    for member_id in roster.member_ids():
        if member_id != state.me:
            queue_control(session, recipient=member_id, rpc=ControlRpc.PUBLISH_ROSTER, statement=signed, now=now)


def _refuse(
    session: Session, state: NodeState, *, reason: AuditReason, ack: AckReason, detail: str, source: str, now: datetime
) -> RosterAnswer:
    audit.append(
        session,
        now=now,
        event=AuditEvent.ROSTER_UPDATED,
        actor=state.me,
        peer=source,
        allowed=False,
        reason=reason.value,
        detail={"detail": detail, "held_version": state.roster.version, "source": source},
    )
    return RosterAnswer(Ack.refused(ack, detail), None)


def receive_roster(
    session: Session, state: NodeState, *, signed: Signed, source: str, keys_for: KeysFor, now: datetime
) -> RosterAnswer:
    """Verify a published roster against the one held, and store, audit and pass on a newer one (SPEC §11.12).

    The same statement again is a ``DUPLICATE`` (not audited). Anything else not newer,
    or not signed by the secretariat's threshold, is refused and audited.
    """
    held = state.roster_statement
    if held is not None and held.digest == signed.digest:
        return RosterAnswer(Ack.done(AckReason.DUPLICATE, f"roster v{state.roster.version} already held"), None)
    assert state.secretariat is not None  # set at start
    try:
        roster = accept_roster(signed, secretariat=state.secretariat, current=state.roster)
    except RollbackError as exc:
        reason, ack = AuditReason.ROSTER_ROLLBACK, AckReason.ROSTER_ROLLBACK
        return _refuse(session, state, reason=reason, ack=ack, detail=str(exc), source=source, now=now)
    except SignatureError as exc:
        reason, ack = AuditReason.ROSTER_SIGNATURE_INVALID, AckReason.ROSTER_INVALID
        return _refuse(session, state, reason=reason, ack=ack, detail=str(exc), source=source, now=now)
    except MalformedError as exc:
        reason, ack = AuditReason.ROSTER_MALFORMED, AckReason.ROSTER_INVALID
        return _refuse(session, state, reason=reason, ack=ack, detail=str(exc), source=source, now=now)
    stored = session.get(RosterRow, roster.version)
    if stored is not None:  # committed, and being put in place by an earlier answer
        if stored.digest == signed.digest:
            return RosterAnswer(Ack.done(AckReason.DUPLICATE, f"roster v{roster.version} already held"), None)
        detail = f"another roster v{roster.version} is already held"
        reason, ack = AuditReason.ROSTER_ROLLBACK, AckReason.ROSTER_ROLLBACK
        return _refuse(session, state, reason=reason, ack=ack, detail=detail, source=source, now=now)
    change = _change(state, signed, roster, keys_for)
    _store(session, signed, roster, source, now)
    _audit_applied(session, state, change, source=source, previous=state.roster, now=now)
    _pass_on(session, state, signed, roster, now)
    return RosterAnswer(Ack.done(AckReason.ROSTER_HELD, f"roster v{roster.version} held"), change)


def settle_roster_at_start(
    session: Session,
    state: NodeState,
    *,
    agreement_files: Sequence[tuple[str, Signed]],
    keys_for: KeysFor,
    now: datetime,
) -> RosterChange:
    """The roster, agreements and keys a starting node runs under (SPEC §11.12, §6.2).

    ``state`` holds the file's roster (verified against the trust anchor). With nothing
    stored yet, that roster is stored and kept. Otherwise the newest stored one is held,
    and the file's replaces it only if it verifies as its successor; a file that does
    not is audited as refused and ignored. The node's agreement files are then held
    under the chosen roster (``hold_agreements``); those it sets aside are audited.
    """
    file_statement = state.roster_statement
    assert file_statement is not None
    assert state.secretariat is not None
    stored = stored_rosters(session, state)
    signed, roster, source, previous = file_statement, state.roster, "file", None
    if not stored:
        _store(session, file_statement, state.roster, "file", now)
    else:
        newest = stored[-1]
        held = Roster.from_bytes(newest.payload)  # verified when it was stored
        signed, roster, previous = newest, held, held
        if state.roster.version > held.version:
            try:
                accept_roster(file_statement, secretariat=state.secretariat, current=held)
            except IntelshareError as exc:
                detail = f"roster file v{state.roster.version} is not a successor of held v{held.version}: {exc}"
                reason, ack = AuditReason.ROSTER_SIGNATURE_INVALID, AckReason.ROSTER_INVALID
                _refuse(session, state, reason=reason, ack=ack, detail=detail, source="file", now=now)
            else:
                signed, roster = file_statement, state.roster
                _store(session, file_statement, state.roster, "file", now)
    me = roster.member(state.me)
    if me is None:
        raise ConfigurationError(f"{state.me} is not in roster v{roster.version}: it left the federation")
    holding = hold_agreements(agreement_files, roster, state.me)
    change = RosterChange(signed, roster, holding.book, holding.set_aside, keys_for(me))
    if previous is not None and signed is file_statement:  # the file's roster succeeds the stored one
        _audit_applied(session, state, change, source=source, previous=previous, now=now)
        _pass_on(session, state, signed, roster, now)
    else:
        _audit_set_aside(session, state, change, now=now)
    return change


def adopt_roster(session: Session, state: NodeState, *, change: RosterChange) -> bool:
    """Put a committed roster change in place at once (SPEC §11.12); False if a newer one already is.

    Runs as a job of its own after the one that stored the roster committed, so every job
    after it decides under the new roster. It writes nothing, and running it twice
    changes nothing more.
    """
    if state.roster_statement is not None and change.roster.version < state.roster.version:
        return False
    state.agreements = change.agreements
    state.roster = change.roster
    state.roster_statement = change.signed
    keys = change.keys
    if keys is not None and keys.signing is not state.signing_key:
        state.signing_key = keys.signing
        tree = session.info.get(TREE_KEY)
        if isinstance(tree, LogTree) and tree.signer is not None:
            tree.signer = CheckpointSigner(keys.signing, change.roster.federation, state.me)
    if keys is not None and keys.hpke is not state.hpke_keys:
        state.hpke_keys = keys.hpke
        state.batch_keys = BatchKeys(keys.hpke)
    if keys is not None:
        state.previous_hpke = keys.previous_hpke
    return True


def add_opening_key(session: Session, state: NodeState, *, keys: HpkeKeyPair) -> None:
    """Open with ``keys`` too: a staged HPKE key, before the roster that names it is held (SPEC §5.4.4)."""
    if keys.public() != state.hpke_keys.public() and all(k.public() != keys.public() for k in state.previous_hpke):
        state.previous_hpke = (*state.previous_hpke, keys)
