from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitRequest(_message.Message):
    __slots__ = ("label_json", "item_json", "recipients", "suite", "item_id", "reason")
    LABEL_JSON_FIELD_NUMBER: _ClassVar[int]
    ITEM_JSON_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    SUITE_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    label_json: str
    item_json: str
    recipients: _containers.RepeatedScalarFieldContainer[str]
    suite: str
    item_id: str
    reason: str
    def __init__(self, label_json: _Optional[str] = ..., item_json: _Optional[str] = ..., recipients: _Optional[_Iterable[str]] = ..., suite: _Optional[str] = ..., item_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("recipient", "allowed", "reason", "rule", "detail", "envelope_id", "delivery_state")
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_STATE_FIELD_NUMBER: _ClassVar[int]
    recipient: str
    allowed: bool
    reason: str
    rule: str
    detail: str
    envelope_id: str
    delivery_state: str
    def __init__(self, recipient: _Optional[str] = ..., allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., rule: _Optional[str] = ..., detail: _Optional[str] = ..., envelope_id: _Optional[str] = ..., delivery_state: _Optional[str] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("item_id", "item_version", "outcomes")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_version: int
    outcomes: _containers.RepeatedCompositeFieldContainer[Outcome]
    def __init__(self, item_id: _Optional[str] = ..., item_version: _Optional[int] = ..., outcomes: _Optional[_Iterable[_Union[Outcome, _Mapping]]] = ...) -> None: ...

class ListInboxRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class InboxEntry(_message.Message):
    __slots__ = ("item_id", "item_version", "originator", "sender", "band", "originator_marking", "reader_marking", "category", "topics", "received_at", "status", "envelope_id")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_VERSION_FIELD_NUMBER: _ClassVar[int]
    ORIGINATOR_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    ORIGINATOR_MARKING_FIELD_NUMBER: _ClassVar[int]
    READER_MARKING_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_version: int
    originator: str
    sender: str
    band: str
    originator_marking: str
    reader_marking: str
    category: str
    topics: _containers.RepeatedScalarFieldContainer[str]
    received_at: str
    status: str
    envelope_id: str
    def __init__(self, item_id: _Optional[str] = ..., item_version: _Optional[int] = ..., originator: _Optional[str] = ..., sender: _Optional[str] = ..., band: _Optional[str] = ..., originator_marking: _Optional[str] = ..., reader_marking: _Optional[str] = ..., category: _Optional[str] = ..., topics: _Optional[_Iterable[str]] = ..., received_at: _Optional[str] = ..., status: _Optional[str] = ..., envelope_id: _Optional[str] = ...) -> None: ...

class ListInboxResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[InboxEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[InboxEntry, _Mapping]]] = ...) -> None: ...

class ReadItemRequest(_message.Message):
    __slots__ = ("item_id", "item_version")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_VERSION_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_version: int
    def __init__(self, item_id: _Optional[str] = ..., item_version: _Optional[int] = ...) -> None: ...

class ReadItemResponse(_message.Message):
    __slots__ = ("entry", "label_json", "item_json", "consent_chain_json")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    LABEL_JSON_FIELD_NUMBER: _ClassVar[int]
    ITEM_JSON_FIELD_NUMBER: _ClassVar[int]
    CONSENT_CHAIN_JSON_FIELD_NUMBER: _ClassVar[int]
    entry: InboxEntry
    label_json: str
    item_json: str
    consent_chain_json: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, entry: _Optional[_Union[InboxEntry, _Mapping]] = ..., label_json: _Optional[str] = ..., item_json: _Optional[str] = ..., consent_chain_json: _Optional[_Iterable[str]] = ...) -> None: ...

class ReshareRequest(_message.Message):
    __slots__ = ("item_id", "item_version", "recipients", "suite")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    SUITE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_version: int
    recipients: _containers.RepeatedScalarFieldContainer[str]
    suite: str
    def __init__(self, item_id: _Optional[str] = ..., item_version: _Optional[int] = ..., recipients: _Optional[_Iterable[str]] = ..., suite: _Optional[str] = ...) -> None: ...

