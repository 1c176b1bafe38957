"""RFC 9162 Merkle trees: tree hash, inclusion and consistency proofs (SPEC §4.6, §11.10.1).

Used for batch signatures (one signature over the root of many statements, each carrying
its inclusion proof, SPEC §4.6) and for the node's audit log, whose entry hashes are
RFC 9162 leaf hashes: a log serves inclusion and consistency proofs for its signed
checkpoints (SPEC §11.10). Pure functions over already-hashed leaves.

Proofs of a large log without every leaf in memory
--------------------------------------------------
Every hash a proof or a root needs is the root of a *perfect* subtree: ``2**level``
consecutive leaves starting at a multiple of ``2**level``, named ``(level, index)``
(level 0 is a leaf hash, ``index`` counts subtrees of that level from the left). The
ragged right edge of a tree is never stored: it is folded from the perfect subtrees that
make it up. So the producers here take a :data:`NodeHash` callable, ``node(level,
index)``, and call it O(log n) times per proof or root (at most twice the tree height),
never for a subtree that is not complete in the tree the proof is for.

A caller backed by a database answers ``node`` in one of two ways:

- **Every level stored.** :meth:`Frontier.append` returns the perfect subtrees each new
  leaf completes (about one per leaf, so as many rows again as there are leaves); the
  caller stores them keyed by ``(level, index)`` in the transaction that appends the
  leaf. A proof is then O(log n) point reads.
- **Every k-th level stored** (:func:`nodes_from_levels`). Only levels 0, k, 2k, … are
  kept (level 0 is the leaf hashes the log already holds); a subtree between two stored
  levels is hashed from at most ``2**(k-1)`` stored hashes of the level below it, one
  bounded range read. With k = 8 this adds one row per 256 leaves, and a proof reads at
  most ~128 hashes per proof hash.

A :class:`Frontier` (the compact range of RFC 9162 logs: the roots of the perfect
subtrees of ``[0, n)``, at most 64 hashes) gives the root of a growing tree without any
stored nodes: a verifier streams the leaves through it once, and a node can keep the
frontier of its last checkpoint to extend it from there.

Why not a library: the maintained Python Merkle libraries (pymerkle) hash and store the
leaves themselves and carry proofs in their own format, while the leaves here are hashes
the audit log already holds and the proofs are RFC 9162's plain hash lists; the code
below is the RFC's algorithms, checked against its published vectors (SPEC §13).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeAlias

from protocol.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "NodeHash",
    "consistency_proof",
    "inclusion_proof",
    "inclusion_proofs",
    "leaf_hash",
    "memory_nodes",
    "node_hash",
    "nodes_from_levels",
    "root_from_inclusion_proof",
    "root_hash",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

#: Length of every hash in the tree (SHA-256).
HASH_SIZE = 32
#: Root of the empty tree: ``SHA-256("")`` (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: ``node(level, index)``: the root of the perfect subtree over leaves
#: ``[index * 2**level, (index + 1) * 2**level)``; level 0 is the leaf hash itself.
NodeHash: TypeAlias = Callable[[int, int], bytes]

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1 leaf hash: ``SHA-256(0x00 || data)``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash (RFC 9162 §2.1.1) over already-hashed leaves.

    The empty tree's root is ``SHA-256("")``. Over ``2**d`` roots of level-``l``
    subtrees it is the root of their level-``l + d`` parent.
    """
    if not leaf_hashes:
        return EMPTY_ROOT

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
    if len(leaf) != HASH_SIZE:  # a leaf hash is a SHA-256 digest (as RFC 9162 implementations check)
        return None
    fn, sn, r = index, tree_size - 1, leaf  # steps 2-3
    for p in proof:  # step 4
        if len(p) != HASH_SIZE or sn == 0:  # 4a
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


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ``ProofError`` unless ``proof`` shows leaf ``index`` of the tree (``tree_size``, ``root``).

    RFC 9162 §2.1.3.2 (SPEC §11.10.1): ``root`` is one the caller trusts, from a checkpoint
    whose signature verified; the size matters as much as the root (SPEC §4.6).
    """
    computed = root_from_inclusion_proof(leaf, index, tree_size, proof)
    if computed is None:
        raise ProofError(f"inclusion proof for leaf {index} of a {tree_size}-leaf tree is malformed")
    if computed != root:
        raise ProofError(f"inclusion proof for leaf {index} of a {tree_size}-leaf tree leads to another root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise ``ProofError`` unless ``proof`` shows the tree (``old_size``, ``old_root``) is a prefix
    of (``new_size``, ``new_root``).

    RFC 9162 §2.1.4.2 (SPEC §11.10.1), steps as numbered in the RFC, for ``0 < old_size <
    new_size``. Equal sizes need an empty proof and equal roots. A proof from the empty
    tree proves nothing and is refused (the witness rule never asks for one, §11.10.5).
    """
    what = f"consistency proof from {old_size} to {new_size} leaves"
    if old_size <= 0 or new_size < old_size:
        raise ProofError(f"{what}: sizes must satisfy 0 < old <= new")
    if old_size == new_size:
        if proof:
            raise ProofError(f"{what}: equal sizes need an empty proof")
        if old_root != new_root:
            raise ProofError(f"{what}: equal sizes, different roots")
        return
    if not proof:  # step 1
        raise ProofError(f"{what}: empty proof")
    if any(len(c) != HASH_SIZE for c in proof):
        raise ProofError(f"{what}: a proof hash is not {HASH_SIZE} bytes")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: the old tree is a perfect subtree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6a: more hashes than the path has levels
            raise ProofError(f"{what}: proof too long")
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    if sn != 0:  # step 7
        raise ProofError(f"{what}: proof too short")
    if fr != old_root:
        raise ProofError(f"{what}: does not lead to the old root")
    if sr != new_root:
        raise ProofError(f"{what}: does not lead to the new root")


