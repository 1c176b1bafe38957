"""Check the implementation against the committed test vectors (SPEC §13).

Reads ``tests/vectors/*.json`` and regenerates nothing: the files are the reference a
second implementation checks itself against, so this implementation must agree with them
byte for byte (PAE, HPKE info, keys, Ed25519 signatures, batch signatures, canonical
JSON) and decision for decision. Deliberately independent of ``tests/support.py``: every
key comes from the seeds in the files.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocol import envelope as envelope_mod
from protocol.agreement import (
    Agreement,
    AgreementBook,
    AgreementProposal,
    AgreementRejection,
    countersign,
    verify_proposal,
    verify_rejection,
)
from protocol.bundle import BundleManifest
from protocol.consent import ConsentDenial, ConsentGrant, ConsentRequest, ConsentRevocation, verify_revocation
from protocol.encoding import canonical_json, hpke_info, pae
from protocol.envelope import Envelope, EnvelopeHeader, OriginAttestation, batch_key_info, seal_info
from protocol.errors import IntelshareError, OpenError, SignatureError
from protocol.item import item_from_plaintext
from protocol.keys import (
    BATCH_ROOT_TYPE,
    HpkeKeyPair,
    PublicSigningKey,
    SigningKey,
    VerifiedRoots,
    batch_root_message,
    encode_batch_signature,
    keyid_of,
)
from protocol.merkle import inclusion_proofs, leaf_hash, root_from_inclusion_proof, tree_hash
from protocol.notices import Correction, NoticeAck, Recall
from protocol.policy import (
    INGRESS_ONLY,
    RULES,
    Decision,
    PolicyContext,
    Reason,
    TimeWindow,
    Transfer,
    check_egress,
    check_ingress,
    open_envelope,
)
from protocol.receipt import Receipt
from protocol.roster import Roster, SecretariatKeys, accept_roster
from protocol.statements import PayloadType, Signed, sign_many, verify

VECTORS = Path(__file__).resolve().parent / "vectors"
FILES = (
    "pae.json",
    "hpke_info.json",
    "keys.json",
    "signatures.json",
    "envelopes.json",
    "decisions.json",
    "agreements_rosters.json",
    "batch-signatures.json",
    "encoding.json",
    "xwing.json",
)

MODELS: dict[PayloadType, type[Any]] = {
    PayloadType.ROSTER: Roster,
    PayloadType.AGREEMENT: Agreement,
    PayloadType.AGREEMENT_PROPOSAL: AgreementProposal,
    PayloadType.AGREEMENT_REJECTION: AgreementRejection,
    PayloadType.ORIGIN: OriginAttestation,
    PayloadType.HEADER: EnvelopeHeader,
    PayloadType.RECEIPT: Receipt,
    PayloadType.CONSENT_REQUEST: ConsentRequest,
    PayloadType.CONSENT_GRANT: ConsentGrant,
    PayloadType.CONSENT_DENIAL: ConsentDenial,
    PayloadType.CONSENT_REVOCATION: ConsentRevocation,
    PayloadType.RECALL: Recall,
    PayloadType.CORRECTION: Correction,
    PayloadType.NOTICE_ACK: NoticeAck,
    PayloadType.AUDIT_BUNDLE: BundleManifest,
}


def _load(name: str) -> dict[str, Any]:
    path = VECTORS / name
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if text.strip() else {}


def _cases(name: str, *keys: str) -> list[Any]:
    """The vectors under ``keys`` of file ``name`` ([] if absent: test_files_present fails then)."""
    node: Any = _load(name)
    for key in keys:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, list) else []


def _ids(cases: list[Any]) -> list[str]:
    return [str(c.get("name", i)) for i, c in enumerate(cases)]


def _signed(doc: Any) -> Signed:
    """A Signed statement from its JSON object, through the wire parser (base64url bytes)."""
    return Signed.from_bytes(json.dumps(doc).encode("utf-8"))


def _envelope(doc: dict[str, Any]) -> Envelope:
    return Envelope(
        header=_signed(doc["header"]),
        origin=_signed(doc["origin"]),
        consents=tuple(_signed(c) for c in doc["consents"]),
        ciphertext=bytes.fromhex(doc["ciphertext_hex"]),
    )


def _hpke(seeds: dict[str, str]) -> HpkeKeyPair:
    return HpkeKeyPair.from_seeds(
        bytes.fromhex(seeds["x25519_seed_hex"]),
        bytes.fromhex(seeds["xwing_seed_hex"]),
    )


def _secretariat(doc: dict[str, Any]) -> SecretariatKeys:
    """The one secretariat key of the file; one signature suffices (SPEC §5.3)."""
    return SecretariatKeys(threshold=1, keys=(PublicSigningKey(ed25519=bytes.fromhex(doc["secretariat_public_hex"])),))


def _outcome(fn: Callable[[], object]) -> str:
    try:
        fn()
    except IntelshareError as exc:
        return type(exc).__name__
    return "accepted"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- an independent X-Wing and RFC 9180 key schedule, to pin down the hybrid KEM (SPEC §5.4.2) ----

XWING_KEM_ID = 0x647A
XWING_LABEL = b"\\.//^\\"


def xwing_decapsulate(seed: bytes, enc: bytes) -> bytes:
    """X-Wing Decap from the 32-byte seed, with primitives only (SPEC §5.4.2)."""
    expanded = hashlib.shake_256(seed).digest(96)
    dk_m = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    sk_x = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
    ct_m, ct_x = enc[:1088], enc[1088:]
    ss_m = dk_m.decapsulate(ct_m)
    ss_x = sk_x.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    pk_x = sk_x.public_key().public_bytes_raw()
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out, counter = out + block, counter + 1
    return out[:length]


def hpke_base_key_schedule(suite_id: bytes, shared_secret: bytes, info: bytes, nk: int) -> tuple[bytes, bytes]:
    """RFC 9180 §5.1 KeySchedule for mode_base with HKDF-SHA256: the AEAD key and base nonce."""

    def extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return _hkdf_extract(salt, b"HPKE-v1" + suite_id + label + ikm)

    def expand(prk: bytes, label: bytes, context: bytes, length: int) -> bytes:
        return _hkdf_expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + context, length)

    context = b"\x00" + extract(b"", b"psk_id_hash", b"") + extract(b"", b"info_hash", info)
    secret = extract(shared_secret, b"secret", b"")
    return expand(secret, b"key", context, nk), expand(secret, b"base_nonce", context, 12)


# --- presence -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_files_present(name: str) -> None:
    path = VECTORS / name
    assert path.is_file(), f"missing vector file {path}"
    doc = _load(name)
    assert doc, f"empty vector file {path}"
    lists = [v for v in doc.values() if isinstance(v, list) and v]
    lists += [v for d in doc.values() if isinstance(d, dict) for v in d.values() if isinstance(v, list) and v]
    assert lists, f"{path} holds no vectors"


# --- pae.json -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("pae.json", "vectors"), ids=_ids(_cases("pae.json", "vectors")))
def test_pae(case: dict[str, Any]) -> None:
    assert pae(case["payload_type"], bytes.fromhex(case["payload_hex"])).hex() == case["pae_hex"]


def test_pae_covers_every_payload_type() -> None:
    types = {c["payload_type"] for c in _cases("pae.json", "vectors")}
    assert {t.value for t in PayloadType} <= types


# --- hpke_info.json -----------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("hpke_info.json", "generic"), ids=_ids(_cases("hpke_info.json", "generic")))
def test_hpke_info_generic(case: dict[str, Any]) -> None:
    fields = [bytes.fromhex(f) for f in case["fields_hex"]]
    assert hpke_info(case["label"], fields).hex() == case["info_hex"]


@pytest.mark.parametrize("case", _cases("hpke_info.json", "headers"), ids=_ids(_cases("hpke_info.json", "headers")))
def test_hpke_info_header(case: dict[str, Any]) -> None:
    header = EnvelopeHeader.from_bytes(canonical_json(case["header"]))
    assert seal_info(header).hex() == case["info_hex"]
    # The documented field order reproduces the same bytes from the JSON alone.
    order = _load("hpke_info.json")["info_field_order"]
    fields = [str(case["header"][name]).encode("utf-8") for name in order]
    assert hpke_info("intelshare/v1 seal", fields).hex() == case["info_hex"]


# --- keys.json ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", _cases("keys.json", "members"), ids=[c["member_id"] for c in _cases("keys.json", "members")]
)
def test_member_keys(case: dict[str, Any]) -> None:
    signing = SigningKey.from_seeds(bytes.fromhex(case["ed25519_seed_hex"]), None).public()
    assert signing.ed25519.hex() == case["ed25519_public_hex"]
    assert signing.keyid == case["keyid"] == keyid_of(bytes.fromhex(case["ed25519_public_hex"]))
    assert json.loads(signing.to_bytes()) == case["public_signing_key_json"]
    hpke = _hpke(case).public()
    assert hpke.x25519.hex() == case["x25519_public_hex"]
    assert hpke.mlkem768_x25519 is not None
    assert hpke.mlkem768_x25519.hex() == case["mlkem768_x25519_public_hex"]
    assert len(hpke.mlkem768_x25519) == 1184 + 32
    # X-Wing key generation (SPEC §5.4.2): SHAKE256(seed, 96) = ML-KEM-768 seed d||z, X25519 key.
    expanded = hashlib.shake_256(bytes.fromhex(case["xwing_seed_hex"])).digest(96)
    assert expanded.hex() == case["xwing_expanded_hex"]
    mlkem_public = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]).public_key().public_bytes_raw()
    x25519_public = x25519.X25519PrivateKey.from_private_bytes(expanded[64:]).public_key().public_bytes_raw()
    assert hpke.mlkem768_x25519 == mlkem_public + x25519_public
    assert json.loads(hpke.to_bytes()) == case["hpke_public_keys_json"]


def test_secretariat_and_hybrid_keys() -> None:
    doc = _load("keys.json")
    sec = doc["secretariat"]
    pub = SigningKey.from_seeds(bytes.fromhex(sec["ed25519_seed_hex"]), None).public()
    assert (pub.ed25519.hex(), pub.keyid) == (sec["ed25519_public_hex"], sec["keyid"])
    hyb = doc["hybrid"]
    pub = SigningKey.from_seeds(
        bytes.fromhex(hyb["ed25519_seed_hex"]), bytes.fromhex(hyb["ml_dsa_65_seed_hex"])
    ).public()
    assert pub.ml_dsa_65 is not None
    assert pub.ed25519.hex() == hyb["ed25519_public_hex"]
    assert pub.ml_dsa_65.hex() == hyb["ml_dsa_65_public_hex"]
    assert pub.keyid == hyb["keyid"]
    assert keyid_of(pub.ml_dsa_65) == hyb["ml_dsa_65_keyid"]
    assert json.loads(pub.to_bytes()) == hyb["public_signing_key_json"]


# --- signatures.json ----------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("signatures.json", "vectors"), ids=_ids(_cases("signatures.json", "vectors")))
def test_ed25519_signature(case: dict[str, Any]) -> None:
    ptype = PayloadType(case["payload_type"])
    payload = bytes.fromhex(case["payload_hex"])
    key = SigningKey.from_seeds(bytes.fromhex(case["ed25519_seed_hex"]), None)
    ((keyid, alg, sig),) = key.sign(pae(ptype.value, payload))
    assert (keyid, alg) == (case["keyid"], "ed25519")
    assert sig.hex() == case["signature_hex"]
    signed = _signed(case["signed"])
    assert signed.payload == payload
    assert json.loads(signed.to_bytes())["payload"] == case["payload_base64url"]
    assert signed.digest == case["digest"] == hashlib.sha256(payload).hexdigest()
    assert [(s.keyid, s.alg, s.sig.hex()) for s in signed.signatures] == [(keyid, alg, case["signature_hex"])]
    verify(signed, ptype, [key.public()])
    # Canonical JSON: parsing the payload and serialising it again gives the signed bytes.
    assert MODELS[ptype].from_bytes(payload).to_bytes() == payload


def test_signatures_cover_every_payload_type() -> None:
    assert {c["payload_type"] for c in _cases("signatures.json", "vectors")} == {t.value for t in PayloadType}


@pytest.mark.parametrize(
    "case",
    _cases("signatures.json", "hybrid", "cases"),
    ids=_ids(_cases("signatures.json", "hybrid", "cases")),
)
def test_hybrid_signature(case: dict[str, Any]) -> None:
    doc = _load("signatures.json")["hybrid"]
    public = PublicSigningKey.from_bytes(canonical_json(doc["public_signing_key"]))
    assert public.ml_dsa_65 is not None
    assert public.ml_dsa_65.hex() == doc["ml_dsa_65_public_hex"]
    outcome = _outcome(lambda: verify(_signed(case["signed"]), PayloadType(case["expected_payload_type"]), [public]))
    assert outcome == ("accepted" if case["valid"] else "SignatureError")


# --- envelopes.json -----------------------------------------------------------------------


def _envelope_roster() -> Roster:
    doc = _load("envelopes.json")
    return accept_roster(_signed(doc["roster"]), secretariat=_secretariat(doc), current=None)


@pytest.mark.parametrize("case", _cases("envelopes.json", "positive"), ids=_ids(_cases("envelopes.json", "positive")))
def test_envelope_opens(case: dict[str, Any]) -> None:
    doc = _load("envelopes.json")
    env = _envelope(case["envelope"])
    header = EnvelopeHeader.from_bytes(env.header.payload)
    assert header.suite.value == case["suite"]
    assert seal_info(header).hex() == case["info_hex"]
    key_info = batch_key_info(sender=header.sender, recipient=header.recipient, suite=header.suite)
    assert key_info.hex() == case["batch_key_info_hex"]
    plaintext = bytes.fromhex(case["plaintext_hex"])
    # enc, the sealed 32-byte batch key and its tag, then the plaintext's AEAD ciphertext and tag.
    assert len(env.ciphertext) == case["enc_length"] + 32 + 16 + len(plaintext) + 16
    opened = open_envelope(
        env,
        recipient_id=case["recipient"],
        recipient_keys=_hpke(doc["members"][case["recipient"]]),
        roster=_envelope_roster(),
    )
    assert opened.item.to_bytes() == plaintext
    assert opened.attestation.plaintext_digest == case["plaintext_digest"] == hashlib.sha256(plaintext).hexdigest()


@pytest.mark.parametrize("case", _cases("envelopes.json", "negative"), ids=_ids(_cases("envelopes.json", "negative")))
def test_envelope_does_not_open(case: dict[str, Any]) -> None:
    # SPEC §13, §8.6: the negative envelope vectors MUST NOT open.
    doc = _load("envelopes.json")
    with pytest.raises(OpenError) as info:
        open_envelope(
            _envelope(case["envelope"]),
            recipient_id=case["recipient"],
            recipient_keys=_hpke(doc["members"][case["recipient"]]),
            roster=_envelope_roster(),
        )
    assert str(info.value) == "envelope could not be opened"


def test_envelopes_cover_every_suite() -> None:
    suites = {c["suite"] for c in _cases("envelopes.json", "positive")}
    assert suites == {s.value for s in envelope_mod.Suite}


# --- decisions.json -----------------------------------------------------------------------


def _decide(doc: dict[str, Any], sc: dict[str, Any]) -> Decision:
    roster = accept_roster(_signed(doc["rosters"][sc["roster"]]), secretariat=_secretariat(doc), current=None)
    # The roster the node held when it accepted the agreements, which the scenario names (SPEC §6.2).
    held_under = accept_roster(
        _signed(doc["rosters"][sc["agreements_roster"]]), secretariat=_secretariat(doc), current=None
    )
    book = AgreementBook()
    for name in sc["agreements"]:
        book.accept(_signed(doc["agreements"][name]), held_under)
    recalled = {(item_id, version) for item_id, version in sc["recalled"]}
    revoked = set(sc["revoked_grants"])
    ctx = PolicyContext(
        roster=roster,
        agreements=book,
        now=_at(sc["now"]),
        is_recalled=lambda item_id, version: (item_id, version) in recalled,
        is_grant_revoked=lambda grant_id: grant_id in revoked,
    )
    if sc["kind"] == "egress":
        t = sc["transfer"]
        origin = _signed(t["origin"])
        return check_egress(
            Transfer(
                sender=t["sender"],
                recipient=t["recipient"],
                attestation=OriginAttestation.from_bytes(origin.payload),
                origin_digest=origin.digest,
                consents=tuple(_signed(c) for c in t["consents"]),
            ),
            ctx,
        )
    assert sc["kind"] == "ingress"
    seen = set(sc["seen_nonces"])
    held = {(item_id, version): digest for item_id, version, digest in sc["held_origins"]}
    window = sc["window"]
    return check_ingress(
        _envelope(sc["envelope"]),
        receiver=sc["receiver"],
        receiver_keys=_hpke(doc["members"][sc["receiver"]]),
        peer_tls_identity=sc["peer_tls_identity"],
        peer_fingerprint=sc["peer_fingerprint"],
        ctx=ctx,
        window=TimeWindow(
            max_age=timedelta(seconds=window["max_age_seconds"]),
            max_future_skew=timedelta(seconds=window["max_future_skew_seconds"]),
        ),
        is_replay=lambda header, digest: header.nonce in seen,
        held_origin=lambda item_id, version: held.get((item_id, version)),
    ).decision


@pytest.mark.parametrize("sc", _cases("decisions.json", "scenarios"), ids=_ids(_cases("decisions.json", "scenarios")))
def test_decision(sc: dict[str, Any]) -> None:
    # SPEC §9.1, §13: the receiver re-checks everything; every scenario gives its reason.
    decision = _decide(_load("decisions.json"), sc)
    expected = sc["expected"]
    assert (decision.allowed, decision.reason.value, decision.rule) == (
        expected["allowed"],
        expected["reason"],
        expected["rule"],
    ), decision.detail


def test_revoked_sender_scenario_holds_agreements_from_before_the_revocation() -> None:
    # SPEC §6.2 rule 2a, §9.2.4: the scenario's agreements could not be accepted under the roster
    # that revokes KZ's key; the vector says they were accepted under the roster held before it.
    doc = _load("decisions.json")
    (sc,) = [sc for sc in doc["scenarios"] if sc["expected"]["reason"] == "KEY_REVOKED"]
    assert (sc["roster"], sc["agreements_roster"]) == ("kz-key-revoked", "default")
    revoking = accept_roster(_signed(doc["rosters"][sc["roster"]]), secretariat=_secretariat(doc), current=None)
    kz_signed = [name for name in sc["agreements"] if "KZ" in name]
    assert kz_signed
    for name in kz_signed:
        with pytest.raises(SignatureError):
            AgreementBook().accept(_signed(doc["agreements"][name]), revoking)


def test_decisions_cover_every_reason() -> None:
    doc = _load("decisions.json")
    covered = {sc["expected"]["reason"] for sc in doc.get("scenarios", [])}
    unreachable = set(doc.get("unreachable", {}))
    assert covered.isdisjoint(unreachable)
    assert covered | unreachable == {r.value for r in Reason}
    assert set(RULES) == set(Reason)
    for sc in doc.get("scenarios", []):
        assert sc["expected"]["rule"] == RULES[Reason(sc["expected"]["reason"])]
    kinds = {sc["kind"] for sc in doc.get("scenarios", [])}
    assert kinds == {"egress", "ingress"}
    # SPEC §9.5: egress never gives a reason only ingress gives.
    egress = {Reason(sc["expected"]["reason"]) for sc in doc.get("scenarios", []) if sc["kind"] == "egress"}
    assert egress.isdisjoint(INGRESS_ONLY)


@pytest.mark.parametrize(
    "case", _cases("decisions.json", "revocations"), ids=_ids(_cases("decisions.json", "revocations"))
)
def test_revocation(case: dict[str, Any]) -> None:
    # SPEC §9.4.3: only the grant's grantor, trusted, revokes it, and only that grant.
    doc = _load("decisions.json")
    roster = Roster.from_bytes(_signed(doc["rosters"][case["roster"]]).payload)
    grant = ConsentGrant.from_bytes(_signed(case["grant"]).payload)
    outcome = _outcome(lambda: verify_revocation(_signed(case["revocation"]), roster=roster, grant=grant))
    assert outcome == case["expected"]


# --- agreements_rosters.json --------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    _cases("agreements_rosters.json", "roster_cases"),
    ids=_ids(_cases("agreements_rosters.json", "roster_cases")),
)
def test_roster_update(case: dict[str, Any]) -> None:
    doc = _load("agreements_rosters.json")
    current = None if case["current"] is None else Roster.from_bytes(_signed(case["current"]).payload)
    outcome = _outcome(lambda: accept_roster(_signed(case["update"]), secretariat=_secretariat(doc), current=current))
    assert outcome == case["expected"]


@pytest.mark.parametrize(
    "case",
    _cases("agreements_rosters.json", "agreement_cases"),
    ids=_ids(_cases("agreements_rosters.json", "agreement_cases")),
)
def test_agreement_steps(case: dict[str, Any]) -> None:
    doc = _load("agreements_rosters.json")
    roster = accept_roster(_signed(doc["rosters"][case["roster"]]), secretariat=_secretariat(doc), current=None)
    book = AgreementBook()
    now = _at(case["now"])
    for number, step in enumerate(case["steps"], start=1):
        signed = _signed(step["statement"])

        def accept(signed: Signed = signed) -> object:
            return book.accept(signed, roster)

        assert _outcome(accept) == step["expected"], f"step {number}"
        parties = Agreement.from_bytes(signed.payload).parties
        held = book.get(*parties)
        assert (None if held is None else held.version) == step["held_version"], f"step {number}"
        assert book.in_force(*parties, now) is step["in_force"], f"step {number}"


@pytest.mark.parametrize(
    "case", _cases("agreements_rosters.json", "terms"), ids=_ids(_cases("agreements_rosters.json", "terms"))
)
def test_direction_terms(case: dict[str, Any]) -> None:
    agreement = Agreement.from_bytes(canonical_json(case["agreement"]))
    terms = agreement.terms(case["sender"], case["recipient"])
    expected = case["expected"]
    assert terms.ceiling.name == expected["ceiling"]
    assert terms.raw_data_allowed is expected["raw_data_allowed"]
    assert terms.template_required is expected["template_required"]
    assert terms.reshare_rule.value == expected["reshare_rule"]
    assert terms.max_retention.days == expected["max_retention_days"]


@pytest.mark.parametrize(
    "case",
    _cases("agreements_rosters.json", "invalid_agreements"),
    ids=_ids(_cases("agreements_rosters.json", "invalid_agreements")),
)
def test_invalid_agreement(case: dict[str, Any]) -> None:
    outcome = _outcome(lambda: Agreement.from_bytes(canonical_json(case["payload_json"])))
    assert outcome == case["expected"]


@pytest.mark.parametrize(
    "case",
    _cases("agreements_rosters.json", "amendment_cases"),
    ids=_ids(_cases("agreements_rosters.json", "amendment_cases")),
)
def test_amendment(case: dict[str, Any]) -> None:
    # SPEC §6.4: a proposal verified by the counterparty, and its countersignature, byte for byte.
    doc = _load("agreements_rosters.json")
    roster = accept_roster(_signed(doc["rosters"][case["roster"]]), secretariat=_secretariat(doc), current=None)
    held = None if case["held"] is None else _signed(case["held"])
    held_agreement = None if held is None else Agreement.from_bytes(held.payload)
    proposal = _signed(case["proposal"])
    verifier = case["verifier"]
    outcome = _outcome(lambda: verify_proposal(proposal, roster=roster, counterparty=verifier, held=held_agreement))
    assert outcome == case["expected"]
    if outcome != "accepted":
        return
    parsed = verify_proposal(proposal, roster=roster, counterparty=verifier, held=held_agreement)
    key = SigningKey.from_seeds(bytes.fromhex(doc_seed(verifier)), None)
    countersigned = countersign(parsed, key=key, me=verifier, roster=roster, held=held_agreement)
    assert countersigned == _signed(case["countersigned"])
    for side in parsed.proposed.parties:
        book = AgreementBook()
        if held is not None:
            book.accept(held, roster)
        book.accept(countersigned, roster)
        assert book.in_force(side, parsed.proposed.other(side), _at(case["now"]))


def doc_seed(member: str) -> str:
    """A member's Ed25519 seed, from keys.json (SPEC §13)."""
    (entry,) = [m for m in _load("keys.json")["members"] if m["member_id"] == member]
    return str(entry["ed25519_seed_hex"])


