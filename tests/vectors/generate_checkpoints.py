"""Write tests/vectors/checkpoints.json (SPEC §11.10, §13). Run by hand, never by the tests.

    .venv/bin/python tests/vectors/generate_checkpoints.py

A small audit log of KZ (13 entries) with its roots, inclusion and consistency proofs;
checkpoints KZ signed; TR's witness decisions, each with the state TR held, so every
step can be checked alone; cosigned notes with the expected witnesses; notes that must be
refused. Everything comes from fixed seeds (``tests.support``: ``sign:<member>``) and the
fixed clock 2026-11-22T12:00:00Z, so every Ed25519 byte is the same on every run. ML-DSA
signing is randomised: the hybrid cases are verify-only and a re-run writes different but
equally valid bytes. ``tests/test_checkpoint_vectors.py`` only reads the file.

Conventions: binary values are lower-case hex (``*_hex``); notes and requests are the
exact UTF-8 text (a JSON string); times are RFC 3339 UTC; the roster is the JSON object a
``Roster`` parses from (SPEC §4.4).
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from protocol.checkpoint import (  # noqa: E402
    ED25519_COSIGNATURE_TYPE,
    ML_DSA_65_COSIGNATURE_TYPE,
    NoteSignature,
    WitnessDecision,
    Witnessed,
    WitnessReason,
    cosigned_message,
    log_origin,
    note_key_id,
    parse_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
    verify_cosigned,
    witness,
    witness_name,
    witness_request,
)
from protocol.errors import IntelshareError  # noqa: E402
from protocol.keys import SigningKey  # noqa: E402
from protocol.merkle import (  # noqa: E402
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    memory_nodes,
    tree_hash,
)
from protocol.roster import Roster  # noqa: E402
from tests import support as S  # noqa: E402, N812

NOW = S.NOW
FEDERATION = "OTS"
LOG = "KZ"
WITNESS = "TR"
MAX_FUTURE = timedelta(minutes=5)
ENTRIES = [f"KZ audit entry {n}" for n in range(1, 14)]
#: The same hybrid identity as keys.json (seeds derived the same way).
HYBRID_ED_SEED = hashlib.sha256(b"intelshare vectors: hybrid ed25519").digest()
HYBRID_PQ_SEED = hashlib.sha256(b"intelshare vectors: hybrid ml-dsa-65").digest()
STRANGER_SEED = hashlib.sha256(b"intelshare vectors: not a member").digest()


def ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)


def hexes(values: list[bytes]) -> list[str]:
    return [v.hex() for v in values]


def outcome(fn: Any) -> str:
    try:
        fn()
    except IntelshareError as exc:
        return type(exc).__name__
    return "accepted"


LEAVES = [leaf_hash(e.encode()) for e in ENTRIES]
FORKED = [*LEAVES[:3], leaf_hash(b"KZ audit entry 4, rewritten as allowed"), *LEAVES[4:]]


def note(size: int, when: datetime, leaves: list[bytes] = LEAVES, key: SigningKey | None = None) -> bytes:
    return sign_checkpoint(
        key or S.signing_key(LOG),
        federation=FEDERATION,
        member_id=LOG,
        size=size,
        root=tree_hash(leaves[:size]),
        now=when,
    )


def request(old: int, size: int, when: datetime, leaves: list[bytes] = LEAVES, **kw: Any) -> bytes:
    proof = consistency_proof(old, size, memory_nodes(leaves[:size]))
    return witness_request(old, kw.get("proof", proof), kw.get("checkpoint", note(size, when, leaves)))


def body(data: bytes) -> bytes:
    return data.partition(b"\n\n")[0] + b"\n"


def lines(data: bytes) -> bytes:
    return data.partition(b"\n\n")[2]


def held_obj(held: Witnessed | None) -> dict[str, Any] | None:
    if held is None:
        return None
    return {
        "origin": held.origin,
        "size": held.size,
        "root_hex": held.root.hex(),
        "log_time": ts(held.log_time),
        "note": held.note.decode(),
    }


def decide(witness_id: str, req: bytes, held: Witnessed | None, now: datetime, ros: Roster) -> WitnessDecision:
    return witness(
        req,
        roster=ros,
        witness_id=witness_id,
        key=S.signing_key(witness_id),
        last=lambda origin: held if held is not None and held.origin == origin else None,
        now=now,
        max_future=MAX_FUTURE,
    )


def gen() -> dict[str, Any]:
    ros = S.roster()
    nodes = memory_nodes(LEAVES)
    origin = log_origin(FEDERATION, LOG)
    members = {}
    for m in S.MARKINGS:
        public = S.signing_key(m).public()
        members[m] = {
            "ed25519_seed_hex": S._seed(m, "sign").hex(),
            "ed25519_public_hex": public.ed25519.hex(),
            "log_origin": log_origin(FEDERATION, m),
            "log_key_id_hex": note_key_id(log_origin(FEDERATION, m), ED25519_COSIGNATURE_TYPE, public.ed25519).hex(),
            "witness_name": witness_name(FEDERATION, m),
            "witness_key_id_hex": note_key_id(
                witness_name(FEDERATION, m), ED25519_COSIGNATURE_TYPE, public.ed25519
            ).hex(),
        }

    # --- checkpoints KZ signs ---------------------------------------------------------------
    signed = {
        "size 5": (5, at(0)),
        "size 8": (8, at(60)),
        "size 13": (13, at(120)),
        "size 13 again, an hour later": (13, at(3600)),
        "empty log": (0, at(0)),
    }
    checkpoints = []
    for name, (size, when) in signed.items():
        text = note(size, when)
        checkpoints.append(
            {
                "name": name,
                "size": size,
                "root_hex": tree_hash(LEAVES[:size]).hex(),
                "time": ts(when),
                "signed_message": cosigned_message(body(text), int(when.timestamp())).decode(),
                "note": text.decode(),
            }
        )

    # --- TR witnessing KZ's log, one self-contained step each --------------------------------
    first = decide(WITNESS, request(0, 5, at(0)), None, at(1), ros)
    held5 = first.keep
    extended = decide(WITNESS, request(5, 13, at(120)), held5, at(121), ros)
    held13 = extended.keep
    assert held5 is not None
    assert held13 is not None
    stranger = SigningKey.from_seeds(STRANGER_SEED, None)
    fork_note = note(13, at(180), FORKED)
    lifted = body(note(13, at(120))) + b"\n" + lines(note(8, at(120)))
    w = WitnessReason
    five, thirteen = request(0, 5, at(0)), request(5, 13, at(120))
    wrong_old = consistency_proof(6, 13, nodes)
    other_tree = consistency_proof(5, 13, memory_nodes(FORKED))
    undue = consistency_proof(3, 5, nodes)
    leading_zero = note(5, at(0)).replace(b"\n5\n", b"\n05\n", 1)
    extension = body(note(5, at(0))) + b"time 1795348800\n\n" + lines(note(5, at(0)))
    no_blank = note(5, at(0)).replace(b"\n\n", b"\n")
    other_federation = note(5, at(0)).replace(b"intelshare/OTS/", b"intelshare/EU/")
    steps: list[tuple[str, str, bytes, Witnessed | None, datetime, WitnessReason]] = [
        ("first checkpoint: nothing held, no proof", WITNESS, five, None, at(1), w.CHECKPOINT_WITNESSED),
        ("extension 5 -> 13 with a consistency proof", WITNESS, thirteen, held5, at(121), w.CHECKPOINT_WITNESSED),
        (
            "the same tree signed again later",
            WITNESS,
            request(13, 13, at(3600)),
            held13,
            at(3601),
            w.CHECKPOINT_WITNESSED,
        ),
        (
            "fork: size 13 with another root",
            WITNESS,
            witness_request(13, [], fork_note),
            held13,
            at(181),
            w.CHECKPOINT_FORK,
        ),
        (
            "rollback: size 8 signed after size 13",
            WITNESS,
            witness_request(13, [], note(8, at(180))),
            held13,
            at(181),
            w.CHECKPOINT_ROLLBACK,
        ),
        (
            "stale: size 8 signed before size 13 was",
            WITNESS,
            witness_request(13, [], note(8, at(60))),
            held13,
            at(181),
            w.CHECKPOINT_STALE,
        ),
        (
            "old size is not the witnessed size",
            WITNESS,
            request(0, 13, at(120)),
            held5,
            at(121),
            w.CHECKPOINT_OLD_SIZE_MISMATCH,
        ),
        (
            "proof from another old size",
            WITNESS,
            request(5, 13, at(120), proof=wrong_old),
            held5,
            at(121),
            w.CONSISTENCY_PROOF_INVALID,
        ),
        (
            "proof for another tree (the forked log)",
            WITNESS,
            request(5, 13, at(120), proof=other_tree),
            held5,
            at(121),
            w.CONSISTENCY_PROOF_INVALID,
        ),
        (
            "forked log with its own honest proof",
            WITNESS,
            request(5, 13, at(180), FORKED),
            held5,
            at(181),
            w.CONSISTENCY_PROOF_INVALID,
        ),
        (
            "a proof where none is due (old size 0)",
            WITNESS,
            request(0, 5, at(0), proof=undue),
            None,
            at(1),
            w.CONSISTENCY_PROOF_INVALID,
        ),
        (
            "signed by AZ's key, not KZ's",
            WITNESS,
            witness_request(0, [], note(5, at(0), key=S.signing_key("AZ"))),
            None,
            at(1),
            w.CHECKPOINT_SIGNATURE_INVALID,
        ),
        (
            "signature lifted onto another checkpoint",
            WITNESS,
            witness_request(0, [], lifted),
            None,
            at(121),
            w.CHECKPOINT_SIGNATURE_INVALID,
        ),
        (
            "signed by a key outside the roster",
            WITNESS,
            witness_request(0, [], note(5, at(0), key=stranger)),
            None,
            at(1),
            w.CHECKPOINT_SIGNATURE_INVALID,
        ),
        (
            "malformed: size with a leading zero",
            WITNESS,
            witness_request(0, [], leading_zero),
            None,
            at(1),
            w.CHECKPOINT_MALFORMED,
        ),
        ("malformed: extension line", WITNESS, b"old 0\n\n" + extension, None, at(1), w.CHECKPOINT_MALFORMED),
        (
            "malformed: no blank line after the proof",
            WITNESS,
            b"old 0\n" + no_blank,
            None,
            at(1),
            w.CHECKPOINT_MALFORMED,
        ),
        (
            "unknown log: another federation",
            WITNESS,
            witness_request(0, [], other_federation),
            None,
            at(1),
            w.CHECKPOINT_UNKNOWN_LOG,
        ),
        ("unknown log: the witness's own", LOG, five, None, at(1), w.CHECKPOINT_UNKNOWN_LOG),
        ("signed more than max_future ahead", WITNESS, request(0, 5, at(301)), None, at(0), w.CHECKPOINT_FROM_FUTURE),
    ]
    witnessing = []
    for name, witness_id, req, held, now, reason in steps:
        decision = decide(witness_id, req, held, now, ros)
        assert decision.reason is reason, (name, decision.detail)
        witnessing.append(
            {
                "name": name,
                "witness": witness_id,
                "held": held_obj(held),
                "request": req.decode(),
                "now": ts(now),
                "expected_reason": reason.value,
                "expected_witnessed_size": decision.witnessed_size,
                "cosignature": None if decision.cosignature is None else decision.cosignature.decode(),
                "keep": held_obj(decision.keep),
                "evidence": None if decision.evidence is None else [e.decode() for e in decision.evidence],
            }
        )
    assert {s[-1] for s in steps} == set(WitnessReason)

    # --- cosigned notes: what a log owner or auditor verifies ---------------------------------
    base = note(13, at(120))
    tr_lines = decide(WITNESS, request(5, 13, at(120)), held5, at(121), ros).cosignature
    az_lines = decide("AZ", request(0, 13, at(120)), None, at(122), ros).cosignature
    old_tr = first.cosignature
    assert tr_lines is not None
    assert az_lines is not None
    assert old_tr is not None
    stamp = int(at(121).timestamp())
    ((_, _, stranger_sig),) = stranger.sign(cosigned_message(body(base), stamp))

    def line(name: str, key_of: SigningKey, signature: bytes) -> bytes:
        key_id = note_key_id(name, ED25519_COSIGNATURE_TYPE, key_of.public().ed25519)
        return NoteSignature(name, key_id, stamp.to_bytes(8, "big") + signature).line()

    tr_name = witness_name(FEDERATION, WITNESS)
    forged_tr = line(tr_name, S.signing_key(WITNESS), stranger_sig)
    ((_, _, kz_self),) = S.signing_key(LOG).sign(cosigned_message(body(base), stamp))
    kz_as_witness = line(witness_name(FEDERATION, LOG), S.signing_key(LOG), kz_self)
    cosigned_cases = [
        ("TR and AZ, quorum 2", base + tr_lines + az_lines, 2),
        ("TR and AZ, quorum 3", base + tr_lines + az_lines, 3),
        ("a non-member's line under TR's name is ignored", base + tr_lines + line(tr_name, stranger, stranger_sig), 1),
        ("a non-member's line with TR's key id fails the note", base + forged_tr, 1),
        ("TR's cosignature of size 5 lifted onto size 13", base + old_tr, 1),
        ("KZ co-signing its own log does not count", base + kz_as_witness, 1),
        ("the same cosignature twice", base + tr_lines + tr_lines, 2),
    ]
    cosigned = []
    for name, text, quorum in cosigned_cases:
        result: list[str] = []

        def check(text: bytes = text, quorum: int = quorum, result: list[str] = result) -> None:
            result.extend(c.witness for c in verify_cosigned(text, roster=ros, member_id=LOG, quorum=quorum).witnesses)

        cosigned.append(
            {"name": name, "note": text.decode(), "quorum": quorum, "expected": outcome(check), "witnesses": result}
        )

    # --- notes verify_checkpoint must refuse (or accept) as KZ's --------------------------------
    good = note(8, at(60))
    good_line = lines(good)
    (signature,) = parse_checkpoint(good).signatures
    later_stamp = (int(at(61).timestamp())).to_bytes(8, "big")
    later_line = NoteSignature(signature.name, signature.key_id, later_stamp + signature.signature[8:]).line()
    notes_cases = [
        ("KZ's checkpoint", good, LOG),
        ("KZ's checkpoint claimed as TR's", good, "TR"),
        ("size with a leading zero", good.replace(b"\n8\n", b"\n08\n", 1), LOG),
        ("non-canonical base64 root", good.replace(b"=\n\n", b"\n\n", 1), LOG),
        ("extension line", body(good) + b"extension\n\n" + good_line, LOG),
        ("no signature line", body(good) + b"\n", LOG),
        ("carriage return", good.replace(b"\n", b"\r\n", 1), LOG),
        ("no final newline", good[:-1], LOG),
        ("hyphen instead of an em dash", body(good) + b"\n" + good_line.replace("—".encode(), b"-", 1), LOG),
        ("one signature line twice", good + good_line, LOG),
        ("empty tree with another root", note(0, at(0)).replace(b"47DEQ", b"57DEQ"), LOG),
        ("time in the signature line changed", body(good) + b"\n" + later_line, LOG),
        ("only lines by unknown keys", body(good) + b"\n" + line("example.com/log", stranger, stranger_sig), LOG),
    ]
    checkpoint_cases = []
    for name, text, member_id in notes_cases:

        def check_note(text: bytes = text, member_id: str = member_id) -> None:
            verify_checkpoint(text, roster=ros, member_id=member_id)

        checkpoint_cases.append(
            {"name": name, "note": text.decode(), "member_id": member_id, "expected": outcome(check_note)}
        )

    # --- hybrid KZ: verify-only (ML-DSA-65 signing is randomised) ------------------------------
    hybrid = SigningKey.from_seeds(HYBRID_ED_SEED, HYBRID_PQ_SEED)
    hybrid_public = hybrid.public()
    assert hybrid_public.ml_dsa_65 is not None
    hybrid_roster = Roster(
        federation=ros.federation,
        version=1,
        issued_at=NOW,
        members=tuple(
            m.model_copy(update={"signing_key": hybrid_public}) if m.member_id == LOG else m for m in ros.members
        ),
    )
    hybrid_note = note(8, at(60), key=hybrid)
    ed_line, ml_line = (l + b"\n" for l in lines(hybrid_note).split(b"\n")[:2])  # noqa: E741
    other_ml = lines(note(9, at(60), key=hybrid)).split(b"\n")[1] + b"\n"
    hybrid_cases = [
        ("Ed25519 and ML-DSA-65 lines", hybrid_note),
        ("Ed25519 line only", body(hybrid_note) + b"\n" + ed_line),
        ("ML-DSA-65 line only", body(hybrid_note) + b"\n" + ml_line),
        ("ML-DSA-65 line of another checkpoint", body(hybrid_note) + b"\n" + ed_line + other_ml),
    ]
    hybrid_doc = {
        "ed25519_seed_hex": HYBRID_ED_SEED.hex(),
        "ml_dsa_65_seed_hex": HYBRID_PQ_SEED.hex(),
        "ml_dsa_65_key_id_hex": note_key_id(origin, ML_DSA_65_COSIGNATURE_TYPE, hybrid_public.ml_dsa_65).hex(),
        "roster": json.loads(hybrid_roster.to_bytes()),
        "cases": [
            {
                "name": name,
                "note": text.decode(),
                "expected": outcome(lambda text=text: verify_checkpoint(text, roster=hybrid_roster, member_id=LOG)),
            }
            for name, text in hybrid_cases
        ],
    }

    return {
        "description": (
            "Checkpoints of KZ's audit log, TR's witness decisions, cosigned notes and refused notes (SPEC §11.10). "
            "Leaf i = SHA-256(0x00 || UTF-8 entries[i]). A note's signature line is '— <name> base64(key id || "
            "uint64be time || signature)' and the signature is over signed_message = 'cosignature/v1\\ntime <t>\\n' "
            "followed by the note text. Ed25519 is deterministic: every Ed25519 byte here is reproduced exactly. "
            "Each witnessing step is self-contained: run the witness rule on 'request' at 'now' with 'held' as what "
            "the witness holds for the origin (null: nothing) and max_future_seconds."
        ),
        "time": ts(NOW),
        "federation": FEDERATION,
        "max_future_seconds": int(MAX_FUTURE.total_seconds()),
        "roster": json.loads(ros.to_bytes()),
        "members": members,
        "log": {
            "member_id": LOG,
            "origin": origin,
            "entries": ENTRIES,
            "leaf_hashes_hex": hexes(LEAVES),
            "roots": [{"size": n, "root_hex": tree_hash(LEAVES[:n]).hex()} for n in range(len(LEAVES) + 1)],
        },
        "inclusion_proofs": [
            {"index": i, "tree_size": n, "proof_hex": hexes(inclusion_proof(i, n, nodes))}
            for n, i in ((1, 0), (5, 4), (8, 3), (13, 0), (13, 6), (13, 12))
        ],
        "consistency_proofs": [
            {"old_size": m, "new_size": n, "proof_hex": hexes(consistency_proof(m, n, nodes))}
            for m, n in ((1, 13), (4, 8), (5, 8), (5, 13), (8, 13), (12, 13), (13, 13))
        ],
        "checkpoints": checkpoints,
        "witnessing": witnessing,
        "cosigned": cosigned,
        "checkpoint_cases": checkpoint_cases,
        "hybrid": hybrid_doc,
    }


def main() -> None:
    doc = gen()
    path = HERE / "checkpoints.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(HERE.parents[1])}")
    # The file is its own reference: parse every note it holds once more.
    for case in doc["checkpoints"]:
        assert parse_checkpoint(case["note"].encode()).to_bytes() == case["note"].encode()


if __name__ == "__main__":
    main()
