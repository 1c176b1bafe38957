"""The node's audit log: hash-linked, append-only, metadata and digests only (SPEC §11.4).

- ``entries``: events, fields, the canonical entry bytes and their RFC 9162 leaf hashes;
- ``writer``: appending in the caller's transaction (one head read per transaction);
- ``verify``: checking the chain and the head, naming the first altered entry;
- ``export``: keyset pages and whole-log exports.
"""

from node.audit.entries import (
    FIELDS,
    GENESIS_HASH,
    AuditEvent,
    AuditReason,
    DetailValue,
    Entry,
    entry_bytes,
    format_time,
    merkle_root,
)
from node.audit.export import EXPORT_FIELDS, EntryFilter, export_csv, export_jsonl, list_entries
from node.audit.verify import AuditProblem, AuditReport, ProblemKind, verify
from node.audit.writer import AuditWriter, append, append_many, seal
from protocol.merkle import leaf_hash, node_hash

__all__ = [
    "EXPORT_FIELDS",
    "FIELDS",
    "GENESIS_HASH",
    "AuditEvent",
    "AuditProblem",
    "AuditReason",
    "AuditReport",
    "AuditWriter",
    "DetailValue",
    "Entry",
    "EntryFilter",
    "ProblemKind",
    "append",
    "append_many",
    "entry_bytes",
    "export_csv",
    "export_jsonl",
    "format_time",
    "leaf_hash",
    "list_entries",
    "merkle_root",
    "node_hash",
    "seal",
    "verify",
]
