"""Write tests/vectors/roster_updates.json (SPEC §5.3, §5.4.3, §11.12, §13). Run by hand, never by the tests.

    .venv/bin/python tests/vectors/generate_rosters.py

A chain of roster versions kept by a secretariat of three holders, two of whom must sign
(2 of 3): the first roster; a revocation; a rotation of KZ's signing key with its old key
retired; a change of the secretariat's own key set. Then updates that must be refused:
one signature short, signatures of keys outside the set, a new set signed only by
itself, a rollback, and the canonical-form rule for the optional fields. Last, statements
signed with a retired key and what each roster of the chain makes of them. Every byte
comes from fixed seeds (``tests.support``) and the fixed clock 2026-11-22T12:00:00Z:
Ed25519 signing is deterministic, so a re-run writes the same file.
``tests/test_roster_vectors.py`` only reads the file.

Conventions: binary values are lower-case hex (``*_hex``); statements are the JSON
objects they travel as (SPEC §4.1).
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from protocol.errors import IntelshareError  # noqa: E402
from protocol.keys import SigningKey  # noqa: E402
from protocol.roster import RetiredKey, Roster, SecretariatKeys, accept_roster  # noqa: E402
from protocol.statements import PayloadType, Signed, sign  # noqa: E402
from tests import support as S  # noqa: E402, N812

NOW = S.NOW
HOLDERS = {name: SigningKey.from_seeds(S._seed(name, "secretariat"), None) for name in ("chair", "deputy", "registrar")}
NEW_HOLDER = SigningKey.from_seeds(S._seed("treasurer", "secretariat"), None)
NEW_KZ = SigningKey.from_seeds(S._seed("KZ", "sign-2"), None)
ANCHOR = SecretariatKeys(threshold=2, keys=tuple(key.public() for key in HOLDERS.values()))


def obj(model: Any) -> Any:
    return json.loads(model.model_dump_json())


def outcome(fn: Any) -> str:
    try:
        fn()
    except IntelshareError as exc:
        return type(exc).__name__
    return "accepted"


def signed(roster: Roster, *names: str, extra: tuple[SigningKey, ...] = ()) -> Signed:
    keys = [HOLDERS.get(n, NEW_HOLDER) for n in names]
    return sign(PayloadType.ROSTER, Roster.model_validate_json(roster.model_dump_json()), [*keys, *extra])


def chain() -> list[tuple[str, Roster, Signed]]:
    v1 = S.roster(1).model_copy(update={"secretariat": ANCHOR})
    v2 = v1.model_copy(
        update={"version": 2, "issued_at": NOW + timedelta(hours=1), "revoked_keyids": (S.signing_key("UZ").keyid,)}
    )
    members = tuple(
        m.model_copy(update={"signing_key": NEW_KZ.public()}) if m.member_id == "KZ" else m for m in v2.members
    )
    retired = (RetiredKey(member_id="KZ", signing_key=S.signing_key("KZ").public(), until=NOW + timedelta(days=14)),)
    v3 = v2.model_copy(
        update={"version": 3, "issued_at": NOW + timedelta(hours=2), "members": members, "retired_keys": retired}
    )
    rotated_set = SecretariatKeys(
        threshold=2, keys=(HOLDERS["chair"].public(), HOLDERS["deputy"].public(), NEW_HOLDER.public())
    )
    v4 = v3.model_copy(update={"version": 4, "issued_at": NOW + timedelta(hours=3), "secretariat": rotated_set})
    return [
        ("v1: the first roster, 2 of 3 holders", v1, signed(v1, "chair", "deputy")),
        ("v2: UZ's key revoked", v2, signed(v2, "deputy", "registrar")),
        ("v3: KZ's signing key rotated, the old one retired for 14 days", v3, signed(v3, "chair", "registrar")),
        (
            "v4: the registrar's key replaced by the treasurer's (2 of the old set and 2 of the new)",
            v4,
            signed(v4, "chair", "registrar", "treasurer"),
        ),
    ]


def main() -> None:
    steps = chain()
    held: Roster | None = None
    out_chain = []
    for name, roster, statement in steps:
        got = outcome(lambda statement=statement, held=held: accept_roster(statement, secretariat=ANCHOR, current=held))
        assert got == "accepted", (name, got)
        out_chain.append({"name": name, "update": obj(statement), "expected": got})
        held = roster
    v1, v2, v3, v4 = (r for _, r, _ in steps)
    v5 = v4.model_copy(update={"version": 5, "issued_at": NOW + timedelta(hours=4)})
    outsider = SigningKey.from_seeds(S._seed("outsider", "secretariat"), None)
    refused = [
        ("one signature short of the threshold", v1, signed(v2, "chair"), "SignatureError"),
        ("a holder and a stranger", v1, signed(v2, "chair", extra=(outsider,)), "SignatureError"),
        (
            "a new set signed only by itself (the old set did not agree)",
            v3,
            signed(v4, "registrar", "treasurer"),
            "SignatureError",
        ),
        ("the old set, after it was replaced", v4, signed(v5, "deputy", "registrar"), "SignatureError"),
        ("the new set signs the next version", v4, signed(v5, "chair", "treasurer"), "accepted"),
        ("a rollback: v2 again when v3 is held", v3, steps[1][2], "RollbackError"),
        ("the same version again", v3, steps[2][2], "RollbackError"),
    ]
    out_refused = []
    for name, current, statement, expected in refused:
        got = outcome(
            lambda statement=statement, current=current: accept_roster(statement, secretariat=ANCHOR, current=current)
        )
        assert got == expected, (name, got)
        out_refused.append({"name": name, "held": obj(current), "update": obj(statement), "expected": expected})
    empty_retired = json.loads(v1.to_bytes())
    empty_retired["retired_keys"] = []
    recall = sign(PayloadType.RECALL, S.roster(), [S.signing_key("KZ")])  # any statement by KZ's first key
    retired_cases = []
    for name, roster in (("v2", v2), ("v3", v3), ("v4", v4)):
        got = outcome(lambda roster=roster: roster.verify_member(recall, PayloadType.RECALL, "KZ"))
        retired_cases.append({"roster": name, "expected": got})
    assert [c["expected"] for c in retired_cases] == ["accepted", "accepted", "accepted"]
    revoked_v4 = v4.model_copy(update={"version": 6, "revoked_keyids": (*v4.revoked_keyids, S.signing_key("KZ").keyid)})
    retired_cases.append(
        {"roster": "v4 with KZ's retired key revoked", "roster_json": obj(revoked_v4), "expected": "SignatureError"}
    )
    assert outcome(lambda: revoked_v4.verify_member(recall, PayloadType.RECALL, "KZ")) == "SignatureError"
    doc = {
        "description": (
            "Roster updates under a k-of-n secretariat (SPEC §5.3) and retired signing keys (SPEC §5.4.3). "
            "Anchor: the set of 'anchor' (2 of 3), what a node is configured with. 'chain': accept each update "
            "with accept_roster(update, secretariat=anchor, current=the previous step's roster, None for the "
            "first); each is accepted. 'refused': accept_roster(update, secretariat=anchor, current=held) gives "
            "'expected' ('accepted' or the error class). 'not_canonical': a roster payload with an empty "
            "optional field present, which MUST NOT parse (MalformedError). 'retired_key': the statement "
            "signed with KZ's first key, verified for KZ under each roster of the chain (or 'roster_json')."
        ),
        "now": "2026-11-22T12:00:00Z",
        "anchor": obj(ANCHOR),
        "holder_seeds_hex": {name: S._seed(name, "secretariat").hex() for name in (*HOLDERS, "treasurer")},
        "chain": out_chain,
        "refused": out_refused,
        "not_canonical": json.dumps(empty_retired, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        "retired_key": {"statement": obj(recall), "cases": retired_cases},
    }
    path = HERE / "roster_updates.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
