"""RFC 9162 Merkle trees: tree hash, inclusion and consistency proofs (SPEC §4.6, §11.10.1).

Checked against the transparency-dev/merkle inclusion and consistency proof vectors
vendored in ``tests/vectors/rfc9162-merkle`` (every mutation of a proof must be refused),
and the proof producers against the one-pass ``inclusion_proofs`` and the verifiers for
every tree size up to 70.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ProofError, RemoteProtocolError
from protocol.merkle import (
    EMPTY_ROOT,
    Frontier,
    NodeHash,
    consistency_proof,
    inclusion_proof,
    inclusion_proofs,
    leaf_hash,
    memory_nodes,
    node_hash,
    nodes_from_levels,
    root_from_inclusion_proof,
    root_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc9162-merkle"

#: The leaves of the vectors (transparency-dev/merkle ``testdata``; also RFC 6962's tests).
TEST_LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in case["proof"] or []]


def _inclusion_accepted(case: dict[str, Any]) -> bool:
    """RFC 9162 §2.1.3.2 verification, both forms: the root a proof leads to, and verify_inclusion."""
    proof = _proof(case)
    root = root_from_inclusion_proof(_b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof)
    try:
        verify_inclusion(_b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, _b64(case["root"]))
    except ProofError:
        verified = False
    else:
        verified = True
    assert verified is (root is not None and root == _b64(case["root"]))
    return verified


def _consistency_accepted(case: dict[str, Any]) -> bool:
    try:
        verify_consistency(case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), _proof(case))
    except ProofError:
        return False
    return True


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _bounded(leaves: list[bytes], tree_size: int, calls: list[tuple[int, int]]) -> NodeHash:
    """Nodes of ``leaves`` that fail for any subtree not complete within ``tree_size``; records calls."""
    nodes = memory_nodes(leaves)

    def node(level: int, index: int) -> bytes:
        assert (index + 1) << level <= tree_size, (level, index, tree_size)
        calls.append((level, index))
        return nodes(level, index)

    return node


# --- RFC 9162 vectors ---------------------------------------------------------------------


def test_vectors_are_vendored_with_their_licence() -> None:
    assert (VECTORS / "LICENSE").read_text().startswith("\n                                 Apache License")
    assert "transparency-dev/merkle" in (VECTORS / "README.md").read_text()


def test_inclusion_vectors() -> None:
    files = _files("inclusion")
    assert len(files) == 98
    happy = 0
    for path in files:
        case = json.loads(path.read_text())
        assert _inclusion_accepted(case) is not case["wantErr"], f"{path.relative_to(VECTORS)}: {case['desc']}"
        happy += not case["wantErr"]
    assert happy == 6


def test_consistency_vectors() -> None:
    files = _files("consistency")
    assert len(files) == 98
    happy = 0
    for path in files:
        case = json.loads(path.read_text())
        assert _consistency_accepted(case) is not case["wantErr"], f"{path.relative_to(VECTORS)}: {case['desc']}"
        happy += not case["wantErr"]
    assert happy == 6


def test_vector_trees_match_tree_hash_and_inclusion_proofs() -> None:
    checked = 0
    for path in _files("inclusion"):
        if path.name != "happy-path.json" or path.parent.name == "single-entry":
            continue
        case = json.loads(path.read_text())
        leaves = [leaf_hash(leaf) for leaf in TEST_LEAVES[: case["treeSize"]]]
        root, proofs = inclusion_proofs(leaves)
        assert root == tree_hash(leaves) == root_hash(len(leaves), memory_nodes(leaves)) == _b64(case["root"]), path
        assert proofs[case["leafIdx"]] == inclusion_proof(case["leafIdx"], len(leaves), memory_nodes(leaves))
        assert proofs[case["leafIdx"]] == _proof(case), path
        checked += 1
    assert checked == 5


def test_vector_trees_match_consistency_proofs() -> None:
    checked = 0
    for path in _files("consistency"):
        case = json.loads(path.read_text())
        if path.name != "happy-path.json" or case["size1"] == case["size2"]:
            continue
        leaves = [leaf_hash(leaf) for leaf in TEST_LEAVES[: case["size2"]]]
        assert tree_hash(leaves[: case["size1"]]) == _b64(case["root1"]), path
        assert tree_hash(leaves) == _b64(case["root2"]), path
        assert consistency_proof(case["size1"], case["size2"], memory_nodes(leaves)) == _proof(case), path
        checked += 1
    assert checked == 4


def test_leaf_hash_of_wrong_length_is_refused() -> None:
    # single-entry/empty-root-and-leaf: an empty "leaf hash" must not match an empty root.
    assert root_from_inclusion_proof(b"", 0, 1, []) is None
    assert root_from_inclusion_proof(b"\x00" * 33, 0, 1, []) is None
    assert root_from_inclusion_proof(b"\x00" * 32, 0, 1, []) == b"\x00" * 32


# --- tree hash and inclusion proofs -------------------------------------------------------


def test_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"l", b"r") == hashlib.sha256(b"\x01lr").digest()
    # A leaf whose data looks like two child hashes is not that interior node.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(a + b) != node_hash(a, b)


def test_empty_tree() -> None:
    assert tree_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert root_hash(0, memory_nodes([])) == EMPTY_ROOT
    with pytest.raises(ValueError, match="no leaves"):
        inclusion_proofs([])
    assert root_from_inclusion_proof(leaf_hash(b""), 0, 0, []) is None


def test_single_leaf_tree() -> None:
    leaf = leaf_hash(b"only")
    assert inclusion_proofs([leaf]) == (leaf, [[]])
    assert tree_hash([leaf]) == leaf
    assert root_from_inclusion_proof(leaf, 0, 1, []) == leaf


def test_every_proof_of_every_tree_up_to_70_verifies() -> None:
    for n in range(1, 71):
        leaves = _leaves(n)
        root, proofs = inclusion_proofs(leaves)
        assert root == tree_hash(leaves), n
        assert len(proofs) == n
        for index, proof in enumerate(proofs):
            assert len(proof) <= (n - 1).bit_length()
            assert root_from_inclusion_proof(leaves[index], index, n, proof) == root, (n, index)
            verify_inclusion(leaves[index], index, n, proof, root)


def test_index_out_of_range() -> None:
    leaves = _leaves(3)
    _, proofs = inclusion_proofs(leaves)
    assert root_from_inclusion_proof(leaves[0], -1, 3, proofs[0]) is None
    assert root_from_inclusion_proof(leaves[0], 3, 3, proofs[0]) is None


def test_proof_too_long_or_too_short() -> None:
    leaves = _leaves(5)
    root, proofs = inclusion_proofs(leaves)
    assert root_from_inclusion_proof(leaves[1], 1, 5, [*proofs[1], root]) is None
    assert root_from_inclusion_proof(leaves[1], 1, 5, proofs[1][:-1]) is None
    assert root_from_inclusion_proof(leaves[1], 1, 5, [*proofs[1][:-1], proofs[1][-1][:31]]) is None


def test_proof_alone_does_not_bind_the_tree_size() -> None:
    # The last leaf of a 3-leaf tree has the same path shape as leaf 1 of a 2-leaf tree, so
    # the same proof yields the same root under another (index, size) claim. This is why a
    # batch signature signs the tree size with the root (SPEC §4.6).
    leaves = _leaves(2)
    root, proofs = inclusion_proofs(leaves)
    assert root_from_inclusion_proof(leaves[1], 2, 3, proofs[1]) == root


def test_verify_inclusion_says_what_failed() -> None:
    leaves = _leaves(6)
    root, proofs = inclusion_proofs(leaves)
    with pytest.raises(ProofError, match="leaf 2 of a 6-leaf tree is malformed"):
        verify_inclusion(leaves[2], 2, 6, proofs[2][:-1], root)
    with pytest.raises(ProofError, match="leaf 2 of a 6-leaf tree leads to another root"):
        verify_inclusion(leaves[3], 2, 6, proofs[2], root)
    assert issubclass(ProofError, RemoteProtocolError)


# --- consistency proofs -------------------------------------------------------------------


def test_every_consistency_proof_of_every_tree_up_to_40_verifies() -> None:
    for n in range(1, 41):
        leaves = _leaves(n)
        nodes = memory_nodes(leaves)
        for m in range(1, n + 1):
            proof = consistency_proof(m, n, nodes)
            assert len(proof) <= (n - 1).bit_length() + 1, (m, n)
            verify_consistency(m, n, tree_hash(leaves[:m]), tree_hash(leaves), proof)


def test_consistency_proof_from_nothing_or_to_itself_is_empty() -> None:
    nodes = memory_nodes(_leaves(5))
    assert consistency_proof(0, 5, nodes) == []
    assert consistency_proof(5, 5, nodes) == []


def test_verify_consistency_says_what_failed() -> None:
    leaves = _leaves(7)
    old, new = tree_hash(leaves[:3]), tree_hash(leaves)
    proof = consistency_proof(3, 7, memory_nodes(leaves))
    cases: list[tuple[tuple[int, int, bytes, bytes, list[bytes]], str]] = [
        ((0, 7, EMPTY_ROOT, new, []), "0 < old <= new"),
        ((7, 3, new, old, proof), "0 < old <= new"),
        ((7, 7, new, new, proof), "equal sizes need an empty proof"),
        ((7, 7, new, old, []), "equal sizes, different roots"),
        ((3, 7, old, new, []), "empty proof"),
        ((3, 7, old, new, [*proof[:-1], proof[-1][:31]]), "not 32 bytes"),
        ((3, 7, old, new, [*proof, proof[0]]), "proof too long"),
        ((3, 7, old, new, proof[:-1]), "proof too short"),
        ((3, 7, new, new, proof), "does not lead to the old root"),
        ((3, 7, old, old, proof), "does not lead to the new root"),
    ]
    for args, message in cases:
        with pytest.raises(ProofError, match=message):
            verify_consistency(*args)
    verify_consistency(3, 7, old, new, proof)
    verify_consistency(7, 7, new, new, [])


def test_a_consistency_proof_is_for_one_pair_of_sizes() -> None:
    leaves = _leaves(13)
    proof = consistency_proof(5, 13, memory_nodes(leaves))
    for m, n in ((4, 13), (6, 13), (5, 12), (5, 14)):
        with pytest.raises(ProofError):
            verify_consistency(m, n, tree_hash(leaves[:m]), tree_hash(_leaves(n)), proof)


def test_a_fork_has_no_consistency_proof() -> None:
    # A log that rewrote leaf 2 after publishing its 4-leaf root cannot prove the new tree
    # extends the old one: the honest proof of the forked tree leads to another old root.
    leaves = _leaves(8)
    forked = [*leaves[:2], leaf_hash(b"rewritten"), *leaves[3:]]
    proof = consistency_proof(4, 8, memory_nodes(forked))
    with pytest.raises(ProofError, match=r"does not lead to the (old|new) root"):
        verify_consistency(4, 8, tree_hash(leaves[:4]), tree_hash(forked), proof)


def test_producers_refuse_impossible_requests() -> None:
    nodes = memory_nodes(_leaves(4))
    with pytest.raises(ValueError, match="not in a tree of 4"):
        inclusion_proof(4, 4, nodes)
    with pytest.raises(ValueError, match="not in a tree of 4"):
        inclusion_proof(-1, 4, nodes)
    with pytest.raises(ValueError, match="from 5 to 4"):
        consistency_proof(5, 4, nodes)
    with pytest.raises(ValueError, match="not negative"):
        root_hash(-1, nodes)


# --- producing proofs from stored subtrees ------------------------------------------------


def test_producers_ask_only_for_complete_subtrees_and_few_of_them() -> None:
    leaves = _leaves(1000)
    height = (1000 - 1).bit_length()
    for size in (1, 2, 3, 511, 512, 513, 999, 1000):
        calls: list[tuple[int, int]] = []
        node = _bounded(leaves, size, calls)
        assert root_hash(size, node) == tree_hash(leaves[:size])
        assert len(calls) == size.bit_count()
        for index in {0, size // 3, size - 1}:
            calls.clear()
            assert inclusion_proof(index, size, node) == inclusion_proofs(leaves[:size])[1][index]
            assert len(calls) <= 2 * height
        for old in {1, size // 2 or 1, size - 1 or 1}:
            calls.clear()
            verify_consistency(
                old, size, tree_hash(leaves[:old]), tree_hash(leaves[:size]), consistency_proof(old, size, node)
            )
            assert len(calls) <= 2 * height


def test_a_node_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match=r"node\(0, 2\) gave 31 bytes"):
        root_hash(3, lambda level, index: b"\x00" * (31 if index == 2 else 32))


def test_memory_nodes_refuse_incomplete_subtrees() -> None:
    nodes = memory_nodes(_leaves(5))
    assert nodes(2, 0) == tree_hash(_leaves(4))
    for level, index in ((1, 2), (3, 0), (-1, 0), (0, -1)):
        with pytest.raises(ValueError, match="no complete subtree"):
            nodes(level, index)


@pytest.mark.parametrize("every", [1, 2, 3, 8])
def test_nodes_from_every_kth_level_match_the_tree(every: int) -> None:
    leaves = _leaves(70)
    nodes = memory_nodes(leaves)
    stored = {(level, index): nodes(level, index) for level in range(0, 7, every) for index in range(70 >> level)}
    reads: list[int] = []

    def fetch(level: int, first: int, count: int) -> list[bytes]:
        assert level % every == 0
        reads.append(count)
        return [stored[level, index] for index in range(first, first + count)]

    sparse = nodes_from_levels(fetch, every)
    for level in range(7):
        for index in range(70 >> level):
            assert sparse(level, index) == nodes(level, index), (level, index)
    # A subtree d levels above a stored level costs 2**d stored hashes; here d < every and d <= 6.
    assert max(reads) == min(1 << (every - 1), 64)


def test_nodes_from_levels_refuse_a_short_read_and_a_bad_stride() -> None:
    with pytest.raises(ValueError, match="store gave 1 of 2 hashes"):
        nodes_from_levels(lambda level, first, count: [b"\x00" * 32], 8)(1, 0)
    with pytest.raises(ValueError, match="at least 1"):
        nodes_from_levels(lambda level, first, count: [], 0)


# --- the frontier -------------------------------------------------------------------------


def test_frontier_root_and_completed_subtrees_match_the_tree() -> None:
    leaves = _leaves(70)
    nodes = memory_nodes(leaves)
    frontier = Frontier()
    assert (frontier.size, frontier.hashes, frontier.root()) == (0, (), EMPTY_ROOT)
    completed: list[tuple[int, int, bytes]] = []
    for n, leaf in enumerate(leaves, start=1):
        completed.extend(frontier.append(leaf))
        assert frontier.size == n
        assert frontier.root() == tree_hash(leaves[:n])
        assert frontier.hashes == Frontier.from_nodes(n, nodes).hashes
    # Every complete subtree above the leaves, exactly once.
    expected = {(level, index) for level in range(1, 7) for index in range(70 >> level)}
    assert sorted((level, index) for level, index, _ in completed) == sorted(expected)
    assert all(root == nodes(level, index) for level, index, root in completed)


def test_frontier_extend_equals_append_and_copies_are_independent() -> None:
    leaves = _leaves(300)
    one, many = Frontier(), Frontier()
    for leaf in leaves[:200]:
        one.append(leaf)
    many.extend(leaves[:200])
    assert (one.size, one.hashes) == (many.size, many.hashes)
    later = many.copy()
    later.extend(leaves[200:])
    assert many.size == 200
    assert later.root() == tree_hash(leaves)
    restored = Frontier.restore(many.size, many.hashes)
    restored.extend(leaves[200:])
    assert restored.root() == later.root()


def test_frontier_refuses_a_leaf_of_the_wrong_length() -> None:
    frontier = Frontier()
    with pytest.raises(ValueError, match="32 bytes"):
        frontier.append(b"short")
    leaf = leaf_hash(b"a")
    with pytest.raises(ValueError, match="32 bytes"):
        frontier.extend([leaf, b"short", leaf])
    # The leaves before the bad one stay appended; the frontier is still consistent.
    assert (frontier.size, frontier.root()) == (1, leaf)


def test_frontier_restore_checks_its_shape() -> None:
    leaf = leaf_hash(b"a")
    with pytest.raises(ValueError, match="has 2 hashes"):
        Frontier.restore(3, [leaf])
    with pytest.raises(ValueError, match="has 0 hashes"):
        Frontier.restore(-1, [])
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier.restore(1, [b"short"])
    with pytest.raises(ValueError, match="not negative"):
        Frontier.from_nodes(-1, memory_nodes([]))


# --- properties ---------------------------------------------------------------------------

FAST = settings(deadline=None, database=None, max_examples=200)


@st.composite
def tree_and_leaf(draw: st.DrawFn) -> tuple[list[bytes], int]:
    n = draw(st.integers(min_value=1, max_value=70))
    return _leaves(n), draw(st.integers(min_value=0, max_value=n - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[list[bytes], int]:
    n = draw(st.integers(min_value=2, max_value=70))
    return _leaves(n), draw(st.integers(min_value=1, max_value=n - 1))


def _flip(proof: list[bytes], data: st.DataObject) -> list[bytes]:
    at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=255))
    flipped = bytearray(proof[at])
    flipped[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:at], bytes(flipped), *proof[at + 1 :]]


@FAST
@given(tree_and_leaf(), st.data())
def test_flipping_any_bit_of_a_proof_fails(tree: tuple[list[bytes], int], data: st.DataObject) -> None:
    leaves, index = tree
    root, proofs = inclusion_proofs(leaves)
    proof = proofs[index]
    if not proof:  # a single-leaf tree has nothing to flip: flip the leaf instead
        mutated = bytes([leaves[0][0] ^ 1]) + leaves[0][1:]
        assert root_from_inclusion_proof(mutated, 0, 1, proof) != root
        return
    assert root_from_inclusion_proof(leaves[index], index, len(leaves), _flip(proof, data)) != root


@FAST
@given(tree_and_leaf(), st.data())
def test_changing_the_index_fails(tree: tuple[list[bytes], int], data: st.DataObject) -> None:
    leaves, index = tree
    root, proofs = inclusion_proofs(leaves)
    other = data.draw(st.integers(min_value=-1, max_value=len(leaves)).filter(lambda i: i != index))
    assert root_from_inclusion_proof(leaves[index], other, len(leaves), proofs[index]) != root


@FAST
@given(tree_and_leaf(), st.integers(min_value=0, max_value=140))
def test_a_proof_does_not_verify_against_a_tree_of_another_size(tree: tuple[list[bytes], int], size: int) -> None:
    # The verifier trusts a (size, root) pair; the tree of the same leaves at any other size
    # has another root, and the proof never leads to it.
    leaves, index = tree
    if size == len(leaves):
        size += 1
    _, proofs = inclusion_proofs(leaves)
    other_root = tree_hash(_leaves(size))
    assert root_from_inclusion_proof(leaves[index], index, size, proofs[index]) != other_root


@FAST
@given(tree_and_leaf(), st.data())
def test_another_leaf_fails(tree: tuple[list[bytes], int], data: st.DataObject) -> None:
    leaves, index = tree
    root, proofs = inclusion_proofs(leaves)
    other = data.draw(st.binary(min_size=32, max_size=32).filter(lambda b: b != leaves[index]))
    assert root_from_inclusion_proof(other, index, len(leaves), proofs[index]) != root


@FAST
@given(two_sizes(), st.data())
def test_flipping_any_bit_of_a_consistency_proof_fails(sizes: tuple[list[bytes], int], data: st.DataObject) -> None:
    leaves, old = sizes
    proof = consistency_proof(old, len(leaves), memory_nodes(leaves))
    with pytest.raises(ProofError):
        verify_consistency(old, len(leaves), tree_hash(leaves[:old]), tree_hash(leaves), _flip(proof, data))


@FAST
@given(two_sizes(), st.data())
def test_a_changed_leaf_breaks_consistency(sizes: tuple[list[bytes], int], data: st.DataObject) -> None:
    # Whichever leaf of the old tree a log rewrites, no proof joins the old root to the new tree.
    leaves, old = sizes
    at = data.draw(st.integers(min_value=0, max_value=old - 1))
    forked = [*leaves[:at], leaf_hash(b"forged"), *leaves[at + 1 :]]
    proof = consistency_proof(old, len(leaves), memory_nodes(forked))
    with pytest.raises(ProofError):
        verify_consistency(old, len(leaves), tree_hash(leaves[:old]), tree_hash(forked), proof)


@settings(max_examples=60, deadline=None)
@given(blocks=st.lists(st.sampled_from([1, 2, 4, 8, 16]), min_size=1, max_size=6), data=st.data())
def test_frontier_extend_aligned_equals_extend_and_sees_inside_each_block(
    blocks: list[int], data: st.DataObject
) -> None:
    # SPEC §11.10.1: a block of 2**k leaves hashed a level at a time is the same tree.
    blocks = sorted(blocks, reverse=True)  # each block then starts at a multiple of its size
    leaves = _leaves(sum(blocks))
    aligned, plain, at = Frontier(), Frontier(), 0
    for block in blocks:
        chunk = leaves[at : at + block]
        before = aligned.copy()
        levels = aligned.extend_aligned(chunk)
        if block > 1:
            offset = data.draw(st.integers(1, block - 1))
            assert Frontier.inside(before, levels, offset).root() == tree_hash(leaves[: at + offset])
        plain.extend(chunk)
        at += block
        assert (aligned.size, aligned.hashes) == (plain.size, plain.hashes)
    assert aligned.root() == tree_hash(leaves)


def test_frontier_extend_aligned_refuses_a_misaligned_block() -> None:
    leaves = _leaves(8)
    frontier = Frontier()
    frontier.extend(leaves[:2])
    with pytest.raises(ValueError, match="multiple of"):
        frontier.extend_aligned(leaves[2:6])  # 4 leaves at size 2
    with pytest.raises(ValueError, match="multiple of"):
        frontier.extend_aligned(leaves[2:5])  # not a power of two
    with pytest.raises(ValueError, match="32 bytes"):
        frontier.extend_aligned([leaves[2], b"short"])
    levels = Frontier().extend_aligned(leaves[:4])
    with pytest.raises(ValueError, match="outside the block"):
        Frontier.inside(Frontier(), levels, 4)
