"""Audit bundles: a node's audit data for an auditor, signed as a whole (SPEC §11.10.8).

The manifest names the exporting member, its log's size and root at export, and the
digest of each exported table; the node signs it with its roster key. Each row keeps its
own signatures too (checkpoints, receipts, grants, notices), so a bundle that was edited,
or had rows removed, fails verification without any private key.
"""

from __future__ import annotations

from pydantic import Field

from protocol._model import MAX_LOG_SEQ, Digest, MemberId, Model, Timestamp

__all__ = ["BundleManifest"]


class BundleManifest(Model):
    """What an audit bundle holds."""

    member: MemberId
    federation: str = Field(min_length=1, max_length=128)
    exported_at: Timestamp
    log_size: int = Field(ge=0, le=MAX_LOG_SEQ)
    log_root: Digest
    #: SHA-256 of each exported table's rows, in their canonical order.
    tables: dict[str, Digest] = Field(max_length=64)
