"""Write the intelshare test vectors (SPEC §13). Run by hand, never by the tests.

    /tmp/venv/bin/python tests/vectors/generate.py [FILE.json ...]

Everything is derived from fixed seeds and the fixed clock ``tests.support.NOW``, so
PAE, HPKE info, keys, Ed25519 signatures (direct and batch), roster and agreement
statements come out the same on every run. HPKE encryption and ML-DSA signing are
randomised by design: the vectors that contain them (envelopes, hybrid signatures,
ingress decisions) are open-only or verify-only, and a re-run writes different but
equally valid bytes. Naming files writes only those. Once committed, the files are the
reference; ``tests/test_vectors.py`` only reads them.

Conventions of the files: binary values outside protocol messages are lower-case hex
(``*_hex``); protocol messages (``Signed`` statements, rosters) are embedded as the JSON
object they travel as, whose ``bytes`` fields are base64url with padding (SPEC §4.4).
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

from protocol import envelope as env  # noqa: E402
from protocol.agreement import Agreement, AgreementBook, ReshareRule, TrustModel  # noqa: E402
from protocol.classification import Band  # noqa: E402
from protocol.consent import ConsentDenial, ConsentGrant, ConsentRequest, ConsentRevocation  # noqa: E402
from protocol.encoding import canonical_json, hpke_info, pae  # noqa: E402
from protocol.envelope import Envelope, EnvelopeHeader, OriginAttestation, Suite, seal_info  # noqa: E402
from protocol.errors import IntelshareError, OpenError  # noqa: E402
from protocol.keys import BATCH_ROOT_TYPE, SigningKey, batch_root_message, encode_batch_signature, keyid_of  # noqa: E402
from protocol.label import Category  # noqa: E402
from protocol.merkle import inclusion_proofs, leaf_hash  # noqa: E402
from protocol.notices import Correction, Recall  # noqa: E402
from protocol.policy import (  # noqa: E402
    RULES,
    PolicyContext,
    Reason,
    TimeWindow,
    Transfer,
    check_egress,
    check_ingress,
)
from protocol.receipt import Receipt  # noqa: E402
from protocol.roster import Roster, accept_roster  # noqa: E402
from protocol.statements import PayloadType, Signature, Signed, sign, sign_many, verify  # noqa: E402
from tests import support as S  # noqa: E402, N812

NOW = S.NOW
MEMBERS = tuple(S.MARKINGS)

#: Reasons no pure input can produce, with why; decisions.json lists them (none at present:
#: every reason code is reachable).
UNREACHABLE: dict[str, str] = {}


# --- helpers ------------------------------------------------------------------------------


def obj(model: Any) -> Any:
    """A protocol message as the JSON object it travels as."""
    return json.loads(model.to_bytes())


def ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope_obj(e: Envelope) -> dict[str, Any]:
    return {
        "header": obj(e.header),
        "origin": obj(e.origin),
        "consents": [obj(c) for c in e.consents],
        "ciphertext_hex": e.ciphertext.hex(),
    }


def member_seeds(member_id: str) -> dict[str, str]:
    return {
        "ed25519_seed_hex": S._seed(member_id, "sign").hex(),
        "x25519_seed_hex": S._seed(member_id, "x25519").hex(),
        "xwing_seed_hex": S._seed(member_id, "xwing").hex(),
    }


SECRETARIAT_SEED = S._seed("SECRETARIAT", "sign")
HYBRID_ED_SEED = hashlib.sha256(b"intelshare vectors: hybrid ed25519").digest()
HYBRID_PQ_SEED = hashlib.sha256(b"intelshare vectors: hybrid ml-dsa-65").digest()


def resign_header(e: Envelope, signer: str, **changes: Any) -> Envelope:
    """The same envelope with header fields changed and re-signed by ``signer``'s real key."""
    header = EnvelopeHeader.from_bytes(e.header.payload).model_copy(update=changes)
    header = EnvelopeHeader.model_validate_json(header.to_bytes())
    return Envelope(
        header=sign(PayloadType.HEADER, header, [S.signing_key(signer)]),
        origin=e.origin,
        consents=e.consents,
        ciphertext=e.ciphertext,
    )


def write(name: str, doc: dict[str, Any]) -> None:
    path = HERE / name
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(HERE.parents[1])}")


# --- pae.json -----------------------------------------------------------------------------


def gen_pae() -> None:
    cases = [
        ("empty payload", "application/vnd.intelshare.roster+json;v=1", b""),
        ("DSSE spec example", "http://example.com/HelloWorld", b"hello world"),
        ("payload with spaces and newline", PayloadType.RECEIPT.value, b'{"a": 1}\n'),
        ("UTF-8 payload", PayloadType.ORIGIN.value, '{"m":"ÇOK GİZLİ"}'.encode()),
    ]
    cases += [(f"{pt.name} type", pt.value, b'{"x":1}') for pt in PayloadType]
    write(
        "pae.json",
        {
            "description": "DSSE v1 PAE (SPEC §4.2): 'DSSEv1' SP LEN(type) SP type SP LEN(body) SP body",
            "vectors": [
                {
                    "name": name,
                    "payload_type": ptype,
                    "payload_hex": payload.hex(),
                    "pae_hex": pae(ptype, payload).hex(),
                }
                for name, ptype, payload in cases
            ],
        },
    )


# --- hpke_info.json -----------------------------------------------------------------------


def fixed_header(suite: Suite, **changes: Any) -> EnvelopeHeader:
    fields: dict[str, Any] = {
        "envelope_id": "00112233445566778899aabbccddeeff",
        "item_id": "item-1",
        "item_version": 1,
        "sender": "KZ",
        "recipient": "TR",
        "agreement_id": "KZ-TR",
        "agreement_version": 3,
        "origin_digest": hashlib.sha256(b"origin").hexdigest(),
        "ciphertext_digest": hashlib.sha256(b"ciphertext").hexdigest(),
        "suite": suite,
        "created_at": NOW,
        "nonce": "ffeeddccbbaa99887766554433221100",
        "consent_refs": (),
    }
    fields.update(changes)
    return EnvelopeHeader.model_validate(fields)


INFO_FIELDS = (
    "origin_digest",
    "sender",
    "recipient",
    "item_id",
    "item_version",
    "agreement_id",
    "agreement_version",
    "envelope_id",
    "suite",
)


def gen_hpke_info() -> None:
    generic = [
        ("label only", "intelshare/v1 seal", []),
        ("empty field", "L", [b""]),
        ("two fields", "intelshare/v1 seal", [b"ab", b"c"]),
        ("boundary shift differs", "intelshare/v1 seal", [b"a", b"bc"]),
    ]
    headers = [(f"{s.name}", fixed_header(s)) for s in Suite]
    headers.append(
        (
            "UZ recipient, version 12, consent refs (not in info)",
            fixed_header(
                Suite.X25519_AES256GCM,
                recipient="UZ",
                item_version=12,
                consent_refs=(hashlib.sha256(b"grant").hexdigest(),),
            ),
        )
    )
    write(
        "hpke_info.json",
        {
            "description": (
                "HPKE info (SPEC §8.3): for the label and each field, a 4-byte big-endian length then "
                "the bytes. seal_info uses the label 'intelshare/v1 seal' and the header fields in "
                "info_field_order, integers as ASCII decimal, strings as UTF-8."
            ),
            "info_field_order": list(INFO_FIELDS),
            "generic": [
                {
                    "name": name,
                    "label": label,
                    "fields_hex": [f.hex() for f in fields],
                    "info_hex": hpke_info(label, fields).hex(),
                }
                for name, label, fields in generic
            ],
            "headers": [{"name": name, "header": obj(h), "info_hex": seal_info(h).hex()} for name, h in headers],
        },
    )


# --- keys.json ----------------------------------------------------------------------------


