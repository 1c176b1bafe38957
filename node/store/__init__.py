"""Node persistence: typed ORM models, engines and sessions, schema upgrade, hot-path writes.

Only the schema and the plumbing to reach it: what the node does with the rows lives in
``node.services``, the audit log's encoding and chain in ``node.audit``. The schema is
created and changed only by the Alembic migrations in ``node/migrations``; call
``upgrade`` rather than ``Base.metadata.create_all``.
"""

from node.store.engine import (
    MIGRATIONS_DIR,
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_PAGE_SIZE,
    DatabaseUnavailableError,
    NoDatabaseError,
    analyse,
    database_error,
    make_engine,
    make_reader,
    make_sessionmaker,
    normalise_url,
    opening,
    upgrade,
)
from node.store.hotwrite import HotWrite
from node.store.models import (
    AgreementProposalRow,
    AuditCheckpoint,
    AuditCosignature,
    AuditEntryRow,
    AuditHead,
    AuditSubtree,
    Base,
    ConsentGrantRow,
    ConsentRequestRow,
    ControlMessage,
    Delivery,
    InboxItem,
    NoticeAckRow,
    NoticeRow,
    OriginalItem,
    OutboxEntry,
    OutboxEnvelope,
    RosterRow,
    WitnessedCheckpoint,
)
from node.store.types import EnumText, UTCDateTime, driver_time

__all__ = [
    "MIGRATIONS_DIR",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_PAGE_SIZE",
    "AgreementProposalRow",
    "AuditCheckpoint",
    "AuditCosignature",
    "AuditEntryRow",
    "AuditHead",
    "AuditSubtree",
    "Base",
    "ConsentGrantRow",
    "ConsentRequestRow",
    "ControlMessage",
    "DatabaseUnavailableError",
    "Delivery",
    "EnumText",
    "HotWrite",
    "InboxItem",
    "NoDatabaseError",
    "NoticeAckRow",
    "NoticeRow",
    "OriginalItem",
    "OutboxEntry",
    "OutboxEnvelope",
    "RosterRow",
    "UTCDateTime",
    "WitnessedCheckpoint",
    "analyse",
    "database_error",
    "driver_time",
    "make_engine",
    "make_reader",
    "make_sessionmaker",
    "normalise_url",
    "opening",
    "upgrade",
]