@pytest.mark.parametrize(
    "case",
    _cases("agreements_rosters.json", "rejection_cases"),
    ids=_ids(_cases("agreements_rosters.json", "rejection_cases")),
)
def test_agreement_rejection(case: dict[str, Any]) -> None:
    # SPEC §6.4: only the counterparty rejects, and only the proposal it names.
    doc = _load("agreements_rosters.json")
    roster = accept_roster(_signed(doc["rosters"][case["roster"]]), secretariat=_secretariat(doc), current=None)
    proposal = AgreementProposal.from_bytes(_signed(case["proposal"]).payload)
    outcome = _outcome(lambda: verify_rejection(_signed(case["rejection"]), roster=roster, proposal=proposal))
    assert outcome == case["expected"]


# --- batch-signatures.json ----------------------------------------------------------------


def _batch_key() -> SigningKey:
    return SigningKey.from_seeds(bytes.fromhex(_load("batch-signatures.json")["ed25519_seed_hex"]), None)


def test_batch_tree_root_and_root_signature() -> None:
    doc = _load("batch-signatures.json")
    assert doc["batch_root_type"] == BATCH_ROOT_TYPE
    key = _batch_key()
    assert (key.public().ed25519.hex(), key.keyid) == (doc["ed25519_public_hex"], doc["keyid"])
    statements = doc["statements"]
    assert len(statements) == doc["tree_size"]
    assert len({s["payload_type"] for s in statements}) > 1  # a batch may mix payload types
    leaves = [leaf_hash(pae(s["payload_type"], bytes.fromhex(s["payload_hex"]))) for s in statements]
    assert [leaf.hex() for leaf in leaves] == [s["leaf_hash_hex"] for s in statements]
    root, proofs = inclusion_proofs(leaves)
    assert root.hex() == tree_hash(leaves).hex() == doc["root_hex"]
    assert [[p.hex() for p in proof] for proof in proofs] == [s["proof_hex"] for s in statements]
    message = batch_root_message(doc["tree_size"], root)
    assert message.hex() == doc["batch_root_message_hex"]
    assert message == pae(BATCH_ROOT_TYPE, doc["tree_size"].to_bytes(4, "big") + root)
    ((keyid, alg, root_signature),) = key.sign(message)
    assert (keyid, alg, root_signature.hex()) == (doc["keyid"], "ed25519", doc["root_signature_hex"])