def gen_keys() -> None:
    members = []
    for m in MEMBERS:
        seeds = member_seeds(m)
        signing = S.signing_key(m).public()
        hpke = S.hpke_keys(m).public()
        assert hpke.mlkem768_x25519 is not None
        members.append(
            {
                "member_id": m,
                **seeds,
                "ed25519_public_hex": signing.ed25519.hex(),
                "keyid": signing.keyid,
                "x25519_public_hex": hpke.x25519.hex(),
                "xwing_expanded_hex": hashlib.shake_256(S._seed(m, "xwing")).digest(96).hex(),
                "mlkem768_x25519_public_hex": hpke.mlkem768_x25519.hex(),
                "public_signing_key_json": obj(signing),
                "hpke_public_keys_json": obj(hpke),
            }
        )
    sec = SigningKey.from_seeds(SECRETARIAT_SEED, None).public()
    hybrid = SigningKey.from_seeds(HYBRID_ED_SEED, HYBRID_PQ_SEED).public()
    assert hybrid.ml_dsa_65 is not None
    write(
        "keys.json",
        {
            "description": (
                "Seeds to public keys (SPEC §5.4). Ed25519 public key from its 32-byte seed (RFC 8032); "
                "ML-DSA-65 public key from its 32-byte seed xi (FIPS 204 ML-DSA.KeyGen_internal); "
                "X-Wing (MLKEM768-X25519) from its 32-byte seed: xwing_expanded = SHAKE256(seed, 96), whose "
                "first 64 bytes are the ML-KEM-768 seed d||z (FIPS 203 KeyGen_internal(d, z)) and last 32 "
                "the X25519 private key; the mlkem768-x25519 public key is the ML-KEM-768 encapsulation "
                "key (1184 bytes) followed by that X25519 public key (32 bytes). "
                "keyid = lower-case hex SHA-256 of the raw public key."
            ),
            "members": members,
            "secretariat": {
                "ed25519_seed_hex": SECRETARIAT_SEED.hex(),
                "ed25519_public_hex": sec.ed25519.hex(),
                "keyid": sec.keyid,
            },
            "hybrid": {
                "ed25519_seed_hex": HYBRID_ED_SEED.hex(),
                "ml_dsa_65_seed_hex": HYBRID_PQ_SEED.hex(),
                "ed25519_public_hex": hybrid.ed25519.hex(),
                "ml_dsa_65_public_hex": hybrid.ml_dsa_65.hex(),
                "keyid": hybrid.keyid,
                "ml_dsa_65_keyid": keyid_of(hybrid.ml_dsa_65),
                "public_signing_key_json": obj(hybrid),
            },
        },
    )


# --- signatures.json ----------------------------------------------------------------------


def statements() -> list[tuple[PayloadType, str, Any]]:
    """One realistic statement of every payload type, with the member that signs it."""
    origin, _ = S.make_origin()
    od = origin.digest
    rid = "a" * 32
    return [
        (PayloadType.ROSTER, "SECRETARIAT", S.roster()),
        (PayloadType.AGREEMENT, "KZ", S.agreement("KZ", "TR")),
        (PayloadType.ORIGIN, "KZ", OriginAttestation.from_bytes(origin.payload)),
        (PayloadType.HEADER, "KZ", fixed_header(Suite.X25519_AES256GCM, origin_digest=od)),
        (
            PayloadType.RECEIPT,
            "TR",
            Receipt(
                envelope_id="00112233445566778899aabbccddeeff",
                envelope_digest=hashlib.sha256(b"header").hexdigest(),
                sender="KZ",
                receiver="TR",
                accepted=True,
                reason=Reason.ALLOWED.value,
                rule=RULES[Reason.ALLOWED],
                received_at=NOW,
            ),
        ),
        (
            PayloadType.CONSENT_REQUEST,
            "TR",
            ConsentRequest(
                request_id=rid,
                item_id="item-1",
                item_version=1,
                origin_digest=od,
                requester="TR",
                third_party="AZ",
                purpose="joint counter-terrorism operation",
                requested_at=NOW,
            ),
        ),
        (
            PayloadType.CONSENT_GRANT,
            "KZ",
            ConsentGrant(
                grant_id="b" * 32,
                request_id=rid,
                item_id="item-1",
                item_version=1,
                origin_digest=od,
                grantor="KZ",
                holder="TR",
                grantee="AZ",
                expires_at=NOW + timedelta(days=30),
                conditions=("no onward transfer",),
                issued_at=NOW,
            ),
        ),
        (
            PayloadType.CONSENT_DENIAL,
            "KZ",
            ConsentDenial(
                request_id=rid,
                item_id="item-1",
                item_version=1,
                origin_digest=od,
                denier="KZ",
                reason="source protection",
                issued_at=NOW,
            ),
        ),
        (
            PayloadType.CONSENT_REVOCATION,
            "KZ",
            ConsentRevocation(revocation_id="c" * 32, grant_id="b" * 32, item_id="item-1", revoker="KZ", issued_at=NOW),
        ),
        (
            PayloadType.RECALL,
            "KZ",
            Recall(
                recall_id="d" * 32,
                item_id="item-1",
                item_version=1,
                origin_digest=od,
                originator="KZ",
                reason="source withdrawn",
                issued_at=NOW,
            ),
        ),
        (
            PayloadType.CORRECTION,
            "KZ",
            Correction(
                correction_id="e" * 32,
                item_id="item-1",
                corrected_version=1,
                corrected_digest=od,
                new_version=2,
                new_origin_digest=hashlib.sha256(b"v2").hexdigest(),
                originator="KZ",
                reason="wrong crossing point",
                issued_at=NOW,
            ),
        ),
    ]


def key_for(who: str) -> SigningKey:
    return SigningKey.from_seeds(SECRETARIAT_SEED, None) if who == "SECRETARIAT" else S.signing_key(who)


def seed_for(who: str) -> bytes:
    return SECRETARIAT_SEED if who == "SECRETARIAT" else S._seed(who, "sign")


def gen_signatures() -> None:
    vectors = []
    for ptype, who, statement in statements():
        signed = sign(ptype, statement, [key_for(who)])
        (sig,) = signed.signatures
        vectors.append(
            {
                "name": ptype.name,
                "payload_type": ptype.value,
                "signer": who,
                "ed25519_seed_hex": seed_for(who).hex(),
                "keyid": sig.keyid,
                "payload_base64url": json.loads(signed.to_bytes())["payload"],
                "payload_hex": signed.payload.hex(),
                "digest": signed.digest,
                "signature_hex": sig.sig.hex(),
                "signed": obj(signed),
            }
        )
    hybrid_key = SigningKey.from_seeds(HYBRID_ED_SEED, HYBRID_PQ_SEED)
    hybrid_pub = hybrid_key.public()
    payload_model = S.agreement("KZ", "TR", title="hybrid-signed agreement")
    good = sign(PayloadType.AGREEMENT, payload_model, [hybrid_key])
    ed_only = good.model_copy(update={"signatures": good.signatures[:1]})
    pq_only = good.model_copy(update={"signatures": good.signatures[1:]})
    bad_pq_sig = bytearray(good.signatures[1].sig)
    bad_pq_sig[0] ^= 0x01
    bad_pq = good.model_copy(
        update={"signatures": (good.signatures[0], good.signatures[1].model_copy(update={"sig": bytes(bad_pq_sig)}))}
    )
    retyped = good.model_copy(update={"payload_type": PayloadType.ROSTER.value})
    hybrid_cases = [
        ("both signatures", good, PayloadType.AGREEMENT, True),
        ("Ed25519 signature only", ed_only, PayloadType.AGREEMENT, False),
        ("ML-DSA-65 signature only", pq_only, PayloadType.AGREEMENT, False),
        ("ML-DSA-65 signature altered", bad_pq, PayloadType.AGREEMENT, False),
        ("payload type changed", retyped, PayloadType.ROSTER, False),
    ]
    hybrid = []
    for name, signed, expected_type, valid in hybrid_cases:
        try:
            verify(signed, expected_type, [hybrid_pub])
            ok = True
        except IntelshareError:
            ok = False
        assert ok == valid, name
        hybrid.append(
            {"name": name, "expected_payload_type": expected_type.value, "signed": obj(signed), "valid": valid}
        )
    assert hybrid_pub.ml_dsa_65 is not None
    write(
        "signatures.json",
        {
            "description": (
                "Ed25519 over PAE(payload_type, payload) (SPEC §4.1, §5.4.1). Ed25519 is deterministic: "
                "signature_hex must be reproduced byte for byte. Parsing payload and serialising it "
                "again gives the same bytes (SPEC §4.4). Hybrid cases are verify-only (ML-DSA-65 "
                "signing is randomised): an identity with an ML-DSA-65 key verifies only if both "
                "signatures verify."
            ),
            "vectors": vectors,
            "hybrid": {
                "public_signing_key": obj(hybrid_pub),
                "ed25519_public_hex": hybrid_pub.ed25519.hex(),
                "ml_dsa_65_public_hex": hybrid_pub.ml_dsa_65.hex(),
                "cases": hybrid,
            },
        },
    )


