"""Hash-linked audit log: appending, tamper detection, export and RFC 9162 Merkle roots."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, event, inspect, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from node.audit import (
    FIELDS,
    GENESIS_HASH,
    AuditEvent,
    AuditReport,
    AuditWriter,
    Entry,
    append,
    entry_bytes,
    export_csv,
    export_jsonl,
    leaf_hash,
    list_entries,
    merkle_root,
    verify,
)
from node.audit.scan import CHUNK, scan_chunks
from node.store import AuditEntryRow, AuditHead, make_reader, make_sessionmaker

T0 = datetime(2026, 5, 9, 12, 0, 0, tzinfo=UTC)
AUDIT = cast(Table, AuditEntryRow.__table__)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc9162-merkle"


def _append_n(session: Session, n: int, start: int = 0) -> list[AuditEntryRow]:
    events = [AuditEvent.EGRESS, AuditEvent.INGRESS, AuditEvent.CONSENT_REQUEST_SENT]
    return [
        append(
            session,
            now=T0 + timedelta(seconds=start + i),
            event=events[(start + i) % len(events)],
            actor="member-a",
            peer="member-b",
            item_id=f"item-{start + i}",
            item_version=1,
            envelope_id=f"env-{start + i}",
            allowed=(start + i) % 2 == 0,
            reason="ALLOWED" if (start + i) % 2 == 0 else "THIRD_PARTY_WITHOUT_CONSENT",
            rule="§9.4",
            detail={"band": 2, "topics": ["finance", "ünïcode"], "digest": "ab" * 32},
        )
        for i in range(n)
    ]


@pytest.fixture
def five(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """A log of five entries written in two transactions."""
    with session_factory.begin() as session:
        _append_n(session, 3)
    with session_factory.begin() as session:
        _append_n(session, 2, start=3)
    return session_factory


def _verify(factory: sessionmaker[Session]) -> AuditReport:
    with factory() as session:
        return verify(session)


def _kinds(report: AuditReport) -> list[tuple[int, str]]:
    return [(p.seq, p.kind) for p in report.problems]


# --- appending ---------------------------------------------------------------------------


def test_append_and_verify(five: sessionmaker[Session]) -> None:
    report = _verify(five)
    assert report.ok, report.problems
    assert (report.entries, report.head_seq) == (5, 5)
    with five() as session:
        rows = list_entries(session)
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert rows[0].prev_hash == GENESIS_HASH
        for before, after in itertools.pairwise(rows):
            assert after.prev_hash == before.entry_hash
        for row in rows:
            assert row.entry_hash == hashlib.sha256(b"\x00" + entry_bytes(row)).hexdigest()
            assert row.at.tzinfo is UTC
        head = session.get(AuditHead, 1)
        assert head is not None
        assert head.entry_hash == rows[-1].entry_hash


def test_empty_log_verifies(session_factory: sessionmaker[Session]) -> None:
    report = _verify(session_factory)
    assert report.ok
    assert (report.entries, report.head_seq) == (0, 0)


def test_entry_bytes_format(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        row = append(
            session,
            now=datetime(2026, 5, 9, 14, 0, 0, tzinfo=UTC),
            event=AuditEvent.NODE_STARTED,
            actor="officer:ø",
            detail={"b": [1, True, None], "a": "x"},
        )
    expected = (
        '{"actor":"officer:ø","allowed":null,"at":"2026-05-09T14:00:00.000000Z",'
        '"detail":{"a":"x","b":[1,true,null]},"envelope_id":null,"event":"NODE_STARTED",'
        '"item_id":null,"item_version":null,"peer":null,"prev_hash":"' + "0" * 64 + '",'
        '"reason":null,"rule":null,"seq":1}'
    ).encode()
    assert entry_bytes(row) == expected
    assert row.entry_hash == leaf_hash(expected).hex()


def test_append_validates_input(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        with pytest.raises(ValueError, match="timezone-aware"):
            append(session, now=datetime(2026, 5, 9), event="EGRESS", actor="a")
        with pytest.raises(ValueError, match="content"):
            append(session, now=T0, event="EGRESS", actor="a", detail={"content": "secret"})
        with pytest.raises(TypeError):
            append(session, now=T0, event="EGRESS", actor="a", detail={"x": {"y": 1}})  # type: ignore[dict-item]
        with pytest.raises(ValueError, match="NOT_AN_EVENT"):
            append(session, now=T0, event="NOT_AN_EVENT", actor="a")


def test_head_read_once_per_transaction(engine: Engine, session_factory: sessionmaker[Session]) -> None:
    head_reads: list[str] = []

    def count(_c: Any, _cur: Any, stmt: str, *_a: Any) -> None:
        if "FROM audit_head" in stmt:
            head_reads.append(stmt)

    event.listen(engine, "before_cursor_execute", count)
    with session_factory.begin() as session:
        writer = AuditWriter(session)
        for i in range(100):
            writer.append(now=T0 + timedelta(seconds=i), entry=Entry(AuditEvent.EGRESS, "a"))
    assert len(head_reads) == 1
    with session_factory.begin() as session:
        _append_n(session, 50)
    assert len(head_reads) == 2
    assert _verify(session_factory).entries == 150


def test_rolled_back_appends_leave_no_gap(five: sessionmaker[Session]) -> None:
    with five() as session:
        _append_n(session, 3, start=5)
        session.flush()
        session.rollback()
        _append_n(session, 1, start=5)  # same session, new transaction: head re-read
        session.commit()
    report = _verify(five)
    assert report.ok, report.problems
    assert report.entries == 6


def test_concurrent_writers_do_not_fork(session_factory: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for i in range(20):
                with session_factory.begin() as session:
                    _append_n(session, 2, start=offset + 2 * i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = _verify(session_factory)
    assert report.ok, report.problems
    assert report.entries == 120


# --- tamper detection --------------------------------------------------------------------


def test_edited_row(five: sessionmaker[Session], engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET reason = 'ALLOWED' WHERE seq = 2"))
    report = _verify(five)
    assert not report.ok
    assert _kinds(report) == [(2, "edited")]
    assert "entry 2" in report.problems[0].message


def test_values_that_need_escaping_verify_and_their_edits_are_found(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    # SPEC §11.4: the columns are compared with the stored bytes exactly, escapes included.
    with session_factory.begin() as session:
        append(session, now=T0, event=AuditEvent.EGRESS, actor="KZ", reason='quote " back \\ ctl \x01 é', peer="Ω")
        append(session, now=T0, event=AuditEvent.INGRESS, actor="KZ", reason="PLAIN")
    assert _verify(session_factory).ok
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET peer = 'Ψ' WHERE seq = 1"))
    assert _kinds(_verify(session_factory)) == [(1, "edited")]


def test_log_of_several_chunks_is_read_whole_and_an_edit_past_the_first_is_named(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    # PostgreSQL's chunks are fetched ahead by a thread (node.audit.scan): every one arrives, in order.
    with session_factory.begin() as session:
        _append_n(session, CHUNK + 3)
    report = _verify(session_factory)
    assert (report.ok, report.entries) == (True, CHUNK + 3)
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE audit_log SET entry = replace(entry, 'member-b', 'member-c') WHERE seq = {CHUNK + 2}")
        )
    assert _kinds(_verify(session_factory)) == [(CHUNK + 2, "edited")]


def test_scan_left_early_leaves_the_session_usable(session_factory: sessionmaker[Session]) -> None:
    # A start check stops at the first bad entry: the read-ahead thread gives the connection back.
    with session_factory.begin() as session:
        _append_n(session, CHUNK + 3)
    with session_factory() as session:
        first = next(iter(scan_chunks(session)))
        assert first.seqs[0] == 1
        assert session.scalar(select(AuditHead.seq)) == CHUNK + 3


READ_ONLY_CASES = {
    "bytes edited": ["UPDATE audit_log SET entry = replace(entry, 'member-b', 'member-c') WHERE seq = 2"],
    "column edited": ["UPDATE audit_log SET reason = 'ALLOWED' WHERE seq = 2"],
    "hash replaced": ["UPDATE audit_log SET entry_hash = '" + "00" * 32 + "' WHERE seq = 3"],
    "bytes unreadable": ["UPDATE audit_log SET entry = 'not json' WHERE seq = 4"],
    "entry deleted": ["DELETE FROM audit_log WHERE seq = 3"],
    "last entry deleted": ["DELETE FROM audit_log WHERE seq = 5"],
}


@pytest.mark.parametrize("case", list(READ_ONLY_CASES))
def test_read_only_verify_finds_what_a_writable_one_does(
    five: sessionmaker[Session], engine: Engine, migrated_url: str, case: str
) -> None:
    # Read-only, the database checks hashes and columns on a second connection (on
    # PostgreSQL the pass then streams only the links): the same problems, named the same.
    with engine.begin() as conn:
        for statement in READ_ONLY_CASES[case]:
            conn.execute(text(statement))
    writable = _verify(five)
    reader = make_reader(migrated_url)
    try:
        read_only = _verify(make_sessionmaker(reader))
    finally:
        reader.dispose()
    assert not writable.ok
    found = sorted((p.seq, p.kind, p.message) for p in writable.problems)
    assert sorted((p.seq, p.kind, p.message) for p in read_only.problems) == found


def test_unreadable_row_is_edited(five: sessionmaker[Session], engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET detail = '{broken' WHERE seq = 4"))
    assert _kinds(_verify(five)) == [(4, "edited")]


def test_edited_and_rehashed_row(five: sessionmaker[Session], engine: Engine) -> None:
    with five() as session:
        row = session.get(AuditEntryRow, 3)
        assert row is not None
        row.actor = "someone-else"
        new_hash = leaf_hash(entry_bytes(row)).hex()
        session.rollback()
    with engine.begin() as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 3).values(actor="someone-else", entry_hash=new_hash))
    assert _kinds(_verify(five)) == [(3, "edited")]


def test_removed_row(five: sessionmaker[Session], engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    report = _verify(five)
    assert _kinds(report) == [(3, "removed")]
    assert report.entries == 4
    assert "entry 3" in report.problems[0].message


def _swap(engine: Engine, a: int, b: int) -> None:
    cols = [c for c in AUDIT.c if c.name != "seq"]
    with engine.begin() as conn:
        rows = {r.seq: r for r in conn.execute(select(AUDIT).where(AUDIT.c.seq.in_([a, b])))}
        for target, source in ((a, b), (b, a)):
            values = {c.name: getattr(rows[source], c.name) for c in cols}
            conn.execute(update(AUDIT).where(AUDIT.c.seq == target).values(**values))


@pytest.mark.parametrize(("a", "b"), [(2, 4), (2, 3), (1, 5)])
def test_reordered_rows(five: sessionmaker[Session], engine: Engine, a: int, b: int) -> None:
    _swap(engine, a, b)
    report = _verify(five)
    assert not report.ok
    assert {seq for seq, _ in _kinds(report)} >= {a, b}
    flagged = {p.seq: p for p in report.problems}
    assert (flagged[a].kind, flagged[b].kind) == ("reordered", "reordered")
    assert f"holds the contents of entry {b}" in flagged[a].message
    assert f"holds the contents of entry {a}" in flagged[b].message


def test_reordered_rows_far_apart_in_a_longer_log(session_factory: sessionmaker[Session], engine: Engine) -> None:
    with session_factory.begin() as session:
        _append_n(session, 40)
    for a, b in ((3, 31), (10, 11), (20, 38)):
        _swap(engine, a, b)
    flagged = {p.seq: p for p in _verify(session_factory).problems}
    for a, b in ((3, 31), (10, 11), (20, 38)):
        assert (flagged[a].kind, flagged[b].kind) == ("reordered", "reordered"), (a, b)
        assert f"holds the contents of entry {b}" in flagged[a].message


def _log_reads(engine: Engine, factory: sessionmaker[Session]) -> list[str]:
    """The queries of the audit log that a verify issues."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM audit_log" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        _verify(factory)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_only_a_damaged_log_is_searched_by_hash(five: sessionmaker[Session], engine: Engine) -> None:
    # entry_hash has no index (migration 0004); an intact log is read once in seq order,
    # and once more by the database comparing its columns with its bytes.
    assert len(_log_reads(engine, five)) == 2
    _swap(engine, 2, 4)
    assert len(_log_reads(engine, five)) > 2