def test_batch_signed_again_gives_the_same_bytes() -> None:
    doc = _load("batch-signatures.json")
    statements = doc["statements"]
    models = [
        (
            PayloadType(s["payload_type"]),
            MODELS[PayloadType(s["payload_type"])].from_bytes(bytes.fromhex(s["payload_hex"])),
        )
        for s in statements
    ]
    again = sign_many(models, [_batch_key()])
    assert [json.loads(s.to_bytes()) for s in again] == [s["signed"] for s in statements]


@pytest.mark.parametrize(
    "case", _cases("batch-signatures.json", "statements"), ids=_ids(_cases("batch-signatures.json", "statements"))
)
def test_batch_statement(case: dict[str, Any]) -> None:
    doc = _load("batch-signatures.json")
    ptype = PayloadType(case["payload_type"])
    payload = bytes.fromhex(case["payload_hex"])
    root_signature = bytes.fromhex(doc["root_signature_hex"])
    proof = [bytes.fromhex(p) for p in case["proof_hex"]]
    expected = encode_batch_signature(doc["tree_size"], case["index"], proof, root_signature)
    assert expected.hex() == case["signature_hex"]
    leaf = leaf_hash(pae(ptype.value, payload))
    assert leaf.hex() == case["leaf_hash_hex"]
    assert root_from_inclusion_proof(leaf, case["index"], doc["tree_size"], proof) == bytes.fromhex(doc["root_hex"])
    signed = _signed(case["signed"])
    assert signed.payload == payload
    assert [(s.keyid, s.alg, s.sig.hex()) for s in signed.signatures] == [
        (doc["keyid"], "ed25519-batch", case["signature_hex"])
    ]
    public = _batch_key().public()
    verify(signed, ptype, [public])
    verify(signed, ptype, [public], VerifiedRoots())