# --- envelopes.json -----------------------------------------------------------------------


def try_open(e: Envelope, recipient: str, roster: Roster) -> bool:
    try:
        env.open(e, recipient_id=recipient, recipient_keys=S.hpke_keys(recipient), roster=roster)
    except OpenError:
        return False
    return True


def envelope_case(name: str, e: Envelope, plaintext: bytes) -> dict[str, Any]:
    header = EnvelopeHeader.from_bytes(e.header.payload)
    return {
        "name": name,
        "suite": header.suite.value,
        "recipient": header.recipient,
        "envelope": envelope_obj(e),
        "info_hex": seal_info(header).hex(),
        "batch_key_info_hex": env.batch_key_info(
            sender=header.sender, recipient=header.recipient, suite=header.suite
        ).hex(),
        "enc_length": 1120 if header.suite is Suite.MLKEM768X25519_AES256GCM else 32,
        "plaintext_hex": plaintext.hex(),
        "plaintext_digest": hashlib.sha256(plaintext).hexdigest(),
    }


def gen_envelopes() -> None:
    roster = S.roster()
    signed_roster = sign(PayloadType.ROSTER, roster, [key_for("SECRETARIAT")])
    origin, plaintext = S.make_origin()
    raw_origin, raw_plaintext = S.make_origin(item=S.raw(), item_id="item-raw")
    positives = []
    for suite in Suite:
        for name, o, p in (("report", origin, plaintext), ("raw", raw_origin, raw_plaintext)):
            e = S.make_envelope("KZ", "TR", o, p, suite=suite)
            assert try_open(e, "TR", roster)
            positives.append(envelope_case(f"{suite.name} {name}", e, p))
    # Two envelopes sealed together to one recipient share one sealed batch key (SPEC §8.2);
    # each still opens alone.
    ag = S.default_book().get("KZ", "TR")
    assert ag is not None
    pair = env.seal_many(
        [
            env.SealRequest(plaintext, origin, S.member("TR"), ag.agreement_id, ag.version),
            env.SealRequest(raw_plaintext, raw_origin, S.member("TR"), ag.agreement_id, ag.version),
        ],
        sender="KZ",
        sender_key=S.signing_key("KZ"),
        suite=Suite.X25519_AES256GCM,
        now=NOW,
    )
    assert pair[0].ciphertext[:80] == pair[1].ciphertext[:80]  # enc (32) and the sealed key (48)
    for index, (e, p) in enumerate(zip(pair, (plaintext, raw_plaintext), strict=True)):
        assert try_open(e, "TR", roster)
        positives.append(envelope_case(f"batch of two, envelope {index + 1}", e, p))

    base = S.make_envelope("KZ", "TR", origin, plaintext)
    flipped = bytearray(base.ciphertext)
    flipped[40] ^= 0x01
    # The sealed batch key of another batch (same sender and recipient), re-signed: it
    # opens, but to another batch key, so the envelope key is wrong.
    other_batch = S.make_envelope("KZ", "TR", origin, plaintext)
    swapped_key = other_batch.ciphertext[:80] + base.ciphertext[80:]
    swapped = resign_header(
        Envelope(base.header, base.origin, base.consents, swapped_key),
        "KZ",
        ciphertext_digest=hashlib.sha256(swapped_key).hexdigest(),
    )
    other_origin, _ = S.make_origin(S.label(band=Band.CONFIDENTIAL))
    # A ciphertext whose digest the sender signs, but with one byte changed after HPKE.
    tampered = Envelope(base.header, base.origin, base.consents, bytes(flipped))
    resigned_flip = resign_header(tampered, "KZ", ciphertext_digest=hashlib.sha256(bytes(flipped)).hexdigest())
    negatives = [
        ("ciphertext byte flipped", tampered, "TR"),
        ("ciphertext byte flipped, digest re-signed by the sender", resigned_flip, "TR"),
        ("sealed batch key of another batch, digest re-signed by the sender", swapped, "TR"),
        ("opened by another member", base, "AZ"),
        ("redirected: header re-signed for AZ", resign_header(base, "KZ", recipient="AZ"), "AZ"),
        ("info field swapped: envelope_id", resign_header(base, "KZ", envelope_id="f" * 32), "TR"),
        ("info field swapped: agreement_version", resign_header(base, "KZ", agreement_version=2), "TR"),
        ("info field swapped: sender", resign_header(base, "AZ", sender="AZ"), "TR"),
        ("suite swapped to ChaCha20Poly1305", resign_header(base, "KZ", suite=Suite.X25519_CHACHA20POLY1305), "TR"),
        ("label swapped: other origin attestation", Envelope(base.header, other_origin, (), base.ciphertext), "TR"),
        (
            "label swapped and origin digest re-signed",
            resign_header(
                Envelope(base.header, other_origin, (), base.ciphertext), "KZ", origin_digest=other_origin.digest
            ),
            "TR",
        ),
        (
            "header signed by the wrong key",
            Envelope(
                sign(PayloadType.HEADER, EnvelopeHeader.from_bytes(base.header.payload), [S.signing_key("AZ")]),
                base.origin,
                (),
                base.ciphertext,
            ),
            "TR",
        ),
    ]
    neg = []
    for name, e, recipient in negatives:
        assert not try_open(e, recipient, roster), name
        neg.append({"name": name, "recipient": recipient, "envelope": envelope_obj(e)})
    write(
        "envelopes.json",
        {
            "description": (
                "Open-only envelopes (SPEC §8.2): ciphertext = enc || sealed batch key || AEAD ciphertext, "
                "where enc || sealed batch key is HPKE base mode, single-shot, empty AAD, of a 32-byte batch "
                "key with info = batch_key_info_hex, and the AEAD ciphertext is the suite's AEAD under "
                "HKDF-Expand-SHA256(batch key, info_hex, 32) with a zero nonce and empty AAD. Each positive "
                "vector opens, with the recipient's keys and the roster below, to plaintext_hex. Each "
                "negative vector MUST fail with the one opaque open error (SPEC §8.6)."
            ),
            "now": ts(NOW),
            "secretariat_public_hex": key_for("SECRETARIAT").public().ed25519.hex(),
            "roster": obj(signed_roster),
            "members": {m: member_seeds(m) for m in MEMBERS},
            "positive": positives,
            "negative": neg,
        },
    )


# --- decisions.json -----------------------------------------------------------------------


