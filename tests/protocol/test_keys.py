"""Member keys: signing identities (classic and hybrid) and HPKE key pairs (SPEC §5.4)."""

from __future__ import annotations

import json

import pytest
from support import hpke_keys, signing_key

from protocol.encoding import b64encode
from protocol.errors import ConfigurationError
from protocol.keys import HpkeKeyPair, HpkePublicKeys, KemName, PublicSigningKey, SignatureAlg, SigningKey, keyid_of

MESSAGE = b"message"
HYBRID = SigningKey.from_seeds(b"\x01" * 32, b"\x02" * 32)


def _sig_map(key: SigningKey, message: bytes = MESSAGE) -> dict[tuple[str, str], bytes]:
    return {(keyid, alg): sig for keyid, alg, sig in key.sign(message)}


def test_classic_identity_signs_and_verifies() -> None:
    key = signing_key("KZ")
    public = key.public()
    assert public.ml_dsa_65 is None
    assert key.keyid == public.keyid == keyid_of(public.ed25519)
    assert public.verify(MESSAGE, _sig_map(key))
    assert not public.verify(b"other", _sig_map(key))


def test_hybrid_identity_needs_both_signatures() -> None:
    public = HYBRID.public()
    sigs = _sig_map(HYBRID)
    assert {alg for _, alg in sigs} == {SignatureAlg.ED25519, SignatureAlg.ML_DSA_65}
    assert public.verify(MESSAGE, sigs)
    classic_only = {k: v for k, v in sigs.items() if k[1] == SignatureAlg.ED25519}
    assert not public.verify(MESSAGE, classic_only)


def test_hybrid_identity_refuses_forged_pq_signature() -> None:
    sigs = _sig_map(HYBRID)
    pq = next(k for k in sigs if k[1] == SignatureAlg.ML_DSA_65)
    sigs[pq] = bytes(len(sigs[pq]))
    assert not HYBRID.public().verify(MESSAGE, sigs)


def test_hybrid_identity_refuses_malformed_pq_key() -> None:
    public = HYBRID.public().model_copy(update={"ml_dsa_65": b"short"})
    assert not public.verify(MESSAGE, _sig_map(HYBRID) | {(keyid_of(b"short"), SignatureAlg.ML_DSA_65): b"x"})


def test_malformed_ed25519_signature_is_false_not_an_exception() -> None:
    public = signing_key("KZ").public()
    assert not public.verify(MESSAGE, {(public.keyid, SignatureAlg.ED25519): b"too short"})
    # Bypasses the model's length check to reach the primitive with bytes it refuses.
    bad_key = PublicSigningKey.model_construct(ed25519=b"\x00" * 5)
    assert not bad_key.verify(MESSAGE, {(bad_key.keyid, SignatureAlg.ED25519): b"\x00" * 64})


@pytest.mark.parametrize("hybrid", [False, True])
def test_generated_signing_key_round_trips_through_json(hybrid: bool) -> None:
    key = SigningKey.generate(hybrid=hybrid)
    again = SigningKey.from_json(key.to_json())
    assert again.public() == key.public()
    assert again.public().verify(MESSAGE, _sig_map(key))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        "[]",
        "1",
        '"x"',
        '{"ed25519_seed": 5}',
        '{"ed25519_seed": "***"}',
        json.dumps({"ed25519_seed": b64encode(b"short")}),
        json.dumps({"ed25519_seed": b64encode(b"\x01" * 32), "ml_dsa_65_seed": b64encode(b"short")}),
    ],
)
def test_bad_signing_key_file_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError):
        SigningKey.from_json(text)


def test_hpke_key_pair_round_trips_through_json() -> None:
    pair = HpkeKeyPair.generate()
    assert HpkeKeyPair.from_json(pair.to_json()).public() == pair.public()
    assert hpke_keys("TR").public() == hpke_keys("TR").public()  # deterministic test keys


@pytest.mark.parametrize(
    "text",
    ["nope", "{}", "[]", '"x"', '{"x25519": 5, "mlkem768_seed": 5, "mlkem_x25519": 5}', '{"x25519": "AA=="}'],
)
def test_bad_hpke_key_file_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError):
        HpkeKeyPair.from_json(text)


def test_for_kem_gives_each_published_key() -> None:
    public = hpke_keys("TR").public()
    assert public.for_kem(KemName.X25519) is not None
    assert public.for_kem(KemName.MLKEM768_X25519) is not None


def test_for_kem_without_hybrid_key() -> None:
    public = HpkePublicKeys(x25519=hpke_keys("TR").public().x25519)
    with pytest.raises(ConfigurationError, match="no mlkem768-x25519 key"):
        public.for_kem(KemName.MLKEM768_X25519)


def test_for_kem_with_truncated_hybrid_key() -> None:
    public = hpke_keys("TR").public()
    short = public.model_copy(update={"mlkem768_x25519": public.mlkem768_x25519[:-1]})  # type: ignore[index]
    with pytest.raises(ConfigurationError):
        short.for_kem(KemName.MLKEM768_X25519)


def test_for_kem_with_invalid_x25519_key() -> None:
    with pytest.raises(ConfigurationError, match="invalid"):
        HpkePublicKeys.model_construct(x25519=b"\x00" * 31).for_kem(KemName.X25519)


def test_for_kem_with_invalid_mlkem_key() -> None:
    # Right length, but its coefficients are not below q: FIPS 203's modulus check refuses it.
    public = hpke_keys("TR").public()
    assert public.mlkem768_x25519 is not None
    bad = HpkePublicKeys(x25519=public.x25519, mlkem768_x25519=b"\xff" * 1184 + public.mlkem768_x25519[1184:])
    with pytest.raises(ConfigurationError, match="invalid"):
        bad.for_kem(KemName.MLKEM768_X25519)
