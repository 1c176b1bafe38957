"""Check the implementation against tests/vectors/checkpoints.json (SPEC §11.10, §13).

Reads the file and regenerates nothing (``tests/vectors/generate_checkpoints.py`` wrote
it). Every key comes from the seeds in the file, the roster from its JSON: Merkle roots
and proofs, checkpoint notes and witness cosignatures must come out byte for byte, and
every witness decision, cosigned note and refused note must get its expected outcome.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from protocol.checkpoint import (
    ED25519_COSIGNATURE_TYPE,
    ML_DSA_65_COSIGNATURE_TYPE,
    Witnessed,
    WitnessReason,
    cosigned_message,
    log_origin,
    note_key_id,
    sign_checkpoint,
    verify_checkpoint,
    verify_cosigned,
    witness,
    witness_name,
)
from protocol.encoding import canonical_json
from protocol.errors import IntelshareError
from protocol.keys import SigningKey
from protocol.merkle import (
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    memory_nodes,
    root_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)
from protocol.roster import Roster

PATH = Path(__file__).resolve().parent / "vectors" / "checkpoints.json"
DOC: dict[str, Any] = json.loads(PATH.read_text(encoding="utf-8"))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _roster(doc: dict[str, Any]) -> Roster:
    return Roster.from_bytes(canonical_json(doc))


def _key(member_id: str) -> SigningKey:
    return SigningKey.from_seeds(bytes.fromhex(DOC["members"][member_id]["ed25519_seed_hex"]), None)


def _outcome(fn: Callable[[], object]) -> str:
    try:
        fn()
    except IntelshareError as exc:
        return type(exc).__name__
    return "accepted"


def _held(doc: dict[str, Any] | None) -> Witnessed | None:
    if doc is None:
        return None
    return Witnessed(
        doc["origin"], doc["size"], bytes.fromhex(doc["root_hex"]), _at(doc["log_time"]), doc["note"].encode()
    )


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


LEAVES = [bytes.fromhex(h) for h in DOC["log"]["leaf_hashes_hex"]]
NODES = memory_nodes(LEAVES)
ROOTS = {r["size"]: bytes.fromhex(r["root_hex"]) for r in DOC["log"]["roots"]}


# --- keys, names, the log ------------------------------------------------------------------


@pytest.mark.parametrize("member_id", sorted(DOC["members"]))
def test_member_keys_names_and_key_ids(member_id: str) -> None:
    doc = DOC["members"][member_id]
    public = _key(member_id).public()
    assert public.ed25519.hex() == doc["ed25519_public_hex"]
    member = _roster(DOC["roster"]).member(member_id)
    assert member is not None
    assert member.signing_key == public
    assert doc["log_origin"] == log_origin(DOC["federation"], member_id) == f"intelshare/OTS/audit/{member_id}"
    assert doc["witness_name"] == witness_name(DOC["federation"], member_id)
    assert note_key_id(doc["log_origin"], ED25519_COSIGNATURE_TYPE, public.ed25519).hex() == doc["log_key_id_hex"]
    assert note_key_id(doc["witness_name"], b"\x04", public.ed25519).hex() == doc["witness_key_id_hex"]


def test_leaves_and_roots() -> None:
    log = DOC["log"]
    assert [leaf_hash(e.encode("utf-8")) for e in log["entries"]] == LEAVES
    assert sorted(ROOTS) == list(range(len(LEAVES) + 1))
    frontier = Frontier()
    for size, root in sorted(ROOTS.items()):
        assert tree_hash(LEAVES[:size]) == root_hash(size, NODES) == frontier.root() == root, size
        if size < len(LEAVES):
            frontier.append(LEAVES[size])


@pytest.mark.parametrize("case", DOC["inclusion_proofs"], ids=lambda c: f"{c['index']}-of-{c['tree_size']}")
def test_inclusion_proof(case: dict[str, Any]) -> None:
    proof = [bytes.fromhex(h) for h in case["proof_hex"]]
    assert inclusion_proof(case["index"], case["tree_size"], NODES) == proof
    verify_inclusion(LEAVES[case["index"]], case["index"], case["tree_size"], proof, ROOTS[case["tree_size"]])


@pytest.mark.parametrize("case", DOC["consistency_proofs"], ids=lambda c: f"{c['old_size']}-to-{c['new_size']}")
def test_consistency_proof(case: dict[str, Any]) -> None:
    old, new = case["old_size"], case["new_size"]
    proof = [bytes.fromhex(h) for h in case["proof_hex"]]
    assert consistency_proof(old, new, NODES) == proof
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


# --- checkpoints and witnessing -----------------------------------------------------------


@pytest.mark.parametrize("case", DOC["checkpoints"], ids=_ids(DOC["checkpoints"]))
def test_checkpoint(case: dict[str, Any]) -> None:
    when, log = _at(case["time"]), DOC["log"]
    root = bytes.fromhex(case["root_hex"])
    assert root == ROOTS[case["size"]]
    note = sign_checkpoint(
        _key(log["member_id"]),
        federation=DOC["federation"],
        member_id=log["member_id"],
        size=case["size"],
        root=root,
        now=when,
    )
    assert note.decode("utf-8") == case["note"]
    body = note.partition(b"\n\n")[0] + b"\n"
    assert cosigned_message(body, int(when.timestamp())).decode("utf-8") == case["signed_message"]
    verified = verify_checkpoint(note, roster=_roster(DOC["roster"]), member_id=log["member_id"])
    assert (verified.checkpoint.origin, verified.checkpoint.size, verified.time) == (log["origin"], case["size"], when)


@pytest.mark.parametrize("step", DOC["witnessing"], ids=_ids(DOC["witnessing"]))
def test_witnessing_step(step: dict[str, Any]) -> None:
    held = _held(step["held"])
    decision = witness(
        step["request"].encode("utf-8"),
        roster=_roster(DOC["roster"]),
        witness_id=step["witness"],
        key=_key(step["witness"]),
        last=lambda origin: held if held is not None and held.origin == origin else None,
        now=_at(step["now"]),
        max_future=timedelta(seconds=DOC["max_future_seconds"]),
    )
    assert decision.reason.value == step["expected_reason"], decision.detail
    assert decision.witnessed_size == step["expected_witnessed_size"]
    assert (None if decision.cosignature is None else decision.cosignature.decode()) == step["cosignature"]
    assert decision.keep == _held(step["keep"])
    evidence = None if decision.evidence is None else [e.decode() for e in decision.evidence]
    assert evidence == step["evidence"]


def test_witnessing_covers_every_reason() -> None:
    assert {s["expected_reason"] for s in DOC["witnessing"]} == {r.value for r in WitnessReason}


@pytest.mark.parametrize("case", DOC["cosigned"], ids=_ids(DOC["cosigned"]))
def test_cosigned(case: dict[str, Any]) -> None:
    witnesses: list[str] = []

    def check() -> None:
        cosigned = verify_cosigned(
            case["note"].encode("utf-8"),
            roster=_roster(DOC["roster"]),
            member_id=DOC["log"]["member_id"],
            quorum=case["quorum"],
        )
        witnesses.extend(c.witness for c in cosigned.witnesses)

    assert _outcome(check) == case["expected"]
    assert witnesses == case["witnesses"]


@pytest.mark.parametrize("case", DOC["checkpoint_cases"], ids=_ids(DOC["checkpoint_cases"]))
def test_checkpoint_case(case: dict[str, Any]) -> None:
    outcome = _outcome(
        lambda: verify_checkpoint(
            case["note"].encode("utf-8"), roster=_roster(DOC["roster"]), member_id=case["member_id"]
        )
    )
    assert outcome == case["expected"]


def test_hybrid_keys() -> None:
    doc = DOC["hybrid"]
    key = SigningKey.from_seeds(bytes.fromhex(doc["ed25519_seed_hex"]), bytes.fromhex(doc["ml_dsa_65_seed_hex"]))
    public = key.public()
    assert public.ml_dsa_65 is not None
    member = _roster(doc["roster"]).member(DOC["log"]["member_id"])
    assert member is not None
    assert member.signing_key == public
    key_id = note_key_id(DOC["log"]["origin"], ML_DSA_65_COSIGNATURE_TYPE, public.ml_dsa_65)
    assert key_id.hex() == doc["ml_dsa_65_key_id_hex"]


@pytest.mark.parametrize("case", DOC["hybrid"]["cases"], ids=_ids(DOC["hybrid"]["cases"]))
def test_hybrid_case(case: dict[str, Any]) -> None:
    roster = _roster(DOC["hybrid"]["roster"])
    outcome = _outcome(
        lambda: verify_checkpoint(case["note"].encode("utf-8"), roster=roster, member_id=DOC["log"]["member_id"])
    )
    assert outcome == case["expected"]


def test_cases_cover_both_outcomes() -> None:
    for cases in (DOC["cosigned"], DOC["checkpoint_cases"], DOC["hybrid"]["cases"]):
        outcomes = {c["expected"] for c in cases}
        assert "accepted" in outcomes
        assert outcomes - {"accepted"}