def gen_decisions() -> None:
    sec = key_for("SECRETARIAT")
    rosters_plain = {
        "default": S.roster(),
        "kz-key-revoked": S.roster(revoked=(S.signing_key("KZ").keyid,)),
    }
    rosters = {name: obj(sign(PayloadType.ROSTER, r, [sec])) for name, r in rosters_plain.items()}

    ag = {
        "KZ-TR": S.agreement("KZ", "TR"),
        "AZ-TR": S.agreement("AZ", "TR"),
        "AZ-KZ": S.agreement("AZ", "KZ"),
        "AZ-UZ": S.agreement("AZ", "UZ"),
        "KZ-TR.v2-tightened": S.agreement("KZ", "TR", version=2, ceilings={"KZ": Band.CONFIDENTIAL, "TR": Band.SECRET}),
        "KZ-TR.expired": S.agreement("KZ", "TR", valid_until=NOW - timedelta(days=1)),
        "KZ-TR.intelligence-only": S.agreement("KZ", "TR", categories=(Category.INTELLIGENCE,)),
        "KZ-TR.no-raw": S.agreement("KZ", "TR", raw_data_allowed=False),
        "KZ-TR.oversight": S.agreement("KZ", "TR", trust_model=TrustModel.INSTITUTIONAL_OVERSIGHT),
        "KZ-TR.label-decides": S.agreement("KZ", "TR", reshare_rule=ReshareRule.LABEL_DECIDES),
        "KZ-TR.hierarchical-TR-senior": S.agreement(
            "KZ",
            "TR",
            trust_model=TrustModel.HIERARCHICAL,
            senior_party="TR",
            ceilings={"KZ": Band.SECRET, "TR": Band.CONFIDENTIAL},
        ),
    }
    signed_ag = {name: S.signed_agreement(a) for name, a in ag.items()}
    signed_ag["KZ-TR.v2-tightened.TR-only"] = S.signed_agreement(ag["KZ-TR.v2-tightened"], ("TR",))
    signed_ag["KZ-TR.KZ-only"] = S.signed_agreement(ag["KZ-TR"], ("KZ",))
    default = ["KZ-TR", "AZ-TR", "AZ-KZ", "AZ-UZ"]

    def swap(name: str) -> list[str]:
        return [name, "AZ-TR", "AZ-KZ", "AZ-UZ"]

    origin, plaintext = S.make_origin()
    raw_origin, raw_pt = S.make_origin(item=S.raw(), item_id="item-raw")
    ts_origin, ts_pt = S.make_origin(S.label(band=Band.TOP_SECRET))
    mil_origin, mil_pt = S.make_origin(S.label(category=Category.MILITARY))
    sep_origin, _ = S.make_origin(S.label(topics=("separatism",)))
    ret_origin, ret_pt = S.make_origin(S.label(retain_until=NOW + timedelta(days=400)))
    norel_origin, norel_pt = S.make_origin(S.label(releasable_to=("AZ",)))
    open_origin, _ = S.make_origin(S.label(originator_controlled=False, releasable_to=("AZ", "TR")))
    open_tr_only, _ = S.make_origin(S.label(originator_controlled=False, releasable_to=("TR",)))
    badmark_origin, badmark_pt = S.make_origin(S.label(originator_marking=S.MARKINGS["TR"][Band.SECRET]))
    vocab_origin, vocab_pt = S.make_origin(S.label(topics=("piracy", "terrorism")))
    forged_origin, forged_pt = env.attest(
        item_id="item-1", label=S.label(), item=S.report(), originator_key=S.signing_key("TR"), now=NOW
    )

    g_ok = S.grant(origin, grantor="KZ", holder="TR", grantee="AZ")
    g_forged = S.grant(origin, grantor="KZ", holder="TR", grantee="AZ", signer="TR")
    g_expired = S.grant(origin, grantor="KZ", holder="TR", grantee="AZ", expires_at=NOW - timedelta(days=1))
    g_uz = S.grant(origin, grantor="KZ", holder="TR", grantee="UZ")
    g_other_item = S.grant(raw_origin, grantor="KZ", holder="TR", grantee="AZ")
    g_transferable = S.grant(origin, grantor="KZ", holder="TR", grantee="AZ", transferable=True)
    g_az_uz = S.grant(origin, grantor="AZ", holder="AZ", grantee="UZ", grant_id="0" * 31 + "2")

    scenarios: list[dict[str, Any]] = []

    def egress(
        name: str,
        sender: str,
        recipient: str,
        o: Signed,
        consents: tuple[Signed, ...] = (),
        *,
        agreements: list[str] | None = None,
        roster: str = "default",
        recalled: tuple[Any, ...] = (),
        revoked_grants: tuple[str, ...] = (),
        now: datetime = NOW,
        expect: Reason,
    ) -> None:
        scenarios.append(
            {
                "name": name,
                "kind": "egress",
                "roster": roster,
                "agreements_roster": "default",
                "agreements": agreements or default,
                "now": ts(now),
                "recalled": [list(r) for r in recalled],
                "revoked_grants": list(revoked_grants),
                "transfer": {
                    "sender": sender,
                    "recipient": recipient,
                    "origin": obj(o),
                    "consents": [obj(c) for c in consents],
                },
                "expected": {"allowed": expect is Reason.ALLOWED, "reason": expect.value, "rule": RULES[expect]},
            }
        )

    def ingress(
        name: str,
        e: Envelope,
        receiver: str,
        *,
        peer: str | None = None,
        agreements: list[str] | None = None,
        roster: str = "default",
        agreements_roster: str = "default",
        recalled: tuple[Any, ...] = (),
        revoked_grants: tuple[str, ...] = (),
        seen_nonces: tuple[str, ...] = (),
        now: datetime = NOW,
        expect: Reason,
    ) -> None:
        if peer is None:
            try:
                peer = EnvelopeHeader.from_bytes(e.header.payload).sender
            except IntelshareError:
                peer = "KZ"
        scenarios.append(
            {
                "name": name,
                "kind": "ingress",
                "roster": roster,
                "agreements_roster": agreements_roster,
                "agreements": agreements or default,
                "now": ts(now),
                "recalled": [list(r) for r in recalled],
                "revoked_grants": list(revoked_grants),
                "envelope": envelope_obj(e),
                "receiver": receiver,
                "peer_tls_identity": f"urn:intelshare:member:{peer}",
                "peer_fingerprint": None,
                "window": {"max_age_seconds": 7 * 86400, "max_future_skew_seconds": 300},
                "seen_nonces": list(seen_nonces),
                "expected": {"allowed": expect is Reason.ALLOWED, "reason": expect.value, "rule": RULES[expect]},
            }
        )

    # Egress (§9.3, §9.4): pure Transfer inputs.
    egress("originator to listed recipient", "KZ", "TR", origin, expect=Reason.ALLOWED)
    egress("recipient not in roster", "KZ", "KG", origin, expect=Reason.UNKNOWN_MEMBER)
    egress("recalled item", "KZ", "TR", origin, recalled=(("item-1", 1),), expect=Reason.RECALLED)
    egress(
        "no agreement KZ-UZ", "KZ", "UZ", S.make_origin(S.label(releasable_to=("UZ",)))[0], expect=Reason.NO_AGREEMENT
    )
    egress(
        "agreement signed by one party only",
        "KZ",
        "TR",
        origin,
        agreements=swap("KZ-TR.KZ-only"),
        expect=Reason.AGREEMENT_NOT_IN_FORCE,
    )
    egress(
        "agreement expired", "KZ", "TR", origin, agreements=swap("KZ-TR.expired"), expect=Reason.AGREEMENT_NOT_IN_FORCE
    )
    egress(
        "newer version signed by one party suspends at once",
        "KZ",
        "TR",
        origin,
        agreements=[*default, "KZ-TR.v2-tightened.TR-only"],
        expect=Reason.AGREEMENT_NOT_IN_FORCE,
    )
    egress(
        "tightened v2 in force: SECRET above CONFIDENTIAL ceiling",
        "KZ",
        "TR",
        origin,
        agreements=[*default, "KZ-TR.v2-tightened"],
        expect=Reason.BAND_ABOVE_CEILING,
    )
    egress(
        "tightened v2: other direction unchanged",
        "TR",
        "KZ",
        S.make_origin(S.label("TR", releasable_to=("KZ",)))[0],
        agreements=[*default, "KZ-TR.v2-tightened"],
        expect=Reason.ALLOWED,
    )
    egress("TOP SECRET above SECRET ceiling", "KZ", "TR", ts_origin, expect=Reason.BAND_ABOVE_CEILING)
    egress(
        "military not covered",
        "KZ",
        "TR",
        mil_origin,
        agreements=swap("KZ-TR.intelligence-only"),
        expect=Reason.CATEGORY_NOT_COVERED,
    )
    egress("topic not covered", "KZ", "TR", sep_origin, expect=Reason.TOPIC_NOT_COVERED)
    egress(
        "raw data forbidden by agreement",
        "KZ",
        "TR",
        raw_origin,
        agreements=swap("KZ-TR.no-raw"),
        expect=Reason.RAW_DATA_NOT_ALLOWED,
    )
    egress(
        "raw data under institutional oversight",
        "KZ",
        "TR",
        raw_origin,
        agreements=swap("KZ-TR.oversight"),
        expect=Reason.TEMPLATE_REQUIRED,
    )
    egress(
        "raw data towards the junior party",
        "TR",
        "KZ",
        S.make_origin(S.label("TR", releasable_to=("KZ",), band=Band.CONFIDENTIAL), item=S.raw())[0],
        agreements=swap("KZ-TR.hierarchical-TR-senior"),
        expect=Reason.TEMPLATE_REQUIRED,
    )
    egress(
        "raw data towards the senior party",
        "KZ",
        "TR",
        raw_origin,
        agreements=swap("KZ-TR.hierarchical-TR-senior"),
        expect=Reason.ALLOWED,
    )
    egress("retention beyond agreement", "KZ", "TR", ret_origin, expect=Reason.RETENTION_EXCEEDS_AGREEMENT)
    egress("recipient not on release list", "KZ", "TR", norel_origin, expect=Reason.NOT_RELEASABLE)
    egress("re-share without consent", "TR", "AZ", origin, expect=Reason.THIRD_PARTY_WITHOUT_CONSENT)
    egress(
        "re-share, label not controlled but agreement requires consent",
        "TR",
        "AZ",
        open_origin,
        expect=Reason.THIRD_PARTY_WITHOUT_CONSENT,
    )
    egress(
        "re-share, label decides, recipient listed",
        "TR",
        "AZ",
        open_origin,
        agreements=swap("KZ-TR.label-decides"),
        expect=Reason.ALLOWED,
    )
    egress(
        "re-share, label decides, recipient not listed",
        "TR",
        "AZ",
        open_tr_only,
        agreements=swap("KZ-TR.label-decides"),
        expect=Reason.NOT_RELEASABLE,
    )
    egress("return to originator needs no consent", "TR", "KZ", origin, expect=Reason.ALLOWED)
    egress("re-share with originator's grant", "TR", "AZ", origin, (g_ok,), expect=Reason.ALLOWED)
    egress("grant signed by the wrong key", "TR", "AZ", origin, (g_forged,), expect=Reason.CONSENT_INVALID)
    egress("grant for another item", "TR", "AZ", origin, (g_other_item,), expect=Reason.CONSENT_INVALID)
    egress("grant expired", "TR", "AZ", origin, (g_expired,), expect=Reason.CONSENT_EXPIRED)
    egress(
        "grant revoked", "TR", "AZ", origin, (g_ok,), revoked_grants=("0" * 31 + "1",), expect=Reason.CONSENT_REVOKED
    )
    egress("grant names another grantee", "TR", "AZ", origin, (g_uz,), expect=Reason.CONSENT_WRONG_GRANTEE)
    egress(
        "grantee passes on a non-transferable grant",
        "AZ",
        "UZ",
        origin,
        (g_ok,),
        expect=Reason.CONSENT_NOT_TRANSFERABLE,
    )
    egress(
        "chain extends a non-transferable grant",
        "AZ",
        "UZ",
        origin,
        (g_ok, g_az_uz),
        expect=Reason.CONSENT_NOT_TRANSFERABLE,
    )
    egress(
        "grantee of a transferable grant without its own grant",
        "AZ",
        "UZ",
        origin,
        (g_transferable,),
        expect=Reason.THIRD_PARTY_WITHOUT_CONSENT,
    )
    egress(
        "two-link chain from a transferable grant", "AZ", "UZ", origin, (g_transferable, g_az_uz), expect=Reason.ALLOWED
    )

    # Ingress (§9.2 then §9.3): whole envelopes.
    def env_(
        sender: str, recipient: str, o: Signed, p: bytes, consents: tuple[Signed, ...] = (), **kw: Any
    ) -> Envelope:
        return S.make_envelope(sender, recipient, o, p, consents, **kw)

    good = env_("KZ", "TR", origin, plaintext)
    ingress("valid envelope", good, "TR", expect=Reason.ALLOWED)
    ingress(
        "valid hybrid-KEM envelope",
        env_("KZ", "TR", origin, plaintext, suite=Suite.MLKEM768X25519_AES256GCM),
        "TR",
        expect=Reason.ALLOWED,
    )
    ingress("valid re-share with consent", env_("TR", "AZ", origin, plaintext, (g_ok,)), "AZ", expect=Reason.ALLOWED)
    malformed = Envelope(
        Signed(payload_type=PayloadType.HEADER.value, payload=b'{"envelope_id":1}', signatures=()),
        good.origin,
        (),
        good.ciphertext,
    )
    ingress("header does not parse", malformed, "TR", peer="KZ", expect=Reason.ENVELOPE_MALFORMED)
    ingress("sender not in roster", resign_header(good, "AZ", sender="HU"), "TR", expect=Reason.UNKNOWN_MEMBER)
    ingress("TLS peer is not the signer", good, "TR", peer="AZ", expect=Reason.SENDER_IDENTITY_MISMATCH)
    # The pair's agreements were accepted under the default roster; then the secretariat revoked
    # KZ's key. Under the revoking roster they could not be accepted any more (§6.2 rule 2a), but
    # a held agreement stays held (§6.2: revocation is checked when a statement is accepted).
    ingress(
        "sender key revoked after the agreements were accepted",
        good,
        "TR",
        roster="kz-key-revoked",
        agreements_roster="default",
        expect=Reason.KEY_REVOKED,
    )
    wrong_key = Envelope(
        sign(PayloadType.HEADER, EnvelopeHeader.from_bytes(good.header.payload), [S.signing_key("AZ")]),
        good.origin,
        (),
        good.ciphertext,
    )
    ingress("header signed by the wrong key", wrong_key, "TR", expect=Reason.SENDER_SIGNATURE_INVALID)
    ingress(
        "consent carried but not signed into header",
        Envelope(good.header, good.origin, (g_ok,), good.ciphertext),
        "TR",
        expect=Reason.SENDER_SIGNATURE_INVALID,
    )
    ingress(
        "addressed to another member",
        env_("KZ", "AZ", origin, plaintext),
        "TR",
        expect=Reason.NOT_ADDRESSED_TO_RECEIVER,
    )
    ingress(
        "created too long ago",
        env_("KZ", "TR", origin, plaintext, now=NOW - timedelta(days=8)),
        "TR",
        expect=Reason.TIMESTAMP_OUT_OF_WINDOW,
    )
    ingress(
        "created in the future",
        env_("KZ", "TR", origin, plaintext, now=NOW + timedelta(minutes=10)),
        "TR",
        expect=Reason.TIMESTAMP_OUT_OF_WINDOW,
    )
    good_nonce = EnvelopeHeader.from_bytes(good.header.payload).nonce
    ingress("nonce seen before", good, "TR", seen_nonces=(good_nonce,), expect=Reason.REPLAY)
    ingress(
        "origin swapped after signing",
        Envelope(good.header, ts_origin, (), good.ciphertext),
        "TR",
        expect=Reason.ORIGIN_SIGNATURE_INVALID,
    )
    ingress(
        "origin attestation forged by sender",
        env_("TR", "AZ", forged_origin, forged_pt),
        "AZ",
        expect=Reason.ORIGIN_SIGNATURE_INVALID,
    )
    ingress(
        "originator's marking wrong", env_("KZ", "TR", badmark_origin, badmark_pt), "TR", expect=Reason.LABEL_INVALID
    )
    ingress(
        "topic outside the vocabulary", env_("KZ", "TR", vocab_origin, vocab_pt), "TR", expect=Reason.TOPIC_NOT_COVERED
    )
    ingress(
        "sent under a superseded agreement version",
        good,
        "TR",
        agreements=[*default, "KZ-TR.v2-tightened"],
        expect=Reason.AGREEMENT_NOT_IN_FORCE,
    )
    ingress(
        "receiver re-checks the ceiling", env_("KZ", "TR", ts_origin, ts_pt), "TR", expect=Reason.BAND_ABOVE_CEILING
    )
    ingress(
        "receiver re-checks consent",
        env_("TR", "AZ", origin, plaintext),
        "AZ",
        expect=Reason.THIRD_PARTY_WITHOUT_CONSENT,
    )
    ingress("recalled item", good, "TR", recalled=(("item-1", 1),), expect=Reason.RECALLED)
    ingress(
        "receiver re-checks category",
        env_("KZ", "TR", mil_origin, mil_pt),
        "TR",
        agreements=swap("KZ-TR.intelligence-only"),
        expect=Reason.CATEGORY_NOT_COVERED,
    )
    ingress(
        "receiver re-checks retention",
        env_("KZ", "TR", ret_origin, ret_pt),
        "TR",
        expect=Reason.RETENTION_EXCEEDS_AGREEMENT,
    )
    ingress(
        "receiver re-checks raw data",
        env_("KZ", "TR", raw_origin, raw_pt),
        "TR",
        agreements=swap("KZ-TR.no-raw"),
        expect=Reason.RAW_DATA_NOT_ALLOWED,
    )
    ingress(
        "receiver re-checks release list", env_("KZ", "TR", norel_origin, norel_pt), "TR", expect=Reason.NOT_RELEASABLE
    )
    # Sealed to a member record with TR's id but AZ's HPKE keys: everything verifies, nothing decrypts.
    wrong_hpke = S.member("TR").model_copy(update={"hpke_keys": S.hpke_keys("AZ").public()})
    ag_kz_tr = ag["KZ-TR"]
    unopenable = env.seal(
        plaintext=plaintext,
        origin=origin,
        sender="KZ",
        sender_key=S.signing_key("KZ"),
        recipient=wrong_hpke,
        agreement_id=ag_kz_tr.agreement_id,
        agreement_version=ag_kz_tr.version,
        consents=(),
        suite=Suite.X25519_AES256GCM,
        now=NOW,
    )
    ingress("sealed to the wrong HPKE key", unopenable, "TR", expect=Reason.ENVELOPE_UNOPENABLE)

    # Check every scenario against the implementation before writing it.
    for sc in scenarios:
        got = evaluate(sc, rosters, signed_ag)
        want = sc["expected"]
        assert (got.allowed, got.reason.value, got.rule) == (want["allowed"], want["reason"], want["rule"]), (
            sc["name"],
            got,
        )
    covered = {sc["expected"]["reason"] for sc in scenarios}
    missing = {r.value for r in Reason} - covered - set(UNREACHABLE)
    assert not missing, missing
    write(
        "decisions.json",
        {
            "description": (
                "Policy decisions (SPEC §9). Load each roster with the secretariat key, accept the named "
                "agreement statements in order into an empty agreement book under the roster named by "
                "'agreements_roster' (the one the node held when it accepted them, SPEC §6.2), then, "
                "under 'roster', run check_egress on "
                "the transfer or check_ingress on the envelope (receiver's HPKE keys from keys.json). "
                "is_recalled(item_id, version) is membership in 'recalled'; is_grant_revoked is membership "
                "in 'revoked_grants'; is_replay(header, digest) is header.nonce in 'seen_nonces'."
            ),
            "secretariat_public_hex": sec.public().ed25519.hex(),
            "members": {m: member_seeds(m) for m in MEMBERS},
            "rosters": rosters,
            "agreements": {name: obj(s) for name, s in signed_ag.items()},
            "unreachable": UNREACHABLE,
            "scenarios": scenarios,
        },
    )


