"""Grant conditions, onward grants, revocation and retention as pure functions (SPEC §9.4.3, §9.4.4, §11.13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support import NOW, grant, make_origin, roster, signing_key

from protocol.consent import (
    ConsentGrant,
    ConsentRevocation,
    chain_retain_until,
    check_conditions,
    check_onward,
    verify_revocation,
)
from protocol.errors import LocalProtocolError, MalformedError, NoticeMismatchError, SignatureError
from protocol.retention import retention_deadline, retention_passed
from protocol.statements import PayloadType, Signed, sign

ORIGIN, _ = make_origin()


def parsed(signed: Signed) -> ConsentGrant:
    return ConsentGrant.from_bytes(signed.payload)


def g(grantor: str, holder: str, grantee: str, **kwargs: object) -> ConsentGrant:
    return parsed(grant(ORIGIN, grantor=grantor, holder=holder, grantee=grantee, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "condition",
    ["onward-to:UZ", "onward-to:TR-MIT", "retain-until:2026-12-01T00:00:00Z", "retain-until:2026-12-01T00:00:00.5Z"],
)
def test_conditions_in_the_vocabulary_parse(condition: str) -> None:
    # SPEC §9.4.4: the two forms; a timestamp spelled as §4.4.2 says.
    if condition.endswith(".5Z"):
        with pytest.raises(ValueError, match="timestamp"):
            g("KZ", "TR", "AZ", conditions=(condition,))
        return
    assert g("KZ", "TR", "AZ", conditions=(condition,)).conditions == (condition,)


@pytest.mark.parametrize(
    "condition", ["no onward transfer", "onward-to:uz", "embargo:2030", "retain-until:2026-12-01", "onward-to:"]
)
def test_conditions_outside_the_vocabulary_do_not_parse(condition: str) -> None:
    # SPEC §9.4.4: a grant with any other condition does not parse.
    with pytest.raises(ValueError, match=r"condition|onward-to|timestamp"):
        g("KZ", "TR", "AZ", conditions=(condition,))
    statement = g("KZ", "TR", "AZ").model_dump(mode="json") | {"conditions": [condition]}
    from protocol.encoding import canonical_json

    with pytest.raises(MalformedError):
        ConsentGrant.from_bytes(canonical_json(statement))


def test_onward_to_binds_every_later_grant() -> None:
    # SPEC §9.4.4 rule 2.
    first = g("KZ", "TR", "AZ", transferable=True, conditions=("onward-to:UZ", "onward-to:KG"))
    assert first.onward_to == frozenset({"UZ", "KG"})
    second = g("AZ", "AZ", "UZ", transferable=True, grant_id="0" * 31 + "2")
    third = g("UZ", "UZ", "TR", grant_id="0" * 31 + "3")
    assert check_conditions([first, second], NOW) is None
    broken = check_conditions([first, second, third], NOW)
    assert broken is not None
    assert "grant 3 names TR" in broken


def test_retain_until_ends_the_chain_and_the_copys_retention() -> None:
    # SPEC §9.4.4 rule 1, §11.13: the earliest retain-until of the chain.
    early = g("KZ", "TR", "AZ", transferable=True, conditions=("retain-until:2026-11-25T00:00:00Z",))
    late = g("AZ", "AZ", "UZ", conditions=("retain-until:2026-11-24T00:00:00Z", "retain-until:2026-11-30T00:00:00Z"))
    assert late.retain_until == datetime(2026, 11, 24, tzinfo=UTC)
    assert chain_retain_until([early, late]) == datetime(2026, 11, 24, tzinfo=UTC)
    assert chain_retain_until([g("KZ", "TR", "AZ")]) is None
    assert check_conditions([early], NOW) is None
    assert check_conditions([early], datetime(2026, 11, 25, tzinfo=UTC)) is not None  # the instant itself counts


def test_an_onward_grant_stays_within_the_scope_of_the_grant_it_rests_on() -> None:
    # SPEC §9.4.4: transferable, live, no longer-lived, to a grantee the conditions allow.
    parent = g("KZ", "TR", "AZ", transferable=True, expires_at=NOW + timedelta(days=10), conditions=("onward-to:UZ",))
    assert check_onward([parent], holder="AZ", grantee="UZ", expires_at=NOW + timedelta(days=10), now=NOW) == parent
    refusals = {
        "not transferable": ([g("KZ", "TR", "AZ")], "AZ", "UZ", 1, NOW),
        "outlasts": ([parent], "AZ", "UZ", 11, NOW),
        "expired": ([parent], "AZ", "UZ", 1, NOW + timedelta(days=10)),
        "condition": ([parent], "AZ", "KG", 1, NOW),
        "not its grantee": ([parent], "TR", "UZ", 1, NOW),
        "no chain": ([], "AZ", "UZ", 1, NOW),
        "originator": ([g("KZ", "TR", "AZ", transferable=True)], "AZ", "KZ", 1, NOW),
    }
    for name, (chain, holder, grantee, days, now) in refusals.items():
        with pytest.raises(LocalProtocolError):  # noqa: PT012 — name says which case did not raise
            check_onward(chain, holder=holder, grantee=grantee, expires_at=NOW + timedelta(days=days), now=now)
            pytest.fail(name)


def revocation(
    grant_id: str = "0" * 31 + "1", *, revoker: str = "KZ", signer: str | None = None, **c: object
) -> Signed:
    fields: dict[str, object] = {
        "revocation_id": "9" * 32,
        "grant_id": grant_id,
        "item_id": "item-1",
        "revoker": revoker,
        "reason": "source at risk",
        "issued_at": NOW,
    }
    fields.update(c)
    return sign(
        PayloadType.CONSENT_REVOCATION, ConsentRevocation.model_validate(fields), [signing_key(signer or revoker)]
    )


def test_verify_revocation_needs_the_grantor_and_the_grant() -> None:
    # SPEC §9.4.3: revoker MUST be the grantor, trusted, and have signed; bound to the grant and item.
    held = g("KZ", "TR", "AZ")
    assert verify_revocation(revocation(), roster=roster(), grant=held).reason == "source at risk"
    with pytest.raises(SignatureError, match="not the grantor"):
        verify_revocation(revocation(revoker="TR"), roster=roster(), grant=held)
    with pytest.raises(SignatureError):
        verify_revocation(revocation(signer="TR"), roster=roster(), grant=held)
    with pytest.raises(SignatureError, match="revoked member"):
        verify_revocation(revocation(), roster=roster(revoked=(signing_key("KZ").keyid,)), grant=held)
    with pytest.raises(NoticeMismatchError):
        verify_revocation(revocation("0" * 31 + "2"), roster=roster(), grant=held)
    with pytest.raises(NoticeMismatchError):
        verify_revocation(revocation(item_id="item-2"), roster=roster(), grant=held)


def test_retention_passes_at_its_deadline_and_ends_at_the_earliest_limit() -> None:
    # SPEC §11.13: label, chain condition, agreement maximum from arrival; the deadline counts.
    label_until = NOW + timedelta(days=100)
    assert retention_deadline(label_until) == label_until
    assert retention_deadline(label_until, held_since=NOW, max_retention=timedelta(days=30)) == NOW + timedelta(days=30)
    assert retention_deadline(label_until, condition=NOW + timedelta(days=7)) == NOW + timedelta(days=7)
    assert retention_deadline(label_until, held_since=NOW) == label_until  # no maximum given
    assert retention_passed(NOW, NOW)
    assert not retention_passed(NOW, NOW - timedelta(microseconds=1))
    with pytest.raises(LocalProtocolError):
        retention_passed(NOW, datetime(2026, 1, 1))  # a naive time is refused