class AskConsentRequest(_message.Message):
    __slots__ = ("item_id", "item_version", "third_party", "purpose")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_VERSION_FIELD_NUMBER: _ClassVar[int]
    THIRD_PARTY_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_version: int
    third_party: str
    purpose: str
    def __init__(self, item_id: _Optional[str] = ..., item_version: _Optional[int] = ..., third_party: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class AskConsentResponse(_message.Message):
    __slots__ = ("request_id", "state", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    state: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListConsentRequestsRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class ConsentRequestEntry(_message.Message):
    __slots__ = ("request_id", "direction", "item_id", "item_version", "requester", "third_party", "purpose", "state", "created_at", "decided_at", "reason", "grant_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    THIRD_PARTY_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    direction: str
    item_id: str
    item_version: int
    requester: str
    third_party: str
    purpose: str
    state: str
    created_at: str
    decided_at: str
    reason: str
    grant_id: str
    def __init__(self, request_id: _Optional[str] = ..., direction: _Optional[str] = ..., item_id: _Optional[str] = ..., item_version: _Optional[int] = ..., requester: _Optional[str] = ..., third_party: _Optional[str] = ..., purpose: _Optional[str] = ..., state: _Optional[str] = ..., created_at: _Optional[str] = ..., decided_at: _Optional[str] = ..., reason: _Optional[str] = ..., grant_id: _Optional[str] = ...) -> None: ...

class ListConsentRequestsResponse(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[ConsentRequestEntry]
    def __init__(self, requests: _Optional[_Iterable[_Union[ConsentRequestEntry, _Mapping]]] = ...) -> None: ...

class DecideConsentRequest(_message.Message):
    __slots__ = ("request_id", "grant", "reason", "transferable", "valid_days", "conditions")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TRANSFERABLE_FIELD_NUMBER: _ClassVar[int]
    VALID_DAYS_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    grant: bool
    reason: str
    transferable: bool
    valid_days: int
    conditions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., grant: _Optional[bool] = ..., reason: _Optional[str] = ..., transferable: _Optional[bool] = ..., valid_days: _Optional[int] = ..., conditions: _Optional[_Iterable[str]] = ...) -> None: ...

class DecideConsentResponse(_message.Message):
    __slots__ = ("request_id", "state", "grant_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    state: str
    grant_id: str
    def __init__(self, request_id: _Optional[str] = ..., state: _Optional[str] = ..., grant_id: _Optional[str] = ...) -> None: ...

class RecallRequest(_message.Message):
    __slots__ = ("item_id", "item_version", "reason")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_version: int
    reason: str
    def __init__(self, item_id: _Optional[str] = ..., item_version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class RecallResponse(_message.Message):
    __slots__ = ("recall_id", "notified")
    RECALL_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFIED_FIELD_NUMBER: _ClassVar[int]
    recall_id: str
    notified: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, recall_id: _Optional[str] = ..., notified: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryAuditRequest(_message.Message):
    __slots__ = ("after_seq", "limit", "event", "item_id")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    limit: int
    event: str
    item_id: str
    def __init__(self, after_seq: _Optional[int] = ..., limit: _Optional[int] = ..., event: _Optional[str] = ..., item_id: _Optional[str] = ...) -> None: ...

class AuditRow(_message.Message):
    __slots__ = ("seq", "at", "event", "json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    at: str
    event: str
    json: str
    def __init__(self, seq: _Optional[int] = ..., at: _Optional[str] = ..., event: _Optional[str] = ..., json: _Optional[str] = ...) -> None: ...

class QueryAuditResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[AuditRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[AuditRow, _Mapping]]] = ...) -> None: ...

class OutboxRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class OutboxEntry(_message.Message):
    __slots__ = ("envelope_id", "recipient", "item_id", "state", "attempts", "reason", "last_error")
    ENVELOPE_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    envelope_id: str
    recipient: str
    item_id: str
    state: str
    attempts: int
    reason: str
    last_error: str
    def __init__(self, envelope_id: _Optional[str] = ..., recipient: _Optional[str] = ..., item_id: _Optional[str] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., reason: _Optional[str] = ..., last_error: _Optional[str] = ...) -> None: ...

class OutboxResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[OutboxEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[OutboxEntry, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("member_id", "roster_version", "audit_head", "outbox_pending")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    ROSTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    AUDIT_HEAD_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_PENDING_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    roster_version: int
    audit_head: int
    outbox_pending: int
    def __init__(self, member_id: _Optional[str] = ..., roster_version: _Optional[int] = ..., audit_head: _Optional[int] = ..., outbox_pending: _Optional[int] = ...) -> None: ...

class SubmitBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SubmitRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[SubmitRequest, _Mapping]]] = ...) -> None: ...

class SubmitBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SubmitResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[SubmitResponse, _Mapping]]] = ...) -> None: ...

