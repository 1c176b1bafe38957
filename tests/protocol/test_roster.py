"""The federation roster and its signed, versioned updates (SPEC §5.1, §5.3)."""

from __future__ import annotations

import json

import pytest
from support import SECRETARIAT, member, roster, signed_roster, signing_key

from protocol.classification import Band
from protocol.errors import MalformedError, RollbackError, SignatureError
from protocol.keys import SigningKey
from protocol.roster import Roster, SecretariatKeys, accept_roster

SECRETARIAT_KEYS = SecretariatKeys(threshold=1, keys=(SECRETARIAT.public(),))


def test_first_roster_is_accepted() -> None:
    ros = accept_roster(signed_roster(roster()), secretariat=SECRETARIAT_KEYS, current=None)
    assert ros == roster()
    assert ros.member_ids() == ("TR", "KZ", "AZ", "UZ")


def test_newer_roster_is_accepted() -> None:
    newer = roster(version=2, revoked=(signing_key("AZ").keyid,))
    assert accept_roster(signed_roster(newer), secretariat=SECRETARIAT_KEYS, current=roster()) == newer


def test_threshold_of_secretariat_keys_must_sign() -> None:
    # SPEC §5.3: k of the n keys; here the one key present is not the two needed.
    second = SigningKey.from_seeds(b"\x07" * 32, None)
    two_of_two = SecretariatKeys(threshold=2, keys=(SECRETARIAT.public(), second.public()))
    with pytest.raises(SignatureError, match="1 of the 2 trusted secretariat keys; 2 needed"):
        accept_roster(signed_roster(roster()), secretariat=two_of_two, current=None)


def test_lookups() -> None:
    ros = roster(revoked=(signing_key("AZ").keyid,))
    assert ros.member("KZ") == member("KZ")
    assert ros.member("KG") is None
    assert ros.is_revoked(signing_key("AZ").keyid)
    assert not ros.is_revoked(signing_key("KZ").keyid)
    assert ros.marking("TR", Band.SECRET) == "GİZLİ"
    assert ros.marking("KG", Band.SECRET) is None


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [
        ("member_id", "KZ", "member id"),
        ("tls_identity", "urn:intelshare:member:KZ", "TLS identity"),
        ("signing_key", member("KZ").signing_key, "signing key"),
    ],
)
def test_roster_refuses_duplicates(field: str, value: object, what: str) -> None:
    # SPEC §5.1: no two members with one id, TLS identity or key id.
    clash = member("TR").model_copy(update={field: value})
    with pytest.raises(ValueError, match=f"duplicate {what}"):
        Roster.model_validate(roster().model_dump() | {"members": (member("KZ"), clash)})


def _roster_json_with(marking_for_secret: str) -> bytes:
    doc = json.loads(roster().to_bytes())
    doc["members"][0]["markings"]["SECRET"] = marking_for_secret
    return json.dumps(doc).encode()


def test_roster_with_ambiguous_markings_is_malformed() -> None:
    # SPEC §5.1, §5.2: one member's markings MUST be one-to-one.
    with pytest.raises(MalformedError, match="used for both"):
        Roster.from_bytes(_roster_json_with("ÇOK GİZLİ"))  # TR's TOP SECRET marking


def test_roster_with_empty_marking_is_malformed() -> None:
    with pytest.raises(MalformedError, match="marking has 1 to 64"):
        Roster.from_bytes(_roster_json_with(" "))


def test_roster_round_trips() -> None:
    assert Roster.from_bytes(roster().to_bytes()) == roster()


def test_roster_version_must_be_positive() -> None:
    with pytest.raises(ValueError, match="version"):
        roster(version=0)


def test_roster_rollback_is_typed() -> None:
    with pytest.raises(RollbackError, match="not newer"):
        accept_roster(signed_roster(roster(version=1)), secretariat=SECRETARIAT_KEYS, current=roster(version=1))


def test_trusted_signer_is_a_known_member_with_an_unrevoked_key() -> None:
    # SPEC §12.8, §9.4.2 step 5, §10.1: the one place an unknown or revoked signer is refused.
    revoked = roster(revoked=(signing_key("KZ").keyid,))
    assert roster().trusted_signer("KZ") == roster().member("KZ")
    assert revoked.trusted_signer("KZ") is None
    assert revoked.member("KZ") is not None
    assert roster().trusted_signer("HU") is None
