"""Batch keys (SPEC §8.2): one HPKE seal per recipient per batch, each envelope opens alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support import (
    NOW,
    WINDOW,
    Ctx,
    header_of,
    hpke_keys,
    label,
    make_origin,
    member,
    never_replayed,
    raw,
    report,
    resign_header,
    roster,
    signing_key,
    tls,
)

import protocol.envelope as envelope_mod
from protocol.encoding import sha256_hex
from protocol.envelope import (
    BatchKeys,
    Envelope,
    OriginAttestation,
    SealRequest,
    Suite,
    ToAttest,
    attest_many,
    batch_key_info,
    decrypt,
    seal_many,
)
from protocol.errors import OpenError
from protocol.keys import HpkeKeyPair
from protocol.policy import Reason, check_ingress, open_envelope

KZ = signing_key("KZ")
#: enc (32 bytes for X25519) and the sealed 32-byte batch key with its 16-byte tag.
SEALED_KEY = 32 + 32 + 16


def _burst(suite: Suite = Suite.X25519_AES256GCM) -> list[Envelope]:
    """Three envelopes to TR and one to AZ, sealed in one call as a node seals a burst."""
    both = label(releasable_to=("AZ", "TR"))
    attested = attest_many(
        [ToAttest("item-1", label(), report()), ToAttest("item-2", label(), raw()), ToAttest("item-3", both, report())],
        originator_key=KZ,
        now=NOW,
    )
    agreement = {"TR": ("KZ-TR", 1), "AZ": ("AZ-KZ", 1)}
    sends = [(0, "TR"), (1, "TR"), (2, "TR"), (2, "AZ")]
    return seal_many(
        [SealRequest(attested[i].plaintext, attested[i].origin, member(to), *agreement[to]) for i, to in sends],
        sender="KZ",
        sender_key=KZ,
        suite=suite,
        now=NOW,
    )


def _open(env: Envelope, keys: HpkeKeyPair, batch_keys: BatchKeys | None = None) -> None:
    receiver = header_of(env).recipient
    open_envelope(env, recipient_id=receiver, recipient_keys=keys, roster=roster(), batch_keys=batch_keys)


def test_one_sealed_batch_key_per_recipient() -> None:
    *to_tr, to_az = _burst()
    assert len({env.ciphertext[:SEALED_KEY] for env in to_tr}) == 1
    assert to_az.ciphertext[:SEALED_KEY] != to_tr[0].ciphertext[:SEALED_KEY]
    # Every envelope still opens alone, with no cache and no sibling.
    for env in (*to_tr, to_az):
        _open(env, hpke_keys(header_of(env).recipient))


@pytest.mark.parametrize("suite", list(Suite))
def test_every_suite_seals_a_batch(suite: Suite) -> None:
    envs = _burst(suite)
    keys = hpke_keys("TR")
    cache = BatchKeys(keys)
    for env in envs[:3]:
        _open(env, keys, cache)
    assert len(cache) == 1


def test_a_batch_key_is_opened_once_per_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    opens: list[bytes] = []
    real_open = envelope_mod._open_batch_key

    def counting_open(keys: HpkeKeyPair, suite: Suite, info: bytes, sealed: bytes) -> bytes:
        opens.append(sealed)
        return real_open(keys, suite, info, sealed)

    monkeypatch.setattr(envelope_mod, "_open_batch_key", counting_open)
    keys = hpke_keys("TR")
    cache = BatchKeys(keys)
    for env in _burst()[:3]:
        result = check_ingress(
            env,
            receiver="TR",
            receiver_keys=keys,
            peer_tls_identity=tls("KZ"),
            peer_fingerprint=None,
            ctx=Ctx().policy(),
            window=WINDOW,
            is_replay=never_replayed,
            batch_keys=cache,
        )
        assert result.decision.reason is Reason.ALLOWED, result.decision
    assert len(opens) == 1  # one HPKE open for the three envelopes of the batch
    assert len(cache) == 1


def test_a_cache_serves_only_its_own_key_pair() -> None:
    env = _burst()[0]
    keys = hpke_keys("TR")
    cache = BatchKeys(keys)
    _open(env, keys, cache)
    assert len(cache) == 1
    # AZ's keys with TR's warm cache: the cache is not consulted, and AZ's key does not open it.
    with pytest.raises(OpenError):
        decrypt(env, header_of(env), _attestation(env), hpke_keys("AZ"), cache)
    # An equal key pair that is not the cache's own object is not served from it either: it opens by HPKE.
    assert decrypt(env, header_of(env), _attestation(env), hpke_keys("TR"), cache)


def test_a_failed_open_is_not_remembered() -> None:
    env = _burst()[0]
    sealed = bytearray(env.ciphertext)
    sealed[40] ^= 0x01  # inside the sealed batch key
    bad = resign_header(replace(env, ciphertext=bytes(sealed)), "KZ", ciphertext_digest=sha256_hex(bytes(sealed)))
    keys = hpke_keys("TR")
    cache = BatchKeys(keys)
    with pytest.raises(OpenError):
        _open(bad, keys, cache)
    assert len(cache) == 0
    _open(env, keys, cache)
    assert len(cache) == 1


def test_a_sibling_s_sealed_part_does_not_open_under_this_header() -> None:
    # Same batch key, but the envelope key is derived from each header's own info (SPEC §8.3).
    first, second = _burst()[:2]
    moved = first.ciphertext[:SEALED_KEY] + second.ciphertext[SEALED_KEY:]
    bad = resign_header(replace(first, ciphertext=moved), "KZ", ciphertext_digest=sha256_hex(moved))
    keys = hpke_keys("TR")
    cache = BatchKeys(keys)
    _open(second, keys, cache)  # the shared batch key is already cached
    with pytest.raises(OpenError):
        _open(bad, keys, cache)


def test_a_batch_key_is_bound_to_sender_recipient_and_suite() -> None:
    infos = {
        batch_key_info(sender=s, recipient=r, suite=suite)
        for s, r in (("KZ", "TR"), ("TR", "KZ"), ("KZ", "AZ"))
        for suite in Suite
    }
    assert len(infos) == 3 * len(Suite)
    # A sealed key presented under another sender does not open (the info differs).
    env = _burst()[0]
    relabelled = resign_header(env, "AZ", sender="AZ")
    with pytest.raises(OpenError):
        decrypt(relabelled, header_of(relabelled), _attestation(relabelled), hpke_keys("TR"))


def test_a_batch_key_is_sealed_to_the_keys_each_request_names() -> None:
    # The same member id with other published keys (say, a roster update mid-burst) gets a batch of its own.
    origin, plaintext = make_origin()
    rotated = member("TR").model_copy(update={"hpke_keys": member("AZ").hpke_keys})
    first, second = seal_many(
        [SealRequest(plaintext, origin, member("TR"), "KZ-TR", 1), SealRequest(plaintext, origin, rotated, "KZ-TR", 1)],
        sender="KZ",
        sender_key=KZ,
        suite=Suite.X25519_AES256GCM,
        now=NOW,
    )
    assert first.ciphertext[:SEALED_KEY] != second.ciphertext[:SEALED_KEY]
    assert decrypt(first, header_of(first), _attestation(first), hpke_keys("TR"))
    assert decrypt(second, header_of(second), _attestation(second), hpke_keys("AZ"))


def test_cache_bound_is_respected() -> None:
    keys = hpke_keys("TR")
    cache = BatchKeys(keys, max_entries=1)
    origin, plaintext = make_origin()
    for _ in range(3):
        (env,) = seal_many(
            [SealRequest(plaintext, origin, member("TR"), "KZ-TR", 1)],
            sender="KZ",
            sender_key=KZ,
            suite=Suite.X25519_AES256GCM,
            now=NOW,
        )
        _open(env, keys, cache)
        assert len(cache) == 1  # forgets everything when full


def test_cache_needs_a_positive_bound() -> None:
    with pytest.raises(ValueError, match="positive"):
        BatchKeys(hpke_keys("TR"), max_entries=0)


def _attestation(env: Envelope) -> OriginAttestation:
    return OriginAttestation.from_bytes(env.origin.payload)
