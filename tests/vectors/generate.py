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

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from protocol import envelope as env  # noqa: E402
from protocol.agreement import (  # noqa: E402
    Agreement,
    AgreementBook,
    AgreementProposal,
    AgreementRejection,
    ReshareRule,
    TrustModel,
    countersign,
    verify_proposal,
    verify_rejection,
)
from protocol.bundle import BundleManifest  # noqa: E402
from protocol.classification import Band  # noqa: E402
from protocol.consent import (  # noqa: E402
    ConsentDenial,
    ConsentGrant,
    ConsentRequest,
    ConsentRevocation,
    verify_revocation,
)
from protocol.encoding import canonical_json, hpke_info, pae  # noqa: E402
from protocol.envelope import Envelope, EnvelopeHeader, OriginAttestation, Suite, seal_info  # noqa: E402
from protocol.errors import IntelshareError, OpenError  # noqa: E402
from protocol.item import Attachment, RawData, ReportTemplate, item_from_plaintext  # noqa: E402
from protocol.keys import (  # noqa: E402
    BATCH_ROOT_TYPE,
    HpkeKeyPair,
    SigningKey,
    batch_root_message,
    encode_batch_signature,
    keyid_of,
)
from protocol.label import Category  # noqa: E402
from protocol.merkle import inclusion_proofs, leaf_hash  # noqa: E402
from protocol.notices import Correction, NoticeAck, NoticeKind, Recall  # noqa: E402
from protocol.policy import (  # noqa: E402
    RULES,
    PolicyContext,
    Reason,
    TimeWindow,
    Transfer,
    check_egress,
    check_ingress,
    open_envelope,
)
from protocol.receipt import Receipt  # noqa: E402
from protocol.roster import Roster, SecretariatKeys, accept_roster  # noqa: E402
from protocol.statements import PayloadType, Signature, Signed, sign, sign_many, verify  # noqa: E402
from tests import support as S  # noqa: E402, N812
from tests.test_vectors import MODELS, hpke_base_key_schedule, xwing_decapsulate  # noqa: E402

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
    proposed = S.agreement("KZ", "TR", version=2, ceilings={"KZ": Band.CONFIDENTIAL, "TR": Band.CONFIDENTIAL})
    proposed_by_kz = sign(PayloadType.AGREEMENT, proposed, [S.signing_key("KZ")])
    return [
        (PayloadType.ROSTER, "SECRETARIAT", S.roster()),
        (PayloadType.AGREEMENT, "KZ", S.agreement("KZ", "TR")),
        (
            PayloadType.AGREEMENT_PROPOSAL,
            "KZ",
            AgreementProposal(
                proposal_id="f" * 32,
                proposer="KZ",
                counterparty="TR",
                agreement=proposed_by_kz,
                replaces=1,
                note="both ceilings to CONFIDENTIAL",
                proposed_at=NOW,
            ),
        ),
        (
            PayloadType.AGREEMENT_REJECTION,
            "TR",
            AgreementRejection(
                proposal_id="f" * 32,
                agreement_id="KZ-TR",
                version=2,
                agreement_digest=proposed_by_kz.digest,
                proposer="KZ",
                rejecter="TR",
                reason="not before the annual review",
                rejected_at=NOW,
            ),
        ),
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
                log_seq=42,
                log_leaf=hashlib.sha256(b"ingress entry").hexdigest(),
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
                conditions=("onward-to:UZ", "retain-until:2026-12-22T12:00:00Z"),
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
        (
            PayloadType.NOTICE_ACK,
            "TR",
            NoticeAck(
                notice_digest=hashlib.sha256(b"recall").hexdigest(),
                kind=NoticeKind.RECALL,
                item_id="item-1",
                item_version=1,
                originator="KZ",
                holder="TR",
                received_from="KZ",
                copies=1,
                applied_at=NOW,
                log_seq=17,
                log_leaf=hashlib.sha256(b"recall entry").hexdigest(),
            ),
        ),
        (
            PayloadType.AUDIT_BUNDLE,
            "TR",
            BundleManifest(
                member="TR",
                federation="OTS",
                exported_at=NOW,
                log_size=17,
                log_root=hashlib.sha256(b"root").hexdigest(),
                tables={"audit_log": hashlib.sha256(b"rows").hexdigest()},
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
        open_envelope(e, recipient_id=recipient, recipient_keys=S.hpke_keys(recipient), roster=roster)
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
    expired_origin, expired_pt = S.make_origin(S.label(retain_until=NOW))
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
    g_onward_kg = S.grant(
        origin, grantor="KZ", holder="TR", grantee="AZ", transferable=True, conditions=("onward-to:KG",)
    )
    g_onward_uz = S.grant(
        origin, grantor="KZ", holder="TR", grantee="AZ", transferable=True, conditions=("onward-to:UZ",)
    )
    g_held_until_now = S.grant(
        origin, grantor="KZ", holder="TR", grantee="AZ", conditions=("retain-until:2026-11-22T12:00:00Z",)
    )

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
        held_origins: tuple[tuple[str, int, str], ...] = (),
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
                "held_origins": [list(h) for h in held_origins],
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
    egress("retention ended at now", "KZ", "TR", expired_origin, expect=Reason.RETENTION_EXPIRED)
    egress(
        "retention one microsecond ahead",
        "KZ",
        "TR",
        expired_origin,
        now=NOW - timedelta(microseconds=1),
        expect=Reason.ALLOWED,
    )
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
    egress(
        "onward grant names a member the first grant's onward-to does not",
        "AZ",
        "UZ",
        origin,
        (g_onward_kg, g_az_uz),
        expect=Reason.CONSENT_CONDITION_UNMET,
    )
    egress(
        "onward grant names the member the first grant's onward-to allows",
        "AZ",
        "UZ",
        origin,
        (g_onward_uz, g_az_uz),
        expect=Reason.ALLOWED,
    )
    egress(
        "grant's retain-until reached",
        "TR",
        "AZ",
        origin,
        (g_held_until_now,),
        expect=Reason.CONSENT_CONDITION_UNMET,
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
        "sender key revoked",
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
        "item version held under another origin attestation",
        good,
        "TR",
        held_origins=(("item-1", 1, ts_origin.digest),),
        expect=Reason.EQUIVOCATION,
    )
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
        "receiver refuses an item whose retention ended",
        env_("KZ", "TR", expired_origin, expired_pt),
        "TR",
        expect=Reason.RETENTION_EXPIRED,
    )
    ingress(
        "receiver re-checks grant conditions",
        env_("AZ", "UZ", origin, plaintext, (g_onward_kg, g_az_uz)),
        "UZ",
        expect=Reason.CONSENT_CONDITION_UNMET,
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
    revocations = gen_revocations(origin, g_ok, rosters)
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
                "in 'revoked_grants'; is_replay(header, digest) is header.nonce in 'seen_nonces'; "
                "held_origin(item_id, version) is the digest 'held_origins' lists for them, else null. "
                "Revocations (SPEC §9.4.3): verify_revocation(revocation, roster, grant) -> 'accepted' or "
                "the error class."
            ),
            "secretariat_public_hex": sec.public().ed25519.hex(),
            "members": {m: member_seeds(m) for m in MEMBERS},
            "rosters": rosters,
            "agreements": {name: obj(s) for name, s in signed_ag.items()},
            "unreachable": UNREACHABLE,
            "scenarios": scenarios,
            "revocations": revocations,
        },
    )