@pytest.mark.parametrize(
    "case", _cases("batch-signatures.json", "cases"), ids=_ids(_cases("batch-signatures.json", "cases"))
)
def test_batch_case(case: dict[str, Any]) -> None:
    public = _batch_key().public()
    signed = _signed(case["signed"])
    ptype = PayloadType(case["expected_payload_type"])
    roots: VerifiedRoots | None
    for roots in (None, VerifiedRoots()):

        def check(roots: VerifiedRoots | None = roots) -> None:
            verify(signed, ptype, [public], roots)

        assert _outcome(check) == ("accepted" if case["valid"] else "SignatureError")


def test_batch_cases_cover_both_outcomes() -> None:
    assert {c["valid"] for c in _cases("batch-signatures.json", "cases")} == {True, False}
    assert {c["valid"] for c in _cases("batch-signatures.json", "hybrid", "cases")} == {True, False}


@pytest.mark.parametrize(
    "case",
    _cases("batch-signatures.json", "hybrid", "cases"),
    ids=_ids(_cases("batch-signatures.json", "hybrid", "cases")),
)
def test_batch_hybrid_case(case: dict[str, Any]) -> None:
    doc = _load("batch-signatures.json")["hybrid"]
    public = PublicSigningKey.from_bytes(canonical_json(doc["public_signing_key"]))
    assert json.loads(public.to_bytes()) == _load("keys.json")["hybrid"]["public_signing_key_json"]
    outcome = _outcome(lambda: verify(_signed(case["signed"]), PayloadType(case["expected_payload_type"]), [public]))
    assert outcome == ("accepted" if case["valid"] else "SignatureError")


