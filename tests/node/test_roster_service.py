"""Roster versions at a node, as plain functions over a session (SPEC §11.12): applied, refused, passed on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from node import audit
from node.config import NodeMaterial, load_material, load_node_config
from node.config.keyring import NodeKeys
from node.federation import init_federation
from node.lifecycle import ControlRpc, ControlState
from node.secretariat import Secretariat
from node.services.control import control_answered
from node.services.roster import adopt_roster, receive_roster
from node.services.state import AtRestKey, NodeState
from node.store import ControlMessage, RosterRow
from protocol.ack import AckReason
from protocol.roster import Member
from protocol.statements import Signed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "federation.toml"
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def tr_v1(tmp_path_factory: pytest.TempPathFactory) -> tuple[NodeMaterial, dict[int, Signed]]:
    """TR's material under roster v1, and versions 2 (UZ's key revoked) and 3 (HU removed)."""
    root = tmp_path_factory.mktemp("fed") / "ots"
    init_federation(EXAMPLE, root, now=NOW)
    material = load_material(load_node_config(root / "nodes" / "TR" / "node.toml"))
    secretariat = Secretariat.open(root)
    secretariat.write(secretariat.revoke_key("UZ", None, NOW), [])
    secretariat.write(secretariat.remove_member("HU", NOW + timedelta(seconds=1)), [])
    versions = {n: Signed.from_bytes((root / "rosters" / f"roster-v{n}.json").read_bytes()) for n in (1, 2, 3)}
    return material, versions


def _state(material: NodeMaterial) -> NodeState:
    return NodeState(
        me="TR",
        signing_key=material.signing_key,
        hpke_keys=material.hpke_keys,
        at_rest=AtRestKey(material.at_rest_key),
        roster=material.roster,
        agreements=material.agreements,
        window=material.config.window,
        consent=material.config.consent,
        secretariat=material.secretariat,
        roster_statement=material.roster_statement,
    )


def _receive(factory: sessionmaker[Session], state: NodeState, signed: Signed, material: NodeMaterial) -> AckReason:
    def keys_for(member: Member) -> NodeKeys:
        return material.keys

    with factory.begin() as session:
        answer = receive_roster(session, state, signed=signed, source="secretariat", keys_for=keys_for, now=NOW)
    if answer.change is not None:
        with factory.begin() as session:
            assert adopt_roster(session, state, change=answer.change)
    reason = answer.ack.reason
    assert isinstance(reason, AckReason)
    return reason


def test_a_roster_is_applied_stored_audited_and_passed_on_and_rollbacks_refused(
    tr_v1: tuple[NodeMaterial, dict[int, Signed]], session_factory: sessionmaker[Session]
) -> None:
    # SPEC §11.12, §5.3
    material, versions = tr_v1
    state = _state(material)
    assert state.agreements.get("TR", "UZ") is not None
    assert _receive(session_factory, state, versions[2], material) is AckReason.ROSTER_HELD
    assert state.roster.version == 2
    assert state.agreements.get("TR", "UZ") is None  # signed with UZ's revoked key: set aside
    assert _receive(session_factory, state, versions[2], material) is AckReason.DUPLICATE
    assert _receive(session_factory, state, versions[1], material) is AckReason.ROSTER_ROLLBACK
    unsigned = versions[3].model_copy(update={"signatures": versions[3].signatures[:1]})
    assert _receive(session_factory, state, unsigned, material) is AckReason.ROSTER_INVALID
    assert state.roster.version == 2
    with session_factory() as session:
        pushes = session.scalars(select(ControlMessage).where(ControlMessage.rpc == ControlRpc.PUBLISH_ROSTER)).all()
        assert sorted(m.recipient for m in pushes) == ["AZ", "HU", "KG", "KZ", "TM", "UZ"]
        reasons = [e.reason for e in audit.list_entries(session, event=audit.AuditEvent.ROSTER_UPDATED)]
    assert reasons == ["ROSTER_HELD", "ROSTER_ROLLBACK", "ROSTER_SIGNATURE_INVALID"]

    assert _receive(session_factory, state, versions[3], material) is AckReason.ROSTER_HELD
    with session_factory() as session:
        assert [r.version for r in session.scalars(select(RosterRow).order_by(RosterRow.version))] == [2, 3]
        pending = session.scalars(select(ControlMessage).where(ControlMessage.state == ControlState.PENDING)).all()
    # v2's pushes not yet delivered are dropped; v3 goes to every member but TR (HU left).
    assert sorted(m.recipient for m in pending) == ["AZ", "KG", "KZ", "TM", "UZ"]
    assert {m.message_id.split(":")[0] for m in pending} == {versions[3].digest}


def test_a_refusal_under_an_older_roster_is_retried(
    tr_v1: tuple[NodeMaterial, dict[int, Signed]], session_factory: sessionmaker[Session]
) -> None:
    # SPEC §11.12 (roster skew), §11.9
    material, versions = tr_v1
    state = _state(material)
    _receive(session_factory, state, versions[2], material)
    with session_factory.begin() as session:
        message_id = next(m.message_id for m in session.scalars(select(ControlMessage)) if m.recipient == "KZ")
    later = NOW + timedelta(seconds=5)
    with session_factory.begin() as session:
        kept = control_answered(
            session,
            state,
            message_id=message_id,
            ack="refused",
            accepted=False,
            peer_roster_version=1,
            retry_at=later,
            now=NOW,
        )
    assert kept is False
    with session_factory.begin() as session:
        row = session.get(ControlMessage, message_id)
        assert row is not None
        assert (row.state, row.attempts) == (ControlState.PENDING, 1)
        assert control_answered(
            session,
            state,
            message_id=message_id,
            ack="refused",
            accepted=False,
            peer_roster_version=2,
            retry_at=later,
            now=NOW,
        )
        assert row.state is ControlState.ACKNOWLEDGED