def gen_revocations(origin: Signed, granted: Signed, rosters: dict[str, Any]) -> list[dict[str, Any]]:
    """Revocations of KZ's grant to TR for AZ, by whom and of what (SPEC §9.4.3)."""
    grant = ConsentGrant.from_bytes(granted.payload)

    def revocation(signer: str = "KZ", **changes: Any) -> Signed:
        fields: dict[str, Any] = {
            "revocation_id": "c" * 32,
            "grant_id": grant.grant_id,
            "item_id": grant.item_id,
            "revoker": signer,
            "reason": "source at risk",
            "issued_at": NOW,
        }
        fields.update(changes)
        return sign(PayloadType.CONSENT_REVOCATION, ConsentRevocation.model_validate(fields), [S.signing_key(signer)])

    cases = [
        ("revoked by the grantor", "default", revocation(), "accepted"),
        ("revoked by another member", "default", revocation("TR"), "SignatureError"),
        ("signed by another member in the grantor's name", "default", revocation("TR", revoker="KZ"), "SignatureError"),
        ("grantor's key revoked", "kz-key-revoked", revocation(), "SignatureError"),
        ("another grant", "default", revocation(grant_id="f" * 32), "NoticeMismatchError"),
        ("another item", "default", revocation(item_id="item-2"), "NoticeMismatchError"),
    ]
    out = []
    for name, roster_name, signed, expected in cases:
        roster = Roster.from_bytes(Signed.from_bytes(json.dumps(rosters[roster_name]).encode()).payload)
        got = outcome(lambda signed=signed, roster=roster: verify_revocation(signed, roster=roster, grant=grant))
        assert got == expected, (name, got)
        out.append(
            {
                "name": name,
                "roster": roster_name,
                "grant": obj(granted),
                "revocation": obj(signed),
                "expected": expected,
            }
        )
    return out


def evaluate(sc: dict[str, Any], rosters: dict[str, Any], signed_ag: dict[str, Signed]) -> Any:
    roster = accept_roster(
        Signed.from_bytes(json.dumps(rosters[sc["roster"]]).encode()),
        secretariat=SecretariatKeys(threshold=1, keys=(key_for("SECRETARIAT").public(),)),
        current=None,
    )
    held_under = accept_roster(
        Signed.from_bytes(json.dumps(rosters[sc["agreements_roster"]]).encode()),
        secretariat=SecretariatKeys(threshold=1, keys=(key_for("SECRETARIAT").public(),)),
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
    held = {(item_id, version): digest for item_id, version, digest in sc["held_origins"]}
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
        held_origin=lambda item_id, version: held.get((item_id, version)),
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
    anchor = SecretariatKeys(threshold=1, keys=(sec_pub,))
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
        got = outcome(lambda signed=signed, cur=cur: accept_roster(signed, secretariat=anchor, current=cur))
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
    amendments = gen_amendments(rosters, both(v1), v1, v2)

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
                "direction terms of SPEC §6.3. Invalid: agreement payloads that MUST NOT parse. "
                "Amendments (SPEC §6.4): verify_proposal(proposal, roster, counterparty=verifier, held) -> "
                "'accepted' or the error class; for an accepted one, countersign with the verifier's key "
                "gives exactly 'countersigned' (deterministic Ed25519), which accepted into a book holding "
                "'held' is in force at 'now' on either party's side. Rejections: "
                "verify_rejection(rejection, roster, proposal) -> 'accepted' or the error class."
            ),
            "secretariat_public_hex": sec_pub.ed25519.hex(),
            "rosters": rosters,
            "roster_cases": rc,
            "agreement_cases": ac,
            "terms": terms,
            "invalid_agreements": invalid_docs,
            "amendment_cases": amendments["proposals"],
            "rejection_cases": amendments["rejections"],
        },
    )


