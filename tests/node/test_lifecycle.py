"""Every record lifecycle is a transition table; every other transition is refused (SPEC §11.11)."""

from __future__ import annotations

import itertools
import re
import sqlite3
from enum import StrEnum
from typing import Any

import pytest

from node.errors import IllegalTransitionError
from node.lifecycle import (
    AGREEMENT_PROPOSAL,
    CONSENT_REQUEST,
    CONTROL_MESSAGE,
    INBOX_ITEM,
    ORIGINAL_ITEM,
    OUTBOX_ENTRY,
    ConsentRequestEvent,
    ConsentRequestState,
    ControlEvent,
    ControlRpc,
    ControlState,
    Direction,
    InboxEvent,
    InboxStatus,
    Lifecycle,
    NoticeKind,
    OriginalEvent,
    OriginalState,
    OutboxEvent,
    OutboxKind,
    OutboxState,
    ProposalEvent,
    ProposalState,
)
from node.store import upgrade

MACHINES: list[tuple[Lifecycle[Any, Any], type[StrEnum], type[StrEnum]]] = [
    (OUTBOX_ENTRY, OutboxState, OutboxEvent),
    (INBOX_ITEM, InboxStatus, InboxEvent),
    (ORIGINAL_ITEM, OriginalState, OriginalEvent),
    (CONSENT_REQUEST, ConsentRequestState, ConsentRequestEvent),
    (CONTROL_MESSAGE, ControlState, ControlEvent),
    (AGREEMENT_PROPOSAL, ProposalState, ProposalEvent),
]
PAIRS = [
    pytest.param(machine, state, event, id=f"{machine.name}:{state.value}:{event.value}")
    for machine, states, events in MACHINES
    for state, event in itertools.product(states, events)
]


@pytest.mark.parametrize(("machine", "state", "event"), PAIRS)
def test_each_pair_moves_as_the_table_says_or_is_refused(machine: Lifecycle[Any, Any], state: Any, event: Any) -> None:
    expected = machine.table.get(state, {}).get(event)
    assert machine.allows(state, event) is (expected is not None)
    if expected is None:
        with pytest.raises(IllegalTransitionError) as info:
            machine.next(state, event)
        assert (info.value.state, info.value.event) == (state, event)
    else:
        assert machine.next(state, event) is expected


@pytest.mark.parametrize(("machine", "states", "events"), MACHINES, ids=[m.name for m, _, _ in MACHINES])
def test_every_state_has_a_row(machine: Lifecycle[Any, Any], states: type[StrEnum], events: type[StrEnum]) -> None:
    assert set(machine.table) == set(states)


def test_settled_outbox_entries_are_final() -> None:
    assert OUTBOX_ENTRY.is_final(OutboxState.DELIVERED)
    assert OUTBOX_ENTRY.is_final(OutboxState.REFUSED)
    assert not OUTBOX_ENTRY.is_final(OutboxState.WITHDRAWN)


def test_a_recall_is_final_for_a_held_copy_until_its_retention_ends() -> None:
    # SPEC §11.11, §11.13: no notice undoes a recall; only a purge changes a recalled copy.
    for event in (InboxEvent.RECALLED, InboxEvent.CORRECTED):
        assert INBOX_ITEM.next(InboxStatus.RECALLED, event) is InboxStatus.RECALLED
    assert INBOX_ITEM.next(InboxStatus.RECALLED, InboxEvent.PURGED) is InboxStatus.PURGED


def test_a_purged_copy_stays_purged() -> None:
    # SPEC §11.13: a notice that arrives after the purge is applied to nothing.
    for event in (InboxEvent.RECALLED, InboxEvent.CORRECTED):
        assert INBOX_ITEM.next(InboxStatus.PURGED, event) is InboxStatus.PURGED
    assert not INBOX_ITEM.allows(InboxStatus.PURGED, InboxEvent.PURGED)
    assert not ORIGINAL_ITEM.allows(OriginalState.PURGED, OriginalEvent.PURGED)


def test_a_decided_proposal_is_final() -> None:
    # SPEC §6.4: countersigned, rejected and superseded proposals take no further decision.
    for state in (ProposalState.COUNTERSIGNED, ProposalState.REJECTED, ProposalState.SUPERSEDED):
        assert AGREEMENT_PROPOSAL.is_final(state)


def test_a_decided_consent_request_cannot_be_decided_again() -> None:
    for state, event in itertools.product(
        (ConsentRequestState.GRANTED, ConsentRequestState.DENIED), ConsentRequestEvent
    ):
        with pytest.raises(IllegalTransitionError, match="consent request"):
            CONSENT_REQUEST.next(state, event)


def test_the_table_cannot_be_changed_after_it_is_made() -> None:
    with pytest.raises(TypeError):
        OUTBOX_ENTRY.table[OutboxState.DELIVERED] = {}  # type: ignore[index]


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The CREATE TABLE statements of a database the migrations made."""
    path = tmp_path_factory.mktemp("schema") / "node.db"
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        return "\n".join(sql for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table'"))


@pytest.mark.parametrize(
    ("column", "enum"),
    [
        ("state", OutboxState),
        ("kind", OutboxKind),
        ("status", InboxStatus),
        ("state", ConsentRequestState),
        ("direction", Direction),
        ("state", ControlState),
        ("rpc", ControlRpc),
        ("kind", NoticeKind),
        ("state", ProposalState),
    ],
)
def test_stored_values_are_the_ones_the_migrations_allow(schema: str, column: str, enum: type[StrEnum]) -> None:
    """The enums name the values the schema always had: typing the columns needed no data migration."""
    wanted = sorted(e.value for e in enum)
    constraints = [sorted(re.findall(r"'([^']+)'", body)) for body in re.findall(rf"{column} IN \(([^)]*)\)", schema)]
    assert wanted in constraints
