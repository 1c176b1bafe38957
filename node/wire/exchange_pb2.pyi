from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Signature(_message.Message):
    __slots__ = ("keyid", "alg", "sig")
    KEYID_FIELD_NUMBER: _ClassVar[int]
    ALG_FIELD_NUMBER: _ClassVar[int]
    SIG_FIELD_NUMBER: _ClassVar[int]
    keyid: str
    alg: str
    sig: bytes
    def __init__(self, keyid: _Optional[str] = ..., alg: _Optional[str] = ..., sig: _Optional[bytes] = ...) -> None: ...

class Signed(_message.Message):
    __slots__ = ("payload_type", "payload", "signatures")
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    payload_type: str
    payload: bytes
    signatures: _containers.RepeatedCompositeFieldContainer[Signature]
    def __init__(self, payload_type: _Optional[str] = ..., payload: _Optional[bytes] = ..., signatures: _Optional[_Iterable[_Union[Signature, _Mapping]]] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("header", "origin", "consents", "ciphertext")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    header: Signed
    origin: Signed
    consents: _containers.RepeatedCompositeFieldContainer[Signed]
    ciphertext: bytes
    def __init__(self, header: _Optional[_Union[Signed, _Mapping]] = ..., origin: _Optional[_Union[Signed, _Mapping]] = ..., consents: _Optional[_Iterable[_Union[Signed, _Mapping]]] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("statement", "roster_version")
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    ROSTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    statement: Signed
    roster_version: int
    def __init__(self, statement: _Optional[_Union[Signed, _Mapping]] = ..., roster_version: _Optional[int] = ...) -> None: ...

class EnvelopeBatch(_message.Message):
    __slots__ = ("envelopes",)
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    envelopes: _containers.RepeatedCompositeFieldContainer[Envelope]
    def __init__(self, envelopes: _Optional[_Iterable[_Union[Envelope, _Mapping]]] = ...) -> None: ...

class ReceiptBatch(_message.Message):
    __slots__ = ("receipts", "roster_version")
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    ROSTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    roster_version: int
    def __init__(self, receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ..., roster_version: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("accepted", "reason", "detail", "statement", "roster_version")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    ROSTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    detail: str
    statement: Signed
    roster_version: int
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., statement: _Optional[_Union[Signed, _Mapping]] = ..., roster_version: _Optional[int] = ...) -> None: ...

class WitnessRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: bytes
    def __init__(self, request: _Optional[bytes] = ...) -> None: ...

class WitnessResponse(_message.Message):
    __slots__ = ("cosigned", "reason", "detail", "cosignature", "witnessed_size", "has_witnessed_size")
    COSIGNED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    COSIGNATURE_FIELD_NUMBER: _ClassVar[int]
    WITNESSED_SIZE_FIELD_NUMBER: _ClassVar[int]
    HAS_WITNESSED_SIZE_FIELD_NUMBER: _ClassVar[int]
    cosigned: bool
    reason: str
    detail: str
    cosignature: bytes
    witnessed_size: int
    has_witnessed_size: bool
    def __init__(self, cosigned: _Optional[bool] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., cosignature: _Optional[bytes] = ..., witnessed_size: _Optional[int] = ..., has_witnessed_size: _Optional[bool] = ...) -> None: ...

class EvidenceRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class EvidenceItem(_message.Message):
    __slots__ = ("witnessed_checkpoint", "statement")
    WITNESSED_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    witnessed_checkpoint: bytes
    statement: Signed
    def __init__(self, witnessed_checkpoint: _Optional[bytes] = ..., statement: _Optional[_Union[Signed, _Mapping]] = ...) -> None: ...

class ProofRequest(_message.Message):
    __slots__ = ("size", "index", "consistency")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    size: int
    index: int
    consistency: bool
    def __init__(self, size: _Optional[int] = ..., index: _Optional[int] = ..., consistency: _Optional[bool] = ...) -> None: ...

class ProofResponse(_message.Message):
    __slots__ = ("hashes", "leaf", "checkpoint")
    HASHES_FIELD_NUMBER: _ClassVar[int]
    LEAF_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    leaf: bytes
    checkpoint: bytes
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ..., leaf: _Optional[bytes] = ..., checkpoint: _Optional[bytes] = ...) -> None: ...