# --- encoding.json ------------------------------------------------------------------------


def _parse_payload(payload_type: str, payload: bytes) -> Any:
    """The strict parser of SPEC §4.4.3 for a payload type, or for item content ('item')."""
    if payload_type == "item":
        return item_from_plaintext(payload)
    return MODELS[PayloadType(payload_type)].from_bytes(payload)


@pytest.mark.parametrize("case", _cases("encoding.json", "accept"), ids=_ids(_cases("encoding.json", "accept")))
def test_canonical_payload_is_accepted(case: dict[str, Any]) -> None:
    # SPEC §4.4: the payload is the JCS encoding of its value, parses, and encodes back to itself.
    # SPEC §13: the accept vectors MUST be accepted.
    payload = bytes.fromhex(case["payload_hex"])
    assert case["payload_utf8"].encode("utf-8") == payload
    assert canonical_json(case["value"]) == payload
    assert _parse_payload(case["payload_type"], payload).to_bytes() == payload


@pytest.mark.parametrize("case", _cases("encoding.json", "refuse"), ids=_ids(_cases("encoding.json", "refuse")))
def test_non_canonical_payload_is_refused(case: dict[str, Any]) -> None:
    # SPEC §4.4.3: every strictness rule, one refused payload at a time.
    # SPEC §13: the refuse vectors MUST be refused.
    payload = bytes.fromhex(case["payload_hex"])
    if case["payload_utf8"] is not None:
        assert case["payload_utf8"].encode("utf-8") == payload
    assert _outcome(lambda: _parse_payload(case["payload_type"], payload)) == case["expected"] == "MalformedError"