def evaluate(sc: dict[str, Any], rosters: dict[str, Any], signed_ag: dict[str, Signed]) -> Any:
    roster = accept_roster(
        Signed.from_bytes(json.dumps(rosters[sc["roster"]]).encode()),
        secretariat=[key_for("SECRETARIAT").public()],
        current=None,
    )
    held_under = accept_roster(
        Signed.from_bytes(json.dumps(rosters[sc["agreements_roster"]]).encode()),
        secretariat=[key_for("SECRETARIAT").public()],
        current=None,
    )
    book = AgreementBook()
    for name in sc["agreements"]:
        book.accept(signed_ag[name], held_under)
    now = datetime.fromisoformat(sc["now"])
    recalled = {(r[0], r[1]) for r in sc["recalled"]}
    revoked = set(sc["revoked_grants"])
    ctx = PolicyContext(
        roster=roster,
        agreements=book,
        now=now,
        is_recalled=lambda i, v: (i, v) in recalled,
        is_grant_revoked=lambda g: g in revoked,
    )
    if sc["kind"] == "egress":
        t = sc["transfer"]
        origin = Signed.from_bytes(json.dumps(t["origin"]).encode())
        transfer = Transfer(
            sender=t["sender"],
            recipient=t["recipient"],
            attestation=OriginAttestation.from_bytes(origin.payload),
            origin_digest=origin.digest,
            consents=tuple(Signed.from_bytes(json.dumps(c).encode()) for c in t["consents"]),
        )
        return check_egress(transfer, ctx)
    e = sc["envelope"]
    envelope = Envelope(
        header=Signed.from_bytes(json.dumps(e["header"]).encode()),
        origin=Signed.from_bytes(json.dumps(e["origin"]).encode()),
        consents=tuple(Signed.from_bytes(json.dumps(c).encode()) for c in e["consents"]),
        ciphertext=bytes.fromhex(e["ciphertext_hex"]),
    )
    seen = set(sc["seen_nonces"])
    w = sc["window"]
    return check_ingress(
        envelope,
        receiver=sc["receiver"],
        receiver_keys=S.hpke_keys(sc["receiver"]),
        peer_tls_identity=sc["peer_tls_identity"],
        peer_fingerprint=sc["peer_fingerprint"],
        ctx=ctx,
        window=TimeWindow(
            max_age=timedelta(seconds=w["max_age_seconds"]),
            max_future_skew=timedelta(seconds=w["max_future_skew_seconds"]),
        ),
        is_replay=lambda header, digest: header.nonce in seen,
    ).decision


