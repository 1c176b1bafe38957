"""Recall and correction notices (SPEC §10)."""

from __future__ import annotations

import pytest
from support import NOW, correction, label, make_origin, recall, roster, signing_key, with_payload

from protocol.ack import Ack, AckReason
from protocol.envelope import OriginAttestation
from protocol.errors import MalformedError, NoticeMismatchError, SignatureError
from protocol.notices import NoticeAck, Recall, verify_correction, verify_notice_ack, verify_recall
from protocol.notices import NoticeKind as NoticeAckKind
from protocol.statements import PayloadType, Signed, sign


def _held(origin: Signed) -> dict[str, object]:
    att = OriginAttestation.from_bytes(origin.payload)
    return {
        "roster": roster(),
        "item_id": att.item_id,
        "item_version": att.item_version,
        "origin_digest": origin.digest,
        "originator": att.originator,
    }


def test_recall_verifies_for_the_held_item() -> None:
    origin, _ = make_origin()
    notice = verify_recall(recall(origin), **_held(origin))  # type: ignore[arg-type]
    assert (notice.item_id, notice.item_version, notice.originator) == ("item-1", 1, "KZ")


def test_recall_for_another_version_digest() -> None:
    origin, _ = make_origin()
    held = _held(origin) | {"origin_digest": "f" * 64}
    with pytest.raises(NoticeMismatchError):
        verify_recall(recall(origin), **held)  # type: ignore[arg-type]


def test_recall_from_unknown_originator() -> None:
    origin, _ = make_origin()
    held = _held(origin) | {"originator": "KG"}
    with pytest.raises(SignatureError, match="unknown or revoked"):
        verify_recall(recall(origin, originator="KG"), **held)  # type: ignore[arg-type]


def test_recall_that_does_not_parse() -> None:
    origin, _ = make_origin()
    with pytest.raises(MalformedError):
        verify_recall(with_payload(recall(origin), b"{}"), **_held(origin))  # type: ignore[arg-type]


def test_recall_of_another_statement_type() -> None:
    origin, _ = make_origin()
    as_correction = recall(origin).model_copy(update={"payload_type": PayloadType.CORRECTION.value})
    with pytest.raises(MalformedError):
        verify_recall(as_correction, **_held(origin))  # type: ignore[arg-type]


def test_recall_with_tampered_reason() -> None:
    origin, _ = make_origin()
    signed = recall(origin)
    doc = Recall.from_bytes(signed.payload).model_copy(update={"reason": "never happened"})
    with pytest.raises(SignatureError):
        verify_recall(with_payload(signed, doc.to_bytes()), **_held(origin))  # type: ignore[arg-type]


def test_correction_verifies_for_the_held_version() -> None:
    v1, _ = make_origin()
    v2, _ = make_origin(label("KZ", item_version=2, supersedes=v1.digest))
    notice = verify_correction(correction(v1, v2), **_held(v1))  # type: ignore[arg-type]
    assert (notice.corrected_version, notice.new_version, notice.new_origin_digest) == (1, 2, v2.digest)


def test_correction_must_move_forward() -> None:
    v1, _ = make_origin()
    v2, _ = make_origin(label("KZ", item_version=2, supersedes=v1.digest))
    held = _held(v1) | {"item_version": 2}
    backwards = correction(v1, v2).model_copy()
    # A correction that claims to correct v2 into v2.
    from protocol.notices import Correction

    doc = Correction.from_bytes(backwards.payload).model_copy(update={"corrected_version": 2})
    with pytest.raises(NoticeMismatchError):
        verify_correction(sign(PayloadType.CORRECTION, doc, [signing_key("KZ")]), **held)  # type: ignore[arg-type]


def _notice_ack(origin: Signed, *, holder: str = "AZ", signer: str | None = None) -> Signed:
    notice = recall(origin)
    statement = NoticeAck(
        notice_digest=notice.digest,
        kind=NoticeAckKind.RECALL,
        item_id="item-1",
        item_version=1,
        originator="KZ",
        holder=holder,
        received_from="KZ",
        copies=1,
        applied_at=NOW,
        log_seq=7,
        log_leaf="a" * 64,
    )
    return sign(PayloadType.NOTICE_ACK, statement, [signing_key(signer or holder)])


def test_notice_ack_verifies_against_its_holder() -> None:
    # SPEC §10.3: the acknowledgement is signed by the holder it names.
    origin, _ = make_origin()
    ack = verify_notice_ack(_notice_ack(origin), roster=roster())
    assert (ack.holder, ack.log_seq, ack.notice_digest) == ("AZ", 7, recall(origin).digest)


def test_notice_ack_signed_by_another_member() -> None:
    origin, _ = make_origin()
    with pytest.raises(SignatureError):
        verify_notice_ack(_notice_ack(origin, signer="KG"), roster=roster())


def test_notice_ack_from_a_holder_not_in_the_roster() -> None:
    origin, _ = make_origin()
    with pytest.raises(SignatureError, match="unknown or revoked"):
        verify_notice_ack(_notice_ack(origin, holder="XX"), roster=roster())


def test_notice_ack_that_does_not_parse() -> None:
    origin, _ = make_origin()
    with pytest.raises(MalformedError):
        verify_notice_ack(with_payload(_notice_ack(origin), b"{}"), roster=roster())


def test_ack_answers_carry_their_reason_and_statement() -> None:
    origin, _ = make_origin()
    statement = _notice_ack(origin)
    done = Ack.done(AckReason.RECALLED, "1 copy recalled", statement)
    refused = Ack.refused(AckReason.UNKNOWN_ITEM, "no such item held")
    assert (done.accepted, done.reason, done.statement) == (True, AckReason.RECALLED, statement)
    assert (refused.accepted, refused.reason, refused.statement) == (False, AckReason.UNKNOWN_ITEM, None)