def test_refusal_vectors_cover_every_parsing_rule() -> None:
    # SPEC §4.4.3: rules 1 to 6 each have refusal vectors.
    rules = {c["rule"] for c in _cases("encoding.json", "refuse")}
    assert rules == {f"§4.4.3 rule {n}" for n in range(1, 7)}


def test_encoding_vectors_exercise_escapes_markings_and_fractions() -> None:
    # SPEC §4.4.1, §4.4.2: the accept vectors hold what the earlier vectors never did.
    payloads = [bytes.fromhex(c["payload_hex"]) for c in _cases("encoding.json", "accept")]
    joined = b"".join(payloads)
    for needle in (b"\\u0000", b"\\u001f", b'\\"', b"\\\\", b"\\n", b"\\t", b"/", "\u2028".encode()):
        assert needle in joined, needle
    for marking in ("ÇOK GİZLİ", "TAM MƏXFİ", "СОВЕРШЕННО СЕКРЕТНО"):
        assert marking.encode() in joined, marking
    for fraction in (b".004500Z", b".000001Z", b".999999Z"):
        assert fraction in joined, fraction


def test_pretty_printed_statement_is_accepted() -> None:
    # SPEC §4.4.3: a Signed statement's own JSON need not be canonical.
    doc = _load("encoding.json")
    signed = Signed.from_bytes(doc["pretty_statement"].encode("utf-8"))
    assert _parse_payload(signed.payload_type, signed.payload).to_bytes() == signed.payload