# --- agreements_rosters.json --------------------------------------------------------------


def outcome(fn: Any) -> str:
    try:
        fn()
    except IntelshareError as exc:
        return type(exc).__name__
    return "accepted"


def gen_agreements_rosters() -> None:
    sec = key_for("SECRETARIAT")
    sec_pub = sec.public()
    r1, r2 = S.roster(1), S.roster(2)
    s1 = sign(PayloadType.ROSTER, r1, [sec])
    s2 = sign(PayloadType.ROSTER, r2, [sec])
    other_fed = sign(PayloadType.ROSTER, r2.model_copy(update={"federation": "OTHER"}), [sec])
    by_member = sign(PayloadType.ROSTER, r2, [S.signing_key("KZ")])
    tampered = s2.model_copy(update={"payload": s2.payload.replace(b'"version":2', b'"version":9')})
    retyped = Signed(
        payload_type=PayloadType.AGREEMENT.value,
        payload=s2.payload,
        signatures=sign(PayloadType.AGREEMENT, r2, [sec]).signatures,
    )
    roster_cases = [
        ("first roster", s1, None, "accepted"),
        ("newer version", s2, s1, "accepted"),
        ("older version (rollback)", s1, s2, "RollbackError"),
        ("same version again", s2, s2, "RollbackError"),
        ("other federation", other_fed, s1, "RollbackError"),
        ("signed by a member, not the secretariat", by_member, s1, "SignatureError"),
        ("payload changed after signing", tampered, s1, "SignatureError"),
        ("signed as another payload type", retyped, s1, "SignatureError"),
    ]
    rc = []
    for name, signed, current, expected in roster_cases:
        cur = None if current is None else Roster.from_bytes(current.payload)
        got = outcome(lambda signed=signed, cur=cur: accept_roster(signed, secretariat=[sec_pub], current=cur))
        assert got == expected, (name, got)
        rc.append(
            {
                "name": name,
                "current": None if current is None else obj(current),
                "update": obj(signed),
                "expected": expected,
            }
        )

    roster_uz_partial = S.roster().model_copy(
        update={
            "members": tuple(
                m
                if m.member_id != "UZ"
                else m.model_copy(
                    update={"markings": {b: t for b, t in S.MARKINGS["UZ"].items() if b is not Band.TOP_SECRET}}
                )
                for m in S.roster().members
            )
        }
    )
    roster_uz_partial = Roster.model_validate_json(roster_uz_partial.to_bytes())
    rosters = {
        "default": obj(s1),
        "uz-without-top-secret": obj(sign(PayloadType.ROSTER, roster_uz_partial, [sec])),
    }
    v1 = S.agreement("KZ", "TR")
    v2 = S.agreement("KZ", "TR", version=2, ceilings={"KZ": Band.CONFIDENTIAL, "TR": Band.SECRET})
    v1_other = S.agreement("KZ", "TR", title="a different text under version 1")
    late = S.agreement("KZ", "TR", valid_from=NOW + timedelta(days=1), valid_until=NOW + timedelta(days=30))
    both = S.signed_agreement
    v1_tampered = both(v1).model_copy(update={"payload": both(v1).payload.replace(b'"SECRET"', b'"TOP_SECRET"', 1)})
    uz_ts = S.agreement("AZ", "UZ", ceilings={"AZ": Band.TOP_SECRET, "UZ": Band.SECRET})
    third = sign(PayloadType.AGREEMENT, v1, [S.signing_key("KZ"), S.signing_key("AZ")])
    agreement_cases: list[tuple[str, str, list[tuple[Signed, str, int | None, bool]]]] = [
        # (statement, expected outcome, held version after, in force at NOW after)
        ("both parties sign", "default", [(both(v1), "accepted", 1, True)]),
        ("one party signs", "default", [(both(v1, ("KZ",)), "accepted", 1, False)]),
        (
            "one party, then the countersigned statement",
            "default",
            [(both(v1, ("KZ",)), "accepted", 1, False), (both(v1), "accepted", 1, True)],
        ),
        (
            "other party's lone signature does not complete it",
            "default",
            [(both(v1, ("KZ",)), "accepted", 1, False), (both(v1, ("TR",)), "accepted", 1, False)],
        ),
        (
            "newer version signed by one party suspends at once",
            "default",
            [(both(v1), "accepted", 1, True), (both(v2, ("TR",)), "accepted", 2, False)],
        ),
        ("newer version signed by both", "default", [(both(v1), "accepted", 1, True), (both(v2), "accepted", 2, True)]),
        (
            "older version replayed (rollback)",
            "default",
            [(both(v2), "accepted", 2, True), (both(v1), "RollbackError", 2, True)],
        ),
        (
            "different text under the held version",
            "default",
            [(both(v1), "accepted", 1, True), (both(v1_other), "RollbackError", 1, True)],
        ),
        ("signed by a non-party only", "default", [(both(v1, ("AZ",)), "SignatureError", None, False)]),
        ("non-party signature beside a party's is ignored", "default", [(third, "accepted", 1, False)]),
        ("payload changed after signing", "default", [(v1_tampered, "SignatureError", None, False)]),
        ("validity window not yet open", "default", [(both(late), "accepted", 1, False)]),
        (
            "band without a national marking on one side",
            "uz-without-top-secret",
            [(both(uz_ts), "ConfigurationError", None, False)],
        ),
    ]
    ac = []
    for name, roster_name, steps in agreement_cases:
        roster = Roster.from_bytes(Signed.from_bytes(json.dumps(rosters[roster_name]).encode()).payload)
        book = AgreementBook()
        out_steps = []
        for signed, expected, held, in_force in steps:
            got = outcome(lambda signed=signed, book=book, roster=roster: book.accept(signed, roster))
            a = Agreement.from_bytes(signed.payload)
            now_held = book.get(*a.parties)
            assert got == expected, (name, got)
            assert (None if now_held is None else now_held.version) == held, (name, now_held)
            assert book.in_force(*a.parties, NOW) == in_force, name
            out_steps.append(
                {"statement": obj(signed), "expected": expected, "held_version": held, "in_force": in_force}
            )
        ac.append({"name": name, "roster": roster_name, "now": ts(NOW), "steps": out_steps})

    terms = []
    for model_name, a in (
        ("high-trust", S.agreement("KZ", "TR", raw_data_allowed=True)),
        ("high-trust, label decides", S.agreement("KZ", "TR", reshare_rule=ReshareRule.LABEL_DECIDES)),
        (
            "institutional-oversight",
            S.agreement(
                "KZ", "TR", trust_model=TrustModel.INSTITUTIONAL_OVERSIGHT, reshare_rule=ReshareRule.LABEL_DECIDES
            ),
        ),
        (
            "hierarchical, TR senior",
            S.agreement(
                "KZ",
                "TR",
                trust_model=TrustModel.HIERARCHICAL,
                senior_party="TR",
                ceilings={"KZ": Band.SECRET, "TR": Band.CONFIDENTIAL},
            ),
        ),
    ):
        for sender, recipient in (("KZ", "TR"), ("TR", "KZ")):
            t = a.terms(sender, recipient)
            terms.append(
                {
                    "name": f"{model_name}: {sender}→{recipient}",
                    "agreement": obj(a),
                    "sender": sender,
                    "recipient": recipient,
                    "expected": {
                        "ceiling": t.ceiling.name,
                        "raw_data_allowed": t.raw_data_allowed,
                        "template_required": t.template_required,
                        "reshare_rule": t.reshare_rule.value,
                        "max_retention_days": t.max_retention.days,
                    },
                }
            )
    invalid: list[tuple[str, dict[str, Any]]] = [
        ("hierarchical without senior party", {"trust_model": "hierarchical"}),
        ("senior party on a non-hierarchical agreement", {"senior_party": "TR"}),
        (
            "hierarchical: ceiling towards the junior party higher",
            {"trust_model": "hierarchical", "senior_party": "TR", "ceilings": {"KZ": "CONFIDENTIAL", "TR": "SECRET"}},
        ),
        ("valid_until not after valid_from", {"valid_until": ts(NOW - timedelta(days=365))}),
        ("ceilings name a non-party", {"ceilings": {"KZ": "SECRET", "AZ": "SECRET"}}),
        ("same party twice", {"parties": ["KZ", "KZ"], "ceilings": {"KZ": "SECRET"}}),
        ("unknown field", {"extra": 1}),
    ]
    base = obj(v1)
    invalid_docs = []
    for name, changes in invalid:
        doc = {**base, **changes}
        assert outcome(lambda doc=doc: Agreement.from_bytes(canonical_json(doc))) == "MalformedError", name
        invalid_docs.append({"name": name, "payload_json": doc, "expected": "MalformedError"})
    write(
        "agreements_rosters.json",
        {
            "description": (
                "Roster updates (SPEC §5.3) and agreement statements (SPEC §6.2). Roster cases: "
                "accept_roster(update, secretariat, current) -> 'accepted' or the error class. Agreement "
                "cases: steps accepted in order into one empty agreement book under the named roster; "
                "after each step the held version and in-force state at 'now'. Terms: the effective "
                "direction terms of SPEC §6.3. Invalid: agreement payloads that MUST NOT parse."
            ),
            "secretariat_public_hex": sec_pub.ed25519.hex(),
            "rosters": rosters,
            "roster_cases": rc,
            "agreement_cases": ac,
            "terms": terms,
            "invalid_agreements": invalid_docs,
        },
    )