def gen_amendments(
    rosters: dict[str, Any], held_signed: Signed, v1: Agreement, v2: Agreement
) -> dict[str, list[dict[str, Any]]]:
    """Proposals, countersignatures and rejections between KZ and TR (SPEC §6.4)."""
    roster = Roster.from_bytes(Signed.from_bytes(json.dumps(rosters["default"]).encode()).payload)

    def proposal(
        agreement: Agreement, *, signer: str = "KZ", replaces: int | None = 1, pid: str = "f" * 32
    ) -> tuple[AgreementProposal, Signed]:
        inner = sign(PayloadType.AGREEMENT, agreement, [S.signing_key(signer)])
        p = AgreementProposal(
            proposal_id=pid,
            proposer="KZ",
            counterparty="TR",
            agreement=inner,
            replaces=replaces,
            note="both ceilings to CONFIDENTIAL",
            proposed_at=NOW,
        )
        return p, sign(PayloadType.AGREEMENT_PROPOSAL, p, [S.signing_key(signer)])

    tighter = v2.model_copy(update={"ceilings": {"KZ": Band.CONFIDENTIAL, "TR": Band.CONFIDENTIAL}})
    good, good_signed = proposal(tighter)
    other_id = tighter.model_copy(update={"agreement_id": "KZ-TR-bis"})
    cases: list[tuple[str, Signed, str, Signed | None, str]] = [
        ("proposal verified, countersigned, in force", good_signed, "TR", held_signed, "accepted"),
        ("no agreement held yet", proposal(tighter, replaces=None)[1], "TR", None, "accepted"),
        (
            "signed by another member in the proposer's name",
            proposal(tighter, signer="AZ")[1],
            "TR",
            held_signed,
            "SignatureError",
        ),
        ("addressed to another member", good_signed, "AZ", held_signed, "NoticeMismatchError"),
        ("version not newer than the one held", proposal(v1, replaces=None)[1], "TR", held_signed, "RollbackError"),
        ("another agreement id than the one held", proposal(other_id)[1], "TR", held_signed, "ConfigurationError"),
    ]
    out = []
    for name, signed, verifier, held, expected in cases:
        held_agreement = None if held is None else Agreement.from_bytes(held.payload)
        got = outcome(
            lambda signed=signed, verifier=verifier, held_agreement=held_agreement: verify_proposal(
                signed, roster=roster, counterparty=verifier, held=held_agreement
            )
        )
        assert got == expected, (name, got)
        case: dict[str, Any] = {
            "name": name,
            "roster": "default",
            "now": ts(NOW),
            "proposal": obj(signed),
            "verifier": verifier,
            "held": None if held is None else obj(held),
            "expected": expected,
        }
        if expected == "accepted":
            parsed = verify_proposal(signed, roster=roster, counterparty=verifier, held=held_agreement)
            countersigned = countersign(
                parsed, key=S.signing_key(verifier), me=verifier, roster=roster, held=held_agreement
            )
            for side in ("KZ", "TR"):
                book = AgreementBook()
                if held is not None:
                    book.accept(held, roster)
                assert book.accept(countersigned, roster).version == 2
                assert book.in_force(side, "KZ" if side == "TR" else "TR", NOW)
            case["countersigned"] = obj(countersigned)
        out.append(case)

    def rejection(signer: str = "TR", **changes: Any) -> Signed:
        fields: dict[str, Any] = {
            "proposal_id": good.proposal_id,
            "agreement_id": "KZ-TR",
            "version": 2,
            "agreement_digest": good.agreement.digest,
            "proposer": "KZ",
            "rejecter": signer,
            "reason": "not before the annual review",
            "rejected_at": NOW,
        }
        fields.update(changes)
        return sign(PayloadType.AGREEMENT_REJECTION, AgreementRejection.model_validate(fields), [S.signing_key(signer)])

    rejections = []
    for name, signed, expected in (
        ("rejected by the counterparty", rejection(), "accepted"),
        ("rejected by another member", rejection("AZ"), "SignatureError"),
        ("rejection of another version", rejection(version=3), "NoticeMismatchError"),
        (
            "rejection of another text",
            rejection(agreement_digest=hashlib.sha256(b"other").hexdigest()),
            "NoticeMismatchError",
        ),
    ):
        got = outcome(lambda signed=signed: verify_rejection(signed, roster=roster, proposal=good))
        assert got == expected, (name, got)
        rejections.append(
            {
                "name": name,
                "roster": "default",
                "proposal": obj(good_signed),
                "rejection": obj(signed),
                "expected": expected,
            }
        )
    return {"proposals": out, "rejections": rejections}


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


# --- encoding.json ------------------------------------------------------------------------

#: The item content parser's "type" in encoding.json: plaintexts are not statements (SPEC §7.2).
ITEM = "item"


def _payload_case(name: str, ptype: str, payload: bytes, **extra: Any) -> dict[str, Any]:
    try:
        text: str | None = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"name": name, "payload_type": ptype, "payload_utf8": text, "payload_hex": payload.hex(), **extra}


def _parse(ptype: str, payload: bytes) -> Any:
    return item_from_plaintext(payload) if ptype == ITEM else MODELS[PayloadType(ptype)].from_bytes(payload)


def _once(payload: bytes, old: bytes, new: bytes) -> bytes:
    assert payload.count(old) >= 1, (old, payload[:200])
    return payload.replace(old, new, 1)


