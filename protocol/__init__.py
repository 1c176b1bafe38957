"""intelshare protocol core: pure, no I/O, no wall clock, no global state.

See ``protocol/SPEC.md``. Modules:

- ``classification``: common bands and national markings (SPEC §5.2)
- ``roster``: the signed federation roster (SPEC §5.1)
- ``label`` and ``item``: what an item is (SPEC §7)
- ``agreement``: bilateral agreements and trust models (SPEC §6)
- ``envelope``: origin attestation, ``seal`` and decryption (SPEC §8)
- ``statements`` and ``merkle``: signed statements and batch signatures (SPEC §4)
- ``consent``, ``notices``, ``receipt``: signed statements (SPEC §9.4, §10, §11.3)
- ``policy``: the egress and ingress decisions, and opening without policy (SPEC §8.6, §9)
"""

from protocol.agreement import Agreement, AgreementBook, DirectionTerms, ReshareRule, TrustModel
from protocol.classification import Band, NationalMarkings
from protocol.consent import ConsentDenial, ConsentGrant, ConsentRequest, ConsentRevocation
from protocol.envelope import (
    DEFAULT_SUITE,
    Attested,
    BatchKeys,
    Envelope,
    EnvelopeHeader,
    OriginAttestation,
    SealRequest,
    Suite,
    ToAttest,
    attest,
    attest_many,
    seal,
    seal_many,
)
from protocol.errors import (
    ConfigurationError,
    IntelshareError,
    LocalProtocolError,
    MalformedError,
    NoticeMismatchError,
    OpenError,
    RemoteProtocolError,
    RollbackError,
    SignatureError,
)
from protocol.item import Attachment, ContentKind, RawData, ReportTemplate
from protocol.keys import HpkeKeyPair, HpkePublicKeys, PublicSigningKey, SigningKey, VerifiedRoots
from protocol.label import Category, InformationCredibility, Label, SourceReliability, UseLimitation
from protocol.notices import Correction, Recall
from protocol.policy import (
    Decision,
    Direction,
    Fault,
    Opened,
    PolicyContext,
    Reason,
    TimeWindow,
    Transfer,
    check_egress,
    check_ingress,
    open_envelope,
)
from protocol.receipt import Receipt
from protocol.roster import Member, MemberStatus, Roster, accept_roster
from protocol.statements import PayloadType, Signature, Signed, sign, sign_many, verify

__all__ = [
    "DEFAULT_SUITE",
    "Agreement",
    "AgreementBook",
    "Attachment",
    "Attested",
    "Band",
    "BatchKeys",
    "Category",
    "ConfigurationError",
    "ConsentDenial",
    "ConsentGrant",
    "ConsentRequest",
    "ConsentRevocation",
    "ContentKind",
    "Correction",
    "Decision",
    "Direction",
    "DirectionTerms",
    "Envelope",
    "EnvelopeHeader",
    "Fault",
    "HpkeKeyPair",
    "HpkePublicKeys",
    "InformationCredibility",
    "IntelshareError",
    "Label",
    "LocalProtocolError",
    "MalformedError",
    "Member",
    "MemberStatus",
    "NationalMarkings",
    "NoticeMismatchError",
    "OpenError",
    "Opened",
    "OriginAttestation",
    "PayloadType",
    "PolicyContext",
    "PublicSigningKey",
    "RawData",
    "Reason",
    "Recall",
    "Receipt",
    "RemoteProtocolError",
    "ReportTemplate",
    "ReshareRule",
    "RollbackError",
    "Roster",
    "SealRequest",
    "Signature",
    "SignatureError",
    "Signed",
    "SigningKey",
    "SourceReliability",
    "Suite",
    "TimeWindow",
    "ToAttest",
    "Transfer",
    "TrustModel",
    "UseLimitation",
    "VerifiedRoots",
    "accept_roster",
    "attest",
    "attest_many",
    "check_egress",
    "check_ingress",
    "open_envelope",
    "seal",
    "seal_many",
    "sign",
    "sign_many",
    "verify",
]