# --- batch-signatures.json ----------------------------------------------------------------

BATCH_TYPES = (
    PayloadType.ORIGIN,
    PayloadType.HEADER,
    PayloadType.CONSENT_GRANT,
    PayloadType.RECALL,
    PayloadType.CORRECTION,
)


def batch_fields(sig: bytes) -> tuple[int, int, list[bytes], bytes]:
    """tree size, leaf index, proof hashes and root signature of a batch signature (SPEC §4.6)."""
    end = 9 + 32 * sig[8]
    return (
        int.from_bytes(sig[:4], "big"),
        int.from_bytes(sig[4:8], "big"),
        [sig[at : at + 32] for at in range(9, end, 32)],
        sig[end:],
    )


def with_sigs(signed: Signed, *sigs: Signature) -> Signed:
    return signed.model_copy(update={"signatures": sigs})


def with_sig_bytes(signed: Signed, sig: bytes) -> Signed:
    return with_sigs(signed, signed.signatures[0].model_copy(update={"sig": sig}))


def flip_at(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def gen_batch_signatures() -> None:
    kz = S.signing_key("KZ")
    kz_pub = kz.public()
    chosen = {ptype: model for ptype, who, model in statements() if who == "KZ" and ptype in BATCH_TYPES}
    batch = sign_many([(ptype, chosen[ptype]) for ptype in BATCH_TYPES], [kz])
    size = len(batch)
    leaves = [leaf_hash(pae(s.payload_type, s.payload)) for s in batch]
    root, proofs = inclusion_proofs(leaves)
    root_message = batch_root_message(size, root)
    ((_, _, root_signature),) = kz.sign(root_message)
    vectors = []
    for index, (ptype, signed) in enumerate(zip(BATCH_TYPES, batch, strict=True)):
        (sig,) = signed.signatures
        assert (sig.keyid, sig.alg) == (kz_pub.keyid, "ed25519-batch")
        assert sig.sig == encode_batch_signature(size, index, proofs[index], root_signature)
        verify(signed, ptype, [kz_pub])
        vectors.append(
            {
                "name": ptype.name,
                "payload_type": ptype.value,
                "payload_hex": signed.payload.hex(),
                "leaf_hash_hex": leaves[index].hex(),
                "index": index,
                "proof_hex": [p.hex() for p in proofs[index]],
                "signature_hex": sig.sig.hex(),
                "signed": obj(signed),
            }
        )

    origin, header, grant_, _, correction_ = batch
    size0, index0, proof0, root_sig0 = batch_fields(origin.signatures[0].sig)
    direct = sign(PayloadType.ORIGIN, chosen[PayloadType.ORIGIN], [kz]).signatures[0]
    _, _, proof4, root_sig4 = batch_fields(correction_.signatures[0].sig)
    count_shifted = origin.signatures[0].sig[:8] + bytes([len(proof0) - 1]) + origin.signatures[0].sig[9:]
    negatives: list[tuple[str, Signed, PayloadType]] = [
        (
            "proof hash bit flipped",
            with_sig_bytes(
                origin, encode_batch_signature(size0, index0, [flip_at(proof0[0], 0), *proof0[1:]], root_sig0)
            ),
            PayloadType.ORIGIN,
        ),
        (
            "proof truncated",
            with_sig_bytes(origin, encode_batch_signature(size0, index0, proof0[:-1], root_sig0)),
            PayloadType.ORIGIN,
        ),
        (
            "proof extended",
            with_sig_bytes(origin, encode_batch_signature(size0, index0, [*proof0, proof0[0]], root_sig0)),
            PayloadType.ORIGIN,
        ),
        (
            "proof count byte lowered (last hash read as root signature)",
            with_sig_bytes(origin, count_shifted),
            PayloadType.ORIGIN,
        ),
        (
            "leaf index changed",
            with_sig_bytes(origin, encode_batch_signature(size0, 1, proof0, root_sig0)),
            PayloadType.ORIGIN,
        ),
        (
            "tree size changed",
            with_sig_bytes(origin, encode_batch_signature(size0 + 1, index0, proof0, root_sig0)),
            PayloadType.ORIGIN,
        ),
        (
            # Leaf 4 of 5 and leaf 2 of 3 have the same path: the proof leads to the same root,
            # but the root message signs the tree size.
            "tree size and index changed to a tree with the same root",
            with_sig_bytes(correction_, encode_batch_signature(3, 2, proof4, root_sig4)),
            PayloadType.CORRECTION,
        ),
        (
            "root signature bit flipped",
            with_sig_bytes(origin, flip_at(origin.signatures[0].sig, -1)),
            PayloadType.ORIGIN,
        ),
        (
            "root signature missing",
            with_sig_bytes(origin, encode_batch_signature(size0, index0, proof0, b"")),
            PayloadType.ORIGIN,
        ),
        (
            "signature too short for the fixed fields",
            with_sig_bytes(origin, origin.signatures[0].sig[:8]),
            PayloadType.ORIGIN,
        ),
        (
            "signature moved to another statement of the batch",
            with_sigs(origin, *grant_.signatures),
            PayloadType.ORIGIN,
        ),
        (
            "payload changed after signing",
            origin.model_copy(update={"payload": origin.payload.replace(b'"item_version":1', b'"item_version":2', 1)}),
            PayloadType.ORIGIN,
        ),
        (
            "HEADER statement presented as a RECEIPT (type confusion)",
            header.model_copy(update={"payload_type": PayloadType.RECEIPT.value}),
            PayloadType.RECEIPT,
        ),
        (
            "root signature lifted into a direct ed25519 signature",
            with_sigs(origin, Signature(keyid=kz_pub.keyid, alg="ed25519", sig=root_sig0)),
            PayloadType.ORIGIN,
        ),
        (
            "direct signature wrapped as a batch of one",
            with_sigs(
                origin,
                Signature(keyid=kz_pub.keyid, alg="ed25519-batch", sig=encode_batch_signature(1, 0, [], direct.sig)),
            ),
            PayloadType.ORIGIN,
        ),
        (
            "invalid direct signature beside a valid batch signature",
            with_sigs(origin, direct.model_copy(update={"sig": flip_at(direct.sig, 0)}), *origin.signatures),
            PayloadType.ORIGIN,
        ),
    ]
    positives: list[tuple[str, Signed, PayloadType]] = [
        (
            "valid direct signature beside a corrupt batch signature",
            with_sigs(origin, *with_sig_bytes(origin, b"").signatures, direct),
            PayloadType.ORIGIN,
        ),
    ]
    cases = []
    for name, signed, expected_type, valid in [(*n, False) for n in negatives] + [(*p, True) for p in positives]:
        got = outcome(lambda signed=signed, t=expected_type: verify(signed, t, [kz_pub]))
        assert got == ("accepted" if valid else "SignatureError"), (name, got)
        cases.append(
            {"name": name, "expected_payload_type": expected_type.value, "signed": obj(signed), "valid": valid}
        )

    hybrid_key = SigningKey.from_seeds(HYBRID_ED_SEED, HYBRID_PQ_SEED)
    hybrid_pub = hybrid_key.public()
    hybrid_batch = sign_many(
        [(PayloadType.RECALL, chosen[PayloadType.RECALL]), (PayloadType.CORRECTION, chosen[PayloadType.CORRECTION])],
        [hybrid_key],
    )
    recall_, correction_h = hybrid_batch
    ed_direct, pq_direct = sign(PayloadType.RECALL, chosen[PayloadType.RECALL], [hybrid_key]).signatures
    hybrid_cases = [
        ("RECALL: both batch signatures", recall_, PayloadType.RECALL, True),
        ("CORRECTION: both batch signatures", correction_h, PayloadType.CORRECTION, True),
        (
            "direct Ed25519, batch ML-DSA-65",
            with_sigs(recall_, ed_direct, recall_.signatures[1]),
            PayloadType.RECALL,
            True,
        ),
        (
            "batch Ed25519, direct ML-DSA-65",
            with_sigs(recall_, recall_.signatures[0], pq_direct),
            PayloadType.RECALL,
            True,
        ),
        ("Ed25519 batch signature only", with_sigs(recall_, recall_.signatures[0]), PayloadType.RECALL, False),
        ("ML-DSA-65 batch signature only", with_sigs(recall_, recall_.signatures[1]), PayloadType.RECALL, False),
        (
            "ML-DSA-65 root signature altered",
            with_sigs(
                recall_,
                recall_.signatures[0],
                recall_.signatures[1].model_copy(update={"sig": flip_at(recall_.signatures[1].sig, -1)}),
            ),
            PayloadType.RECALL,
            False,
        ),
        (
            "ML-DSA-65 signature moved to the other statement",
            with_sigs(recall_, recall_.signatures[0], correction_h.signatures[1]),
            PayloadType.RECALL,
            False,
        ),
    ]
    hybrid = []
    for name, signed, expected_type, valid in hybrid_cases:
        got = outcome(lambda signed=signed, t=expected_type: verify(signed, t, [hybrid_pub]))
        assert got == ("accepted" if valid else "SignatureError"), (name, got)
        hybrid.append(
            {"name": name, "expected_payload_type": expected_type.value, "signed": obj(signed), "valid": valid}
        )

    write(
        "batch-signatures.json",
        {
            "description": (
                "Batch signatures (SPEC §4.6). One Ed25519 signature by KZ over the root of an RFC 9162 "
                "Merkle tree whose leaves are SHA-256(0x00 || PAE(payload_type, payload)) of the statements "
                "in order; the signed message is PAE(batch_root_type, uint32 BE tree size || root). Each "
                "statement's 'ed25519-batch' sig is uint32 BE tree size || uint32 BE index || uint8 proof "
                "length || proof hashes (32 bytes each) || root signature. Ed25519 is deterministic: every "
                "byte must be reproduced. Cases: verify(signed, expected_payload_type, [KZ's key]) -> valid. "
                "Hybrid cases are verify-only (ML-DSA-65 signing is randomised) with the hybrid key of keys.json."
            ),
            "batch_root_type": BATCH_ROOT_TYPE,
            "signer": "KZ",
            "ed25519_seed_hex": S._seed("KZ", "sign").hex(),
            "ed25519_public_hex": kz_pub.ed25519.hex(),
            "keyid": kz_pub.keyid,
            "tree_size": size,
            "root_hex": root.hex(),
            "batch_root_message_hex": root_message.hex(),
            "root_signature_hex": root_signature.hex(),
            "statements": vectors,
            "cases": cases,
            "hybrid": {"public_signing_key": obj(hybrid_pub), "cases": hybrid},
        },
    )


GENERATORS = {
    "pae.json": gen_pae,
    "hpke_info.json": gen_hpke_info,
    "keys.json": gen_keys,
    "signatures.json": gen_signatures,
    "envelopes.json": gen_envelopes,
    "decisions.json": gen_decisions,
    "agreements_rosters.json": gen_agreements_rosters,
    "batch-signatures.json": gen_batch_signatures,
}


def main(names: list[str]) -> None:
    """Write the named files, or all of them. Naming files keeps the randomised ones as they are."""
    for name in names or list(GENERATORS):
        GENERATORS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