def gen_encoding() -> None:
    escapes = ConsentDenial(
        request_id="a" * 32,
        item_id="item-1",
        item_version=1,
        origin_digest=hashlib.sha256(b"origin").hexdigest(),
        denier="KZ",
        reason=(
            'quote " backslash \\ slash / tab \t newline \n return \r backspace \b form feed \f '
            "nul \x00 unit separator \x1f delete \x7f line separator \u2028 paragraph separator \u2029 "
            "é ı İ Ə Ж 🛰"
        ),
        issued_at=NOW,
    )
    tr_origin, _ = S.make_origin(S.label("TR", band=Band.TOP_SECRET, releasable_to=("AZ", "KZ")))
    az_origin, _ = S.make_origin(S.label("AZ", band=Band.SECRET, releasable_to=("TR",)))
    kz_origin, _ = S.make_origin(S.label("KZ", band=Band.TOP_SECRET, releasable_to=("TR",)))
    largest, _ = S.make_origin(S.label(item_version=2**31 - 1, topics=("cyber", "terrorism")))
    receipt = Receipt(
        envelope_id="00112233445566778899aabbccddeeff",
        envelope_digest=hashlib.sha256(b"header").hexdigest(),
        sender="KZ",
        receiver="TR",
        accepted=False,
        reason=Reason.BAND_ABOVE_CEILING.value,
        rule=RULES[Reason.BAND_ABOVE_CEILING],
        received_at=NOW + timedelta(microseconds=4500),
        log_seq=2**53 - 1,
        log_leaf=hashlib.sha256(b"ingress entry").hexdigest(),
    )
    recall = Recall(
        recall_id="d" * 32,
        item_id="item-1",
        item_version=1,
        origin_digest=hashlib.sha256(b"origin").hexdigest(),
        originator="KZ",
        reason="source withdrawn",
        issued_at=NOW + timedelta(microseconds=1),
    )
    grant = ConsentGrant(
        grant_id="b" * 32,
        request_id=None,
        item_id="item-1",
        item_version=1,
        origin_digest=hashlib.sha256(b"origin").hexdigest(),
        grantor="KZ",
        holder="TR",
        grantee="AZ",
        expires_at=NOW + timedelta(days=30, microseconds=999999),
        transferable=True,
        conditions=("onward-to:UZ", "onward-to:TR-MIT", "retain-until:2026-12-22T12:00:00.999999Z"),
        issued_at=NOW,
    )
    asymmetric = S.agreement(
        "TR",
        "KZ",
        ceilings={"TR": Band.CONFIDENTIAL, "KZ": Band.TOP_SECRET},
        max_retention_days=36500,
        title="Türkiye–Қазақстан: СЕКРЕТНО / GİZLİ",
    )
    revoking = S.roster(revoked=(S.signing_key("UZ").keyid, S.signing_key("AZ").keyid))
    report = ReportTemplate(
        title="Aktau geçişi: hücre hareketi",
        summary="Üç kişi / three members\tcrossed.",
        body='Line 1\nLine 2\r\n"quoted" \\ back\u2028slash',
        assessment="Вероятно: подготовка логистики.",
        grading="B2",
        attachments=(Attachment(name="map.bin", media_type="application/octet-stream", data=b"\xfb\xff\xfe\x00"),),
    )
    raw_item = RawData(description="sensor log", media_type="text/plain", data=b"\xfb\xff\xfe\x00")
    accept: list[tuple[str, str, bytes]] = [
        ("escapes and raw UTF-8 in free text", PayloadType.CONSENT_DENIAL.value, escapes.to_bytes()),
        ("Turkish marking ÇOK GİZLİ", PayloadType.ORIGIN.value, tr_origin.payload),
        ("Azerbaijani marking TAM MƏXFİ", PayloadType.ORIGIN.value, az_origin.payload),
        ("Cyrillic marking СОВЕРШЕННО СЕКРЕТНО", PayloadType.ORIGIN.value, kz_origin.payload),
        ("largest item version 2^31 - 1", PayloadType.ORIGIN.value, largest.payload),
        ("fraction of a second: .004500", PayloadType.RECEIPT.value, receipt.to_bytes()),
        ("fraction of a second: .000001", PayloadType.RECALL.value, recall.to_bytes()),
        ("fraction .999999, typed conditions, null request_id", PayloadType.CONSENT_GRANT.value, grant.to_bytes()),
        ("asymmetric ceilings, map keys sorted, largest retention", PayloadType.AGREEMENT.value, asymmetric.to_bytes()),
        ("roster: markings maps sorted by band name, sets sorted", PayloadType.ROSTER.value, revoking.to_bytes()),
        ("report content with escapes and an attachment", ITEM, report.to_bytes()),
        ("raw content, bytes fb ff fe 00", ITEM, raw_item.to_bytes()),
    ]
    accepted = []
    for name, ptype, payload in accept:
        parsed = _parse(ptype, payload)
        assert parsed.to_bytes() == payload == canonical_json(json.loads(payload)), name
        accepted.append(_payload_case(name, ptype, payload, value=json.loads(payload)))

    origin = S.make_origin()[0].payload
    rec = receipt.to_bytes()
    head = fixed_header(Suite.X25519_AES256GCM).to_bytes()
    ag = asymmetric.to_bytes()
    ros = revoking.to_bytes()
    raw_bytes = raw_item.to_bytes()
    den = escapes.to_bytes()
    gr = grant.to_bytes()
    o, r, h, a, ro, it, d, g = (
        PayloadType.ORIGIN.value,
        PayloadType.RECEIPT.value,
        PayloadType.HEADER.value,
        PayloadType.AGREEMENT.value,
        PayloadType.ROSTER.value,
        ITEM,
        PayloadType.CONSENT_DENIAL.value,
        PayloadType.CONSENT_GRANT.value,
    )
    two_revoked = json.loads(ros)["revoked_keyids"]
    refuse: list[tuple[str, str, str, bytes]] = [
        # §4.4.3 rule 1: one JSON object in UTF-8
        ("empty payload", "1", r, b""),
        ("an array, not an object", "1", r, b"[]"),
        ("byte order mark before the object", "1", r, b"\xef\xbb\xbf" + rec),
        ("invalid UTF-8 in a string", "1", d, _once(den, "é".encode(), b"\xe9")),
        ("NaN", "1", r, _once(rec, b'"accepted":false', b'"accepted":NaN')),
        ("a lone surrogate escape", "1", d, _once(den, "🛰".encode(), b"\\ud800")),
        ("a control character unescaped in a string", "1", d, _once(den, b"\\u001f", b"\x1f")),
        ("two objects", "1", r, rec + rec),
        # rule 2: duplicate keys
        (
            "duplicate key: a second recipient",
            "2",
            h,
            _once(head, b'"recipient":"TR"', b'"recipient":"TR","recipient":"AZ"'),
        ),
        (
            "duplicate key in a nested object",
            "2",
            o,
            _once(origin, b'"band":"SECRET"', b'"band":"SECRET","band":"SECRET"'),
        ),
        # rule 3: unknown and missing members
        ("unknown member", "3", r, rec[:-1] + b',"zzz":1}'),
        ("unknown member in a nested object", "3", o, _once(origin, b'"band":"SECRET"', b'"band":"SECRET","bandx":1')),
        ("missing member that has a local default", "3", o, _once(origin, b'"originator_controlled":true,', b"")),
        ("missing optional member (null)", "3", o, _once(origin, b',"supersedes":null', b"")),
        ("missing required member", "3", r, _once(rec, b'"accepted":false,', b"")),
        # rule 4: JSON types
        ("integer as a string", "4", o, _once(origin, b'"item_version":1,', b'"item_version":"1",')),
        ("integer as 1.0", "4", o, _once(origin, b'"item_version":1,', b'"item_version":1.0,')),
        ("integer as 1e0", "4", o, _once(origin, b'"item_version":1,', b'"item_version":1e0,')),
        ("integer as true", "4", o, _once(origin, b'"item_version":1,', b'"item_version":true,')),
        ("boolean as 0", "4", r, _once(rec, b'"accepted":false', b'"accepted":0')),
        ("boolean as 1", "4", r, _once(rec, b'"accepted":false', b'"accepted":1')),
        ('boolean as "yes"', "4", r, _once(rec, b'"accepted":false', b'"accepted":"yes"')),
        ('boolean as "false"', "4", r, _once(rec, b'"accepted":false', b'"accepted":"false"')),
        ("timestamp as a Unix integer", "4", r, _once(rec, b'"2026-11-22T12:00:00.004500Z"', b"1795435200")),
        ("band as its id", "4", o, _once(origin, b'"band":"SECRET"', b'"band":3')),
        # rule 5: bounds, spellings, sets, markings, cross-field rules
        ("item_version 0", "5", o, _once(origin, b'"item_version":1,', b'"item_version":0,')),
        ("item_version 2^31", "5", o, _once(origin, b'"item_version":1,', b'"item_version":2147483648,')),
        ("item_version 2^63", "5", o, _once(origin, b'"item_version":1,', b'"item_version":9223372036854775808,')),
        (
            "string longer than its bound",
            "5",
            d,
            _once(den, b'"reason":"quote', b'"reason":"' + b"x" * 1024 + b"quote"),
        ),
        ("item id longer than 128", "5", o, _once(origin, b'"item_id":"item-1"', b'"item_id":"' + b"i" * 129 + b'"')),
        ("timestamp with a space for T", "5", r, _once(rec, b"2026-11-22T12", b"2026-11-22 12")),
        ("timestamp with lower-case t", "5", r, _once(rec, b"2026-11-22T12", b"2026-11-22t12")),
        ("timestamp with lower-case z", "5", r, _once(rec, b".004500Z", b".004500z")),
        ("timestamp with +00:00", "5", r, _once(rec, b".004500Z", b".004500+00:00")),
        ("timestamp with +03:00", "5", r, _once(rec, b"12:00:00.004500Z", b"15:00:00.004500+03:00")),
        ("timestamp without a zone", "5", r, _once(rec, b".004500Z", b".004500")),
        (
            "timestamp with .000000",
            "5",
            o,
            _once(origin, b'"attested_at":"2026-11-22T12:00:00Z"', b'"attested_at":"2026-11-22T12:00:00.000000Z"'),
        ),
        ("timestamp with three fraction digits", "5", r, _once(rec, b".004500Z", b".004Z")),
        ("timestamp with nine fraction digits", "5", r, _once(rec, b".004500Z", b".004500000Z")),
        ("timestamp on 30 February", "5", r, _once(rec, b"2026-11-22T", b"2026-02-30T")),
        ("timestamp with a leap second", "5", r, _once(rec, b"12:00:00.004500Z", b"23:59:60.004500Z")),
        ("band in lower case", "5", o, _once(origin, b'"band":"SECRET"', b'"band":"secret"')),
        ("band with surrounding space", "5", o, _once(origin, b'"band":"SECRET"', b'"band":" SECRET"')),
        ("band title TOP SECRET", "5", a, _once(ag, b'"KZ":"TOP_SECRET"', b'"KZ":"TOP SECRET"')),
        ("band hyphenated TOP-SECRET", "5", a, _once(ag, b'"KZ":"TOP_SECRET"', b'"KZ":"TOP-SECRET"')),
        (
            "band as a map key in lower case",
            "5",
            ro,
            _once(ros, '"SECRET":"GİZLİ"'.encode(), '"secret":"GİZLİ"'.encode()),
        ),
        (
            "enumeration in another case",
            "5",
            o,
            _once(origin, b'"category":"intelligence"', b'"category":"Intelligence"'),
        ),
        (
            "set unsorted: topics",
            "5",
            a,
            _once(ag, b'"topics":["cyber","drug-trafficking"', b'"topics":["drug-trafficking","cyber"'),
        ),
        (
            "set repeated: topics",
            "5",
            o,
            _once(origin, b'"topics":["terrorism"]', b'"topics":["terrorism","terrorism"]'),
        ),
        (
            "set unsorted: releasable_to",
            "5",
            o,
            _once(tr_origin.payload, b'"releasable_to":["AZ","KZ"]', b'"releasable_to":["KZ","AZ"]'),
        ),
        ("set unsorted: parties", "5", a, _once(ag, b'"parties":["KZ","TR"]', b'"parties":["TR","KZ"]')),
        (
            "set unsorted: revoked_keyids",
            "5",
            ro,
            _once(
                ros,
                json.dumps(two_revoked).replace(" ", "").encode(),
                json.dumps(two_revoked[::-1]).replace(" ", "").encode(),
            ),
        ),
        (
            "marking not in NFC (İ as I + U+0307)",
            "5",
            o,
            _once(tr_origin.payload, "GİZLİ".encode(), "GI\u0307ZLI\u0307".encode()),
        ),
        (
            "marking with a trailing space",
            "5",
            o,
            _once(tr_origin.payload, "ÇOK GİZLİ".encode(), "ÇOK GİZLİ ".encode()),
        ),
        ("public key of the wrong length", "5", ro, _once(ros, b'"x25519":"', b'"x25519":"AAAA')),
        (
            "valid_until not after valid_from",
            "5",
            a,
            _once(ag, b'"valid_until":"2027-11-22T12:00:00Z"', b'"valid_until":"2025-11-22T12:00:00Z"'),
        ),
        ("item of an unknown kind", "5", it, _once(raw_bytes, b'"kind":"raw"', b'"kind":"other"')),
        ("grant condition in free text", "5", g, _once(gr, b'"onward-to:UZ"', b'"no onward transfer"')),
        ("grant condition of an unknown kind", "5", g, _once(gr, b'"onward-to:UZ"', b'"embargo:UZ"')),
        ("grant condition onward-to a lower-case id", "5", g, _once(gr, b'"onward-to:UZ"', b'"onward-to:uz"')),
        (
            "grant condition retain-until with a zone offset",
            "5",
            g,
            _once(gr, b"2026-12-22T12:00:00.999999Z", b"2026-12-22T15:00:00.999999+03:00"),
        ),
        # rule 6: bytes are exactly the canonical encoding
        ("space after a colon", "6", r, _once(rec, b'"accepted":false', b'"accepted": false')),
        ("space before the object", "6", r, b" " + rec),
        ("line break after the object", "6", r, rec + b"\n"),
        ("members in declaration order, not sorted", "6", r, receipt.model_dump_json().encode()),
        ("needless escape \\u0041", "6", r, _once(rec, b'"sender":"KZ"', b'"sender":"\\u004bZ"')),
        ("needless escape \\/", "6", d, _once(den, b"slash / tab", b"slash \\/ tab")),
        ("U+2028 escaped", "6", d, _once(den, "\u2028".encode(), b"\\u2028")),
        ("non-ASCII escaped", "6", d, _once(den, "é".encode(), b"\\u00e9")),
        ("control escape in upper-case hex", "6", d, _once(den, b"\\u001f", b"\\u001F")),
        ("tab as \\u0009", "6", d, _once(den, b"\\t", b"\\u0009")),
        ("bytes: standard base64 alphabet", "6", it, _once(raw_bytes, b'"-__-AA=="', b'"+//+AA=="')),
        ("bytes: no padding", "6", it, _once(raw_bytes, b'"-__-AA=="', b'"-__-AA"')),
        ("bytes: non-zero bits after the last byte", "6", it, _once(raw_bytes, b'"-__-AA=="', b'"-__-AB=="')),
    ]
    refused = []
    for name, rule, ptype, payload in refuse:
        assert payload != b"" or name == "empty payload", name
        got = outcome(lambda ptype=ptype, payload=payload: _parse(ptype, payload))
        assert got == "MalformedError", (name, got)
        refused.append(_payload_case(name, ptype, payload, rule=f"§4.4.3 rule {rule}", expected="MalformedError"))

    signed = sign(PayloadType.RECEIPT, receipt, [S.signing_key("TR")])
    sig = obj(signed.signatures[0])
    other = obj(sign(PayloadType.RECEIPT, recall, [S.signing_key("TR")]).signatures[0])
    doc = obj(signed)
    statement_refuse = [
        ("two signatures with the same keyid and alg", {**doc, "signatures": [sig, {**other, "keyid": sig["keyid"]}]}),
        ("duplicate key in the statement", None),
        ("unknown member in the statement", {**doc, "extra": 1}),
        ("signature key id not 64 hex", {**doc, "signatures": [{**sig, "keyid": sig["keyid"].upper()}]}),
    ]
    statements_out = []
    for name, value in statement_refuse:
        data = (
            json.dumps(doc).replace('"payload_type"', '"payload_type": "x", "payload_type"', 1).encode()
            if value is None
            else json.dumps(value).encode()
        )
        assert outcome(lambda data=data: Signed.from_bytes(data)) == "MalformedError", name
        statements_out.append({"name": name, "statement_utf8": data.decode(), "expected": "MalformedError"})
    pretty = json.dumps(doc, indent=2)
    assert Signed.from_bytes(pretty.encode()) == signed

    write(
        "encoding.json",
        {
            "description": (
                "Canonical JSON and strict parsing (SPEC §4.4). 'accept': payloads that MUST parse; each is "
                "exactly the RFC 8785 (JCS) encoding of 'value' and parses back to bytes equal to itself. "
                "'refuse': payloads that MUST be refused as malformed, each breaking the named rule of "
                "§4.4.3 in an otherwise valid payload. payload_type 'item' is decrypted item content (SPEC "
                "§7.2, §8.6 step 9), parsed by the same rules. payload_utf8 is null where the bytes are not "
                "UTF-8. 'statements': the JSON form of a Signed statement (SPEC §4.1) is read strictly but "
                "need not be canonical: 'pretty_statement' MUST be accepted, 'statement_refuse' MUST NOT."
            ),
            "accept": accepted,
            "refuse": refused,
            "pretty_statement": pretty,
            "statement_refuse": statements_out,
        },
    )