# --- producing proofs from perfect subtrees ------------------------------------------------


def _node(node: NodeHash, level: int, index: int) -> bytes:
    value = node(level, index)
    if len(value) != HASH_SIZE:
        raise ValueError(f"node({level}, {index}) gave {len(value)} bytes, not {HASH_SIZE}")
    return value


def _range_root(start: int, end: int, node: NodeHash) -> bytes:
    """``MTH(D[start:end])`` from its perfect subtrees, folded right to left (SPEC §11.10.1).

    ``start`` is a multiple of the smallest power of two at or above ``end - start``, as
    for every range a proof or a root names; the pieces are then the set bits of the
    width, largest first, each aligned to its own size.
    """
    pieces: list[bytes] = []
    width = end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            pieces.append(_node(node, level, start >> level))
            start += 1 << level
    root = pieces.pop()
    while pieces:
        root = node_hash(pieces.pop(), root)
    return root


def root_hash(tree_size: int, node: NodeHash) -> bytes:
    """The root of the tree of ``tree_size`` leaves, from at most 64 ``node`` calls."""
    if tree_size < 0:
        raise ValueError("a tree size is not negative")
    if tree_size == 0:
        return EMPTY_ROOT
    return _range_root(0, tree_size, node)


def inclusion_proof(index: int, tree_size: int, node: NodeHash) -> list[bytes]:
    """``PATH(index, D[tree_size])`` (RFC 9162 §2.1.3.1), from O(log n) ``node`` calls.

    Walks from the root towards the leaf, taking the sibling of each subtree on the way
    (the RFC's recursion, iteratively), then lists them leaf side first.
    """
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf {index} is not in a tree of {tree_size} leaves")
    siblings: list[bytes] = []
    lo, hi = 0, tree_size
    while hi - lo > 1:
        k = lo + _split(hi - lo)
        if index < k:
            siblings.append(_range_root(k, hi, node))
            hi = k
        else:
            siblings.append(_range_root(lo, k, node))
            lo = k
    siblings.reverse()
    return siblings


