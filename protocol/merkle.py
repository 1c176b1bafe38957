"""RFC 9162 Merkle trees: tree hash, inclusion proofs and their verification (SPEC §4.6).

Used for batch signatures (one signature over the root of many statements, each carrying
its inclusion proof) and by the node's audit log, whose entry hashes are RFC 9162 leaf
hashes. Pure functions over bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "inclusion_proofs",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "tree_hash",
]


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1 leaf hash: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash (RFC 9162 §2.1.1) over already-hashed leaves.

    The empty tree's root is ``SHA-256("")``.
    """
    if not leaf_hashes:
        return hashlib.sha256(b"").digest()

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaf_hashes[lo]
        k = lo + _split(hi - lo)
        return node_hash(mth(lo, k), mth(k, hi))

    return mth(0, len(leaf_hashes))


def inclusion_proofs(leaf_hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root and every leaf's inclusion proof (RFC 9162 §2.1.3.1), in one pass.

    ``PATH(m, D[n])`` is the path of the subtree holding ``m`` followed by the hash of
    the sibling subtree, so the recursion appends the sibling after the deeper levels.
    """
    if not leaf_hashes:
        raise ValueError("a tree with no leaves has no inclusion proofs")
    proofs: list[list[bytes]] = [[] for _ in leaf_hashes]

    def build(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaf_hashes[lo]
        k = lo + _split(hi - lo)
        left, right = build(lo, k), build(k, hi)
        for index in range(lo, k):
            proofs[index].append(right)
        for index in range(k, hi):
            proofs[index].append(left)
        return node_hash(left, right)

    return build(0, len(leaf_hashes)), proofs


def root_from_inclusion_proof(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root a proof leads to (RFC 9162 §2.1.3.2), or None if the proof is not well-formed.

    The caller compares the result with a root it trusts (here: one whose signature
    verified). Steps as numbered in the RFC.
    """
    if index < 0 or index >= tree_size:  # step 1
        return None
    if len(leaf) != 32:  # a leaf hash is a SHA-256 digest (as RFC 9162 implementations check)
        return None
    fn, sn, r = index, tree_size - 1, leaf  # steps 2-3
    for p in proof:  # step 4
        if len(p) != 32 or sn == 0:  # 4a
            return None
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    if sn != 0:  # step 5: the proof must be exactly as long as the path
        return None
    return r