class ProposeAgreementRequest(_message.Message):
    __slots__ = ("agreement_json", "note")
    AGREEMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    agreement_json: str
    note: str
    def __init__(self, agreement_json: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class AgreementProposalEntry(_message.Message):
    __slots__ = ("proposal_id", "direction", "agreement_id", "version", "proposer", "counterparty", "state", "note", "reason", "created_at", "decided_at", "agreement_json")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    COUNTERPARTY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    direction: str
    agreement_id: str
    version: int
    proposer: str
    counterparty: str
    state: str
    note: str
    reason: str
    created_at: str
    decided_at: str
    agreement_json: str
    def __init__(self, proposal_id: _Optional[str] = ..., direction: _Optional[str] = ..., agreement_id: _Optional[str] = ..., version: _Optional[int] = ..., proposer: _Optional[str] = ..., counterparty: _Optional[str] = ..., state: _Optional[str] = ..., note: _Optional[str] = ..., reason: _Optional[str] = ..., created_at: _Optional[str] = ..., decided_at: _Optional[str] = ..., agreement_json: _Optional[str] = ...) -> None: ...

class HeldAgreement(_message.Message):
    __slots__ = ("agreement_id", "version", "parties", "in_force", "agreement_json")
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARTIES_FIELD_NUMBER: _ClassVar[int]
    IN_FORCE_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    agreement_id: str
    version: int
    parties: _containers.RepeatedScalarFieldContainer[str]
    in_force: bool
    agreement_json: str
    def __init__(self, agreement_id: _Optional[str] = ..., version: _Optional[int] = ..., parties: _Optional[_Iterable[str]] = ..., in_force: _Optional[bool] = ..., agreement_json: _Optional[str] = ...) -> None: ...

class ListAgreementsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgreementsResponse(_message.Message):
    __slots__ = ("agreements", "proposals")
    AGREEMENTS_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    agreements: _containers.RepeatedCompositeFieldContainer[HeldAgreement]
    proposals: _containers.RepeatedCompositeFieldContainer[AgreementProposalEntry]
    def __init__(self, agreements: _Optional[_Iterable[_Union[HeldAgreement, _Mapping]]] = ..., proposals: _Optional[_Iterable[_Union[AgreementProposalEntry, _Mapping]]] = ...) -> None: ...

class DecideAgreementRequest(_message.Message):
    __slots__ = ("proposal_id", "countersign", "reason")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTERSIGN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    countersign: bool
    reason: str
    def __init__(self, proposal_id: _Optional[str] = ..., countersign: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeGrantRequest(_message.Message):
    __slots__ = ("grant_id", "reason")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    reason: str
    def __init__(self, grant_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeGrantResponse(_message.Message):
    __slots__ = ("revocation_id", "notified")
    REVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    NOTIFIED_FIELD_NUMBER: _ClassVar[int]
    revocation_id: str
    notified: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, revocation_id: _Optional[str] = ..., notified: _Optional[_Iterable[str]] = ...) -> None: ...

class GrantOnwardRequest(_message.Message):
    __slots__ = ("item_id", "item_version", "grantee", "valid_days", "transferable", "conditions")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_VERSION_FIELD_NUMBER: _ClassVar[int]
    GRANTEE_FIELD_NUMBER: _ClassVar[int]
    VALID_DAYS_FIELD_NUMBER: _ClassVar[int]
    TRANSFERABLE_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item_version: int
    grantee: str
    valid_days: int
    transferable: bool
    conditions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_id: _Optional[str] = ..., item_version: _Optional[int] = ..., grantee: _Optional[str] = ..., valid_days: _Optional[int] = ..., transferable: _Optional[bool] = ..., conditions: _Optional[_Iterable[str]] = ...) -> None: ...

class GrantEntry(_message.Message):
    __slots__ = ("grant_id", "item_id", "item_version", "grantor", "holder", "grantee", "expires_at", "transferable", "conditions", "revoked_at", "request_id")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_VERSION_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    GRANTEE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    TRANSFERABLE_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    item_id: str
    item_version: int
    grantor: str
    holder: str
    grantee: str
    expires_at: str
    transferable: bool
    conditions: _containers.RepeatedScalarFieldContainer[str]
    revoked_at: str
    request_id: str
    def __init__(self, grant_id: _Optional[str] = ..., item_id: _Optional[str] = ..., item_version: _Optional[int] = ..., grantor: _Optional[str] = ..., holder: _Optional[str] = ..., grantee: _Optional[str] = ..., expires_at: _Optional[str] = ..., transferable: _Optional[bool] = ..., conditions: _Optional[_Iterable[str]] = ..., revoked_at: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ListGrantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGrantsResponse(_message.Message):
    __slots__ = ("grants",)
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[GrantEntry]
    def __init__(self, grants: _Optional[_Iterable[_Union[GrantEntry, _Mapping]]] = ...) -> None: ...