def test_entry_hash_is_not_indexed(engine: Engine) -> None:
    indexed = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("audit_log")}
    assert ("entry_hash",) not in indexed
    assert ("event", "seq") in indexed


def test_truncated_log(five: sessionmaker[Session], engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 5"))
    report = _verify(five)
    assert _kinds(report) == [(5, "truncated")]
    assert (report.head_seq, report.entries) == (5, 4)


def test_head_mismatch(five: sessionmaker[Session], engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_head SET entry_hash = :h"), {"h": "f" * 64})
    assert _kinds(_verify(five)) == [(5, "head_mismatch")]


# --- reading and export ------------------------------------------------------------------


def test_list_entries_paging_and_filter(five: sessionmaker[Session]) -> None:
    with five() as session:
        assert [r.seq for r in list_entries(session, after_seq=2, limit=2)] == [3, 4]
        ingress = list_entries(session, event=AuditEvent.INGRESS)
        assert [r.seq for r in ingress] == [2, 5]


def _no_content_fields(names: list[str]) -> None:
    for name in names:
        assert not any(word in name.lower() for word in ("content", "plaintext", "body"))


def test_export_jsonl(five: sessionmaker[Session]) -> None:
    out = io.StringIO()
    with five() as session:
        assert export_jsonl(session, out) == 5
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == 5
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    for record in records:
        assert list(record) == [*FIELDS, "verified"]  # the order SPEC §11.4 lists them
        assert record["verified"] is True
        _no_content_fields(list(record) + list(record["detail"]))
        assert record["detail"]["topics"] == ["finance", "ünïcode"]
        # An exported entry can be re-hashed on its own.
        body = {k: v for k, v in record.items() if k not in ("entry_hash", "verified")}
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert leaf_hash(encoded.encode()).hex() == record["entry_hash"]


def test_export_csv(five: sessionmaker[Session]) -> None:
    out = io.StringIO()
    with five() as session:
        assert export_csv(session, out) == 5
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 5
    assert list(rows[0]) == [*FIELDS, "verified"]
    _no_content_fields(list(rows[0]))
    assert [r["allowed"] for r in rows[:2]] == ["true", "false"]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert json.loads(rows[0]["detail"])["band"] == 2


# --- RFC 9162 Merkle tree hash -----------------------------------------------------------

# The RFC 6962/9162 reference test leaves (certificate-transparency and transparency-dev
# test data): the vectors' trees are built from these.
TEST_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]


def _vector_files(kind: str) -> list[Path]:
    files = sorted((VECTORS / kind).glob("*/happy-path.json"))
    assert files, f"no RFC 9162 vectors under {VECTORS}"  # vendored: always there
    return files


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def test_merkle_root_matches_inclusion_vectors() -> None:
    files = _vector_files("inclusion")
    assert files
    for path in files:
        case = json.loads(path.read_text())
        leaves = [leaf_hash(leaf) for leaf in TEST_LEAVES[: case["treeSize"]]]
        assert leaves[case["leafIdx"]] == _b64(case["leafHash"]), path
        assert merkle_root(leaves) == _b64(case["root"]), path


def test_merkle_root_matches_consistency_vectors() -> None:
    files = _vector_files("consistency")
    assert files
    for path in files:
        case = json.loads(path.read_text())
        for size, root in ((case["size1"], case["root1"]), (case["size2"], case["root2"])):
            leaves = [leaf_hash(leaf) for leaf in TEST_LEAVES[:size]]
            assert merkle_root(leaves) == _b64(root), (path, size)


def test_merkle_root_single_entry_and_empty() -> None:
    single = _vector_files("inclusion")[0].parents[1] / "single-entry"
    case = json.loads((single / "matching-root-and-leaf.json").read_text())
    assert merkle_root([_b64(case["leafHash"])]) == _b64(case["root"])
    assert merkle_root([]) == hashlib.sha256(b"").digest()


def test_merkle_root_over_audit_log(five: sessionmaker[Session]) -> None:
    with five() as session:
        rows = list_entries(session)
    leaves = [bytes.fromhex(r.entry_hash) for r in rows]
    assert leaves == [leaf_hash(entry_bytes(r)) for r in rows]
    assert len(merkle_root(leaves)) == 32
