"""tests/vectors/roster_updates.json: k-of-n roster updates and retired keys, as another implementation checks them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.errors import IntelshareError, MalformedError
from protocol.keys import SigningKey
from protocol.roster import Roster, SecretariatKeys, accept_roster
from protocol.statements import PayloadType, Signed

DOC = json.loads((Path(__file__).parent / "vectors" / "roster_updates.json").read_text(encoding="utf-8"))
ANCHOR = SecretariatKeys.model_validate(DOC["anchor"])


def _signed(value: Any) -> Signed:
    return Signed.from_bytes(json.dumps(value).encode())


def _outcome(call: Any) -> str:
    try:
        call()
    except IntelshareError as exc:
        return type(exc).__name__
    return "accepted"


def test_the_anchor_is_the_holders_keys() -> None:
    keys = [
        SigningKey.from_seeds(bytes.fromhex(DOC["holder_seeds_hex"][n]), None).public()
        for n in ("chair", "deputy", "registrar")
    ]
    assert SecretariatKeys(threshold=2, keys=tuple(keys)) == ANCHOR


def test_every_version_of_the_chain_is_accepted_after_the_one_before() -> None:
    # SPEC §5.3: each version is signed by the threshold of the set the one before declares.
    held: Roster | None = None
    for step in DOC["chain"]:
        held = accept_roster(_signed(step["update"]), secretariat=ANCHOR, current=held)
        assert step["expected"] == "accepted"
    assert held is not None
    assert held.version == len(DOC["chain"])


@pytest.mark.parametrize("case", DOC["refused"], ids=lambda c: c["name"])
def test_refused_update(case: dict[str, Any]) -> None:
    # SPEC §5.3
    held = Roster.model_validate(case["held"])
    assert (
        _outcome(lambda: accept_roster(_signed(case["update"]), secretariat=ANCHOR, current=held)) == case["expected"]
    )


def test_an_empty_optional_field_is_not_canonical() -> None:
    # SPEC §5.1: retired_keys and secretariat are left out when empty.
    with pytest.raises(MalformedError):
        Roster.from_bytes(DOC["not_canonical"].encode())


def test_a_retired_key_verifies_until_revoked() -> None:
    # SPEC §5.4.3
    statement = _signed(DOC["retired_key"]["statement"])
    rosters: dict[str, Roster] = {}
    held: Roster | None = None
    for step, name in zip(DOC["chain"], ("v1", "v2", "v3", "v4"), strict=True):
        held = accept_roster(_signed(step["update"]), secretariat=ANCHOR, current=held)
        rosters[name] = held
    for case in DOC["retired_key"]["cases"]:
        roster = Roster.model_validate(case["roster_json"]) if "roster_json" in case else rosters[case["roster"]]
        got = _outcome(lambda roster=roster: roster.verify_member(statement, PayloadType.RECALL, "KZ"))
        assert got == case["expected"], case["roster"]