# --- xwing.json ---------------------------------------------------------------------------


def gen_xwing() -> None:
    seed = bytes.fromhex(XWING_DRAFT_SEED_HEX)
    draft_pk = HpkeKeyPair.from_seeds(bytes(32), seed).public().mlkem768_x25519
    assert draft_pk is not None
    assert draft_pk.hex() == XWING_DRAFT_PK_HEX
    assert xwing_decapsulate(seed, bytes.fromhex(XWING_DRAFT_CT_HEX)).hex() == XWING_DRAFT_SS_HEX
    suite = Suite.MLKEM768X25519_AES256GCM
    suite_id = b"HPKE" + (0x647A).to_bytes(2, "big") + (1).to_bytes(2, "big") + (2).to_bytes(2, "big")
    cases = []
    for sender, recipient in (("KZ", "TR"), ("AZ", "UZ")):
        info = env.batch_key_info(sender=sender, recipient=recipient, suite=suite)
        batch_key = hashlib.sha256(f"batch key {sender}->{recipient}".encode()).digest()
        sealed = suite._primitive().encrypt(batch_key, S.hpke_keys(recipient).public().for_kem(suite.kem), info=info)
        enc, ciphertext = sealed[:1120], sealed[1120:]
        xwing_seed = S._seed(recipient, "xwing")
        ss = xwing_decapsulate(xwing_seed, enc)
        key, nonce = hpke_base_key_schedule(suite_id, ss, info, 32)
        assert AESGCM(key).decrypt(nonce, ciphertext, None) == batch_key
        cases.append(
            {
                "name": f"batch key {sender} to {recipient}",
                "recipient": recipient,
                "xwing_seed_hex": xwing_seed.hex(),
                "public_key_hex": S.hpke_keys(recipient).public().mlkem768_x25519.hex(),  # type: ignore[union-attr]
                "info_hex": info.hex(),
                "sealed_hex": sealed.hex(),
                "shared_secret_hex": ss.hex(),
                "key_hex": key.hex(),
                "base_nonce_hex": nonce.hex(),
                "plaintext_hex": batch_key.hex(),
            }
        )
    write(
        "xwing.json",
        {
            "description": (
                "The hybrid KEM (SPEC §5.4.2, §8.2): X-Wing, HPKE KEM id 0x647A. 'draft': the published "
                "test vector 1 of draft-connolly-cfrg-xwing-kem-08 Appendix C: the 32-byte decapsulation "
                "key (seed), the encapsulation key it generates, a ciphertext and the shared secret X-Wing "
                "Decap gives. 'hpke': batch keys sealed with HPKE base mode, single-shot, empty AAD, to a "
                "member's X-Wing key under the suite MLKEM768X25519_AES256GCM and info_hex (the batch_info "
                "of §8.3); sealed = enc (1120 bytes) || AES-256-GCM ciphertext. shared_secret is X-Wing "
                "Decap(enc, seed) = SHA3-256(ss_M || ss_X || ct_X || pk_X || 5c2e2f2f5e5c); key and "
                "base_nonce are RFC 9180's KeySchedule(mode_base) with suite_id = 'HPKE' || 647a 0001 "
                "0002. HPKE encryption is randomised: open-only."
            ),
            "kem_id": "647a",
            "suite_id_hex": suite_id.hex(),
            "label_hex": b"\\.//^\\".hex(),
            "draft": {
                "source": "draft-connolly-cfrg-xwing-kem-08, Appendix C, test vector 1",
                "seed_hex": XWING_DRAFT_SEED_HEX,
                "pk_hex": XWING_DRAFT_PK_HEX,
                "ct_hex": XWING_DRAFT_CT_HEX,
                "ss_hex": XWING_DRAFT_SS_HEX,
            },
            "hpke": cases,
        },
    )