@pytest.mark.parametrize(
    "case", _cases("encoding.json", "statement_refuse"), ids=_ids(_cases("encoding.json", "statement_refuse"))
)
def test_malformed_statement_is_refused(case: dict[str, Any]) -> None:
    # SPEC §4.1, §4.4.3
    assert _outcome(lambda: Signed.from_bytes(case["statement_utf8"].encode("utf-8"))) == case["expected"]


# --- xwing.json ---------------------------------------------------------------------------


def test_xwing_draft_vector() -> None:
    # SPEC §5.4.2: the published X-Wing vector: the seed gives the key the reference publishes,
    # and the combiner (label last) gives the shared secret.
    draft = _load("xwing.json")["draft"]
    seed = bytes.fromhex(draft["seed_hex"])
    assert HpkeKeyPair.from_seeds(bytes(32), seed).public().mlkem768_x25519 == bytes.fromhex(draft["pk_hex"])
    assert xwing_decapsulate(seed, bytes.fromhex(draft["ct_hex"])).hex() == draft["ss_hex"]


@pytest.mark.parametrize("case", _cases("xwing.json", "hpke"), ids=_ids(_cases("xwing.json", "hpke")))
def test_xwing_hpke_sealed_batch_key(case: dict[str, Any]) -> None:
    # SPEC §5.4.2, §8.2: KEM 0x647A in HPKE base mode; the reference opens it, and so does an
    # independent X-Wing decapsulation and RFC 9180 key schedule.
    doc = _load("xwing.json")
    sealed, info = bytes.fromhex(case["sealed_hex"]), bytes.fromhex(case["info_hex"])
    plaintext = bytes.fromhex(case["plaintext_hex"])
    keys = HpkeKeyPair.from_seeds(bytes(32), bytes.fromhex(case["xwing_seed_hex"]))
    assert keys.public().mlkem768_x25519 == bytes.fromhex(case["public_key_hex"])
    suite = envelope_mod.Suite.MLKEM768X25519_AES256GCM
    assert envelope_mod._open_batch_key(keys, suite, info, sealed) == plaintext
    suite_id = bytes.fromhex(doc["suite_id_hex"])
    assert suite_id == b"HPKE" + bytes.fromhex(doc["kem_id"]) + bytes.fromhex("00010002")
    shared_secret = xwing_decapsulate(bytes.fromhex(case["xwing_seed_hex"]), sealed[:1120])
    assert shared_secret.hex() == case["shared_secret_hex"]
    key, nonce = hpke_base_key_schedule(suite_id, shared_secret, info, 32)
    assert (key.hex(), nonce.hex()) == (case["key_hex"], case["base_nonce_hex"])
    assert AESGCM(key).decrypt(nonce, sealed[1120:], None) == plaintext