def consistency_proof(old_size: int, new_size: int, node: NodeHash) -> list[bytes]:
    """``PROOF(old_size, D[new_size])`` (RFC 9162 §2.1.4.1), from O(log n) ``node`` calls.

    Empty when ``old_size`` is 0 or equal to ``new_size`` (nothing to prove). The RFC's
    ``SUBPROOF`` recursion, iteratively: each step takes the sibling of the side that
    holds the old tree's right edge; where the old tree ends inside a subtree rather than
    at its edge, that subtree's root comes first.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size} leaves")
    if old_size in (0, new_size):
        return []
    siblings: list[bytes] = []
    lo, hi, m, whole = 0, new_size, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            siblings.append(_range_root(lo + k, hi, node))
            hi = lo + k
        else:
            siblings.append(_range_root(lo, lo + k, node))
            lo, m, whole = lo + k, m - k, False
    proof = [] if whole else [_range_root(lo, hi, node)]
    proof.extend(reversed(siblings))
    return proof


def memory_nodes(leaf_hashes: Sequence[bytes]) -> NodeHash:
    """A :data:`NodeHash` over leaves held in memory (tests, small trees).

    Hashes each asked-for subtree from its leaves: O(2**level) per call, so one proof
    costs about as many hashes as the tree has leaves.
    """

    def node(level: int, index: int) -> bytes:
        if level < 0 or index < 0 or (index + 1) << level > len(leaf_hashes):
            raise ValueError(f"no complete subtree ({level}, {index}) in {len(leaf_hashes)} leaves")
        return tree_hash(leaf_hashes[index << level : (index + 1) << level])

    return node


def nodes_from_levels(fetch: Callable[[int, int, int], Sequence[bytes]], every: int) -> NodeHash:
    """A :data:`NodeHash` for a store that keeps only levels ``0, every, 2*every, ...``.

    ``fetch(level, first, count)`` returns the stored roots ``(level, first)`` to
    ``(level, first + count - 1)`` (one range read). A subtree ``d`` levels above the
    stored level below it is hashed from its ``2**d`` stored descendants, so no call
    reads more than ``2**(every - 1)`` hashes.
    """
    if every < 1:
        raise ValueError("every must be at least 1")

    def node(level: int, index: int) -> bytes:
        depth = level % every
        count = 1 << depth
        hashes = fetch(level - depth, index << depth, count)
        if len(hashes) != count:
            raise ValueError(f"subtree ({level}, {index}): store gave {len(hashes)} of {count} hashes")
        return tree_hash(hashes)

    return node


# --- the frontier of a growing tree -------------------------------------------------------


class Frontier:
    """The compact range ``[0, size)`` of a growing tree: its perfect subtrees' roots (SPEC §11.10.1).

    ``size`` in binary says which subtrees: one of ``2**k`` leaves for every set bit ``k``,
    largest (leftmost) first, so at most 64 hashes. Appending a leaf merges the equal-sized
    subtrees at the right edge, like a binary counter; the root folds the subtrees right
    to left. Owned and mutated by the caller; the protocol core keeps no state.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def restore(cls, tree_size: int, hashes: Sequence[bytes]) -> Frontier:
        """A frontier from its size and subtree roots (as :attr:`hashes` gave them)."""
        if tree_size < 0 or len(hashes) != tree_size.bit_count():
            raise ValueError(f"a frontier of {tree_size} leaves has {max(tree_size, 0).bit_count()} hashes")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError(f"frontier hashes are {HASH_SIZE} bytes")
        frontier = cls()
        frontier._size = tree_size
        frontier._hashes = list(hashes)
        return frontier

    @classmethod
    def from_nodes(cls, tree_size: int, node: NodeHash) -> Frontier:
        """The frontier of the tree of ``tree_size`` leaves, from one ``node`` call per subtree."""
        if tree_size < 0:
            raise ValueError("a tree size is not negative")
        hashes, start = [], 0
        for level in range(tree_size.bit_length() - 1, -1, -1):
            if tree_size >> level & 1:
                hashes.append(_node(node, level, start >> level))
                start += 1 << level
        return cls.restore(tree_size, hashes)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect subtrees' roots, largest first (what :meth:`restore` takes)."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> tuple[tuple[int, int, bytes], ...]:
        """Add one leaf hash; return the perfect subtrees it completes as ``(level, index, root)``.

        Level 1 upwards (the leaf itself, level 0, is not repeated): what a caller that
        stores every level, or every k-th level, writes with the leaf.
        """
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        completed: list[tuple[int, int, bytes]] = []
        size, value, level = self._size, leaf, 0
        while size >> level & 1:
            level += 1
            value = node_hash(self._hashes.pop(), value)
            completed.append((level, ((size + 1) >> level) - 1, value))
        self._hashes.append(value)
        self._size = size + 1
        return tuple(completed)

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add many leaf hashes (the fast path for verifying a whole log)."""
        sha256, hashes, size = _sha256, self._hashes, self._size
        pop, push = hashes.pop, hashes.append
        try:
            for leaf in leaves:
                if len(leaf) != HASH_SIZE:
                    raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
                n, value = size, leaf
                while n & 1:
                    value = sha256(b"\x01" + pop() + value).digest()
                    n >>= 1
                push(value)
                size += 1
        finally:
            self._size = size

    def extend_aligned(self, leaves: Sequence[bytes]) -> list[list[bytes]]:
        """Add ``2**k`` leaves at a size that is a multiple of ``2**k``; their tree's levels, leaves first.

        The fast path for verifying a whole log: the block's perfect subtree is hashed a
        level at a time and joins the frontier as one node, and the levels it returns give
        the frontier at any size inside the block (:meth:`inside`).
        """
        count = len(leaves)
        if count == 0 or count & (count - 1) or self._size % count:
            raise ValueError("extend_aligned takes 2**k leaves at a multiple of 2**k")
        if set(map(len, leaves)) != {HASH_SIZE}:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        sha256 = _sha256
        levels = [list(leaves)]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([sha256(b"\x01" + a + b).digest() for a, b in zip(below[0::2], below[1::2], strict=True)])
        value, n = levels[-1][0], self._size >> (len(levels) - 1)
        while n & 1:  # merge equal subtrees at the right edge, as append does for one leaf
            value = sha256(b"\x01" + self._hashes.pop() + value).digest()
            n >>= 1
        self._hashes.append(value)
        self._size += count
        return levels

    @staticmethod
    def inside(before: Frontier, levels: Sequence[Sequence[bytes]], offset: int) -> Frontier:
        """The frontier ``offset`` leaves into a block that :meth:`extend_aligned` added to ``before``.

        ``before`` is the frontier as it was before the block (its size a multiple of the
        block's); ``0 < offset < len(levels[0])`` (at the block's end, the frontier itself).
        """
        if not 0 < offset < len(levels[0]):
            raise ValueError("offset is outside the block")
        hashes, at = list(before.hashes), 0
        for level in range(len(levels) - 1, -1, -1):
            if offset >> level & 1:
                hashes.append(levels[level][at >> level])
                at += 1 << level
        return Frontier.restore(before.size + offset, hashes)

    def root(self) -> bytes:
        """The root of the tree of :attr:`size` leaves (RFC 9162 §2.1.1)."""
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = node_hash(left, root)
        return root

    def copy(self) -> Frontier:
        """An independent copy (to extend one while keeping the other)."""
        return Frontier.restore(self._size, self._hashes)