#: X-Wing's published test vector 1 (draft-connolly-cfrg-xwing-kem-08, Appendix C): the
#: decapsulation key (seed), the encapsulation key, a ciphertext and its shared secret.
XWING_DRAFT_SEED_HEX = "7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26"
XWING_DRAFT_PK_HEX = (
    "e2236b35a8c24b39b10aa1323a96a919a2ced88400633a7b07131713fc14b2b5b19cfc3da5fa1a92c49f25513e0fd30d"
    "6b1611c9ab9635d7086727a4b7d21d34244e66969cf15b3b2a785329f61b096b277ea037383479a6b556de7231fe4b7f"
    "a9c9ac24c0699a0018a5253401bacfa905ca816573e56a2d2e067e9b7287533ba13a937dedb31fa44baced4076992361"
    "0034ae31e619a170245199b3c5c39864859fe1b4c9717a07c30495bdfb98a0a002ccf56c1286cef5041dede3c44cf16b"
    "f562c7448518026b3d8b9940680abd38a1575fd27b58da063bfac32c39c30869374c05c1aeb1898b6b303cc68be45534"
    "6ee0af699636224a148ca2aea10463111c709f69b69c70ce8538746698c4c60a9aef0030c7924ceec42a5d36816f545e"
    "ae13293460b3acb37ea0e13d70e4aa78686da398a8397c08eaf96882113fe4f7bad4da40b0501e1c753efe73053c8701"
    "4e8661c33099afe8bede414a5b1aa27d8392b3e131e9a70c1055878240cad0f40d5fe3cdf85236ead97e2a97448363b2"
    "808caafd516cd25052c5c362543c2517e4acd0e60ec07163009b6425fc32277acee71c24bab53ed9f29e74c66a0a3564"
    "955998d76b96a9a8b50d1635a4d7a67eb42df5644d330457293a8042f53cc7a69288f17ed55827e82b28e82665a86a14"
    "fbd96645eca8172c044f83bc0d8c0b4c8626985631ca87af829068f1358963cb333664ca482763ba3b3bb208577f9ba6"
    "ac62c25f76592743b64be519317714cb4102cb7b2f9a25b2b4f0615de31decd9ca55026d6da0b65111b16fe52feed8a4"
    "87e144462a6dba93728f500b6ffc49e515569ef25fed17aff520507368253525860f58be3be61c964604a6ac814e6935"
    "596402a520a4670b3d284318866593d15a4bb01c35e3e587ee0c67d2880d6f2407fb7a70712b838deb96c5d7bf2b44bc"
    "f6038ccbe33fbcf51a54a584fe90083c91c7a6d43d4fb15f48c60c2fd66e0a8aad4ad64e5c42bb8877c0ebec2b5e387c"
    "8a988fdc23beb9e16c8757781e0a1499c61e138c21f216c29d076979871caa6942bafc090544bee99b54b16cb9a9a364"
    "d6246d9f42cce53c66b59c45c8f9ae9299a75d15180c3c952151a91b7a10772429dc4cbae6fcc622fa8018c63439f890"
    "630b9928db6bb7f9438ae4065ed34d73d486f3f52f90f0807dc88dfdd8c728e954f1ac35c06c000ce41a0582580e3bb5"
    "7b672972890ac5e7988e7850657116f1b57d0809aaedec0bede1ae148148311c6f7e317346e5189fb8cd635b986f8c0b"
    "dd27641c584b778b3a911a80be1c9692ab8e1bbb12839573cce19df183b45835bbb55052f9fc66a1678ef2a36dea7841"
    "1e6c8d60501b4e60592d13698a943b509185db912e2ea10be06171236b327c71716094c964a68b03377f513a05bcd99c"
    "1f346583bb052977a10a12adfc758034e5617da4c1276585e5774e1f3b9978b09d0e9c44d3bc86151c43aad185712717"
    "340223ac381d21150a04294e97bb13bbda21b5a182b6da969e19a7fd072737fa8e880a53c2428e3d049b7d2197405296"
    "ddb361912a7bcf4827ced611d0c7a7da104dde4322095339f64a61d5bb108ff0bf4d780cae509fb22c256914193ff734"
    "9042581237d522828824ee3bdfd07fb03f1f942d2ea179fe722f06cc03de5b69859edb06eff389b27dce598445702162"
    "23593d4ba32d9abac8cd049040ef6534"
)
XWING_DRAFT_CT_HEX = (
    "b83aa828d4d62b9a83ceffe1d3d3bb1ef31264643c070c5798927e41fb07914a273f8f96e7826cd5375a283d7da88530"
    "4c5de0516a0f0654243dc5b97f8bfeb831f68251219aabdd723bc6512041acbaef8af44265524942b902e68ffd23221c"
    "da70b1b55d776a92d1143ea3a0c475f63ee6890157c7116dae3f62bf72f60acd2bb8cc31ce2ba0de364f52b8ed38c79d"
    "719715963a5dd3842d8e8b43ab704e4759b5327bf027c63c8fa857c4908d5a8a7b88ac7f2be394d93c3706ddd4e698cc"
    "6ce370101f4d0213254238b4a2e8821b6e414a1cf20f6c1244b699046f5a01caa0a1a55516300b40d2048c77cc73afba"
    "79afeea9d2c0118bdf2adb8870dc328c5516cc45b1a2058141039e2c90a110a9e16b318dfb53bd49a126d6b73f215787"
    "517b8917cc01cabd107d06859854ee8b4f9861c226d3764c87339ab16c3667d2f49384e55456dd40414b70a6af841585"
    "f4c90c68725d57704ee8ee7ce6e2f9be582dbee985e038ffc346ebfb4e22158b6c84374a9ab4a44e1f91de5aac5197f8"
    "9bc5e5442f51f9a5937b102ba3beaebf6e1c58380a4a5fedce4a4e5026f88f528f59ffd2db41752b3a3d90efabe46389"
    "9b7d40870c530c8841e8712b733668ed033adbfafb2d49d37a44d4064e5863eb0af0a08d47b3cc888373bc05f7a33b84"
    "1bc2587c57eb69554e8a3767b7506917b6b70498727f16eac1a36ec8d8cfaf751549f2277db277e8a55a9a5106b23a02"
    "06b4721fa9b3048552c5bd5b594d6e247f38c18c591aea7f56249c72ce7b117afcc3a8621582f9cf71787e183dee0936"
    "7976e98409ad9217a497df888042384d7707a6b78f5f7fb8409e3b535175373461b776002d799cbad62860be70573ecb"
    "e13b246e0da7e93a52168e0fb6a9756b895ef7f0147a0dc81bfa644b088a9228160c0f9acf1379a2941cd28c06ebc80e"
    "44e17aa2f8177010afd78a97ce0868d1629ebb294c5151812c583daeb88685220f4da9118112e07041fcc24d5564a99f"
    "dbde28869fe0722387d7a9a4d16e1cc8555917e09944aa5ebaaaec2cf62693afad42a3f518fce67d273cc6c9fb5472b3"
    "80e8573ec7de06a3ba2fd5f931d725b493026cb0acbd3fe62d00e4c790d965d7a03a3c0b4222ba8c2a9a16e2ac658f57"
    "2ae0e746eafc4feba023576f08942278a041fb82a70a595d5bacbf297ce2029898a71e5c3b0d1c6228b485b1ade509b3"
    "5fbca7eca97b2132e7cb6bc465375146b7dceac969308ac0c2ac89e7863eb8943015b24314cafb9c7c0e85fe543d5665"
    "8c213632599efabfc1ec49dd8c88547bb2cc40c9d38cbd3099b4547840560531d0188cd1e9c23a0ebee0a03d5577d66b"
    "1d2bcb4baaf21cc7fef1e03806ca96299df0dfbc56e1b2b43e4fc20c37f834c4af62127e7dae86c3c25a2f696ac8b589"
    "dec71d595bfbe94b5ed4bc07d800b330796fda89edb77be0294136139354eb8cd37591578f9c600dd9be8ec6219fdd50"
    "7adf3397ed4d68707b8d13b24ce4cd8fb22851bfe9d632407f31ed6f7cb1600de56f17576740ce2a32fc5145030145cf"
    "b97e63e0e41d354274a079d3e6fb2e15"
)
XWING_DRAFT_SS_HEX = "d2df0522128f09dd8e2c92b1e905c793d8f57a54c3da25861f10bf4ca613e384"


GENERATORS = {
    "pae.json": gen_pae,
    "hpke_info.json": gen_hpke_info,
    "keys.json": gen_keys,
    "signatures.json": gen_signatures,
    "envelopes.json": gen_envelopes,
    "decisions.json": gen_decisions,
    "agreements_rosters.json": gen_agreements_rosters,
    "batch-signatures.json": gen_batch_signatures,
    "encoding.json": gen_encoding,
    "xwing.json": gen_xwing,
}


def main(names: list[str]) -> None:
    """Write the named files, or all of them. Naming files keeps the randomised ones as they are."""
    for name in names or list(GENERATORS):
        GENERATORS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
