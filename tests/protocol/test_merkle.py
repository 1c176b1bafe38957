"""RFC 9162 Merkle trees: tree hash, inclusion proofs and their verification (SPEC §4.6).

Checked against the transparency-dev/merkle inclusion-proof vectors (every mutation of
a proof must be refused) and against ``tree_hash`` for every tree size up to 70.
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

from protocol.merkle import inclusion_proofs, leaf_hash, node_hash, root_from_inclusion_proof, tree_hash

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "vectors" / "rfc9162-merkle"

#: The leaves of the vectors (transparency-dev/merkle ``testdata``; also RFC 6962's tests).
TEST_LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]


def _inclusion_files() -> list[Path]:
    if not VECTORS.is_dir():
        pytest.skip(f"RFC 9162 vectors not found at {VECTORS} (outside this workplace)")
    return sorted((VECTORS / "inclusion").rglob("*.json"))


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _accepts(case: dict[str, Any]) -> bool:
    """RFC 9162 §2.1.3.2 verification: the proof leads to exactly the vector's root."""
    proof = [_b64(p) for p in case["proof"] or []]
    root = root_from_inclusion_proof(_b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof)
    return root is not None and root == _b64(case["root"])


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


# --- RFC 9162 vectors ---------------------------------------------------------------------


def test_inclusion_vectors() -> None:
    files = _inclusion_files()
    assert len(files) > 90
    happy = 0
    for path in files:
        case = json.loads(path.read_text())
        assert _accepts(case) is not case["wantErr"], f"{path.relative_to(VECTORS)}: {case['desc']}"
        happy += not case["wantErr"]
    assert happy >= 6


def test_vector_trees_match_tree_hash_and_inclusion_proofs() -> None:
    for path in _inclusion_files():
        if path.name != "happy-path.json" or path.parent.name == "single-entry":
            continue
        case = json.loads(path.read_text())
        leaves = [leaf_hash(leaf) for leaf in TEST_LEAVES[: case["treeSize"]]]
        root, proofs = inclusion_proofs(leaves)
        assert root == tree_hash(leaves) == _b64(case["root"]), path
        assert proofs[case["leafIdx"]] == [_b64(p) for p in case["proof"] or []], path


def test_leaf_hash_of_wrong_length_is_refused() -> None:
    # single-entry/empty-root-and-leaf: an empty "leaf hash" must not match an empty root.
    assert root_from_inclusion_proof(b"", 0, 1, []) is None
    assert root_from_inclusion_proof(b"\x00" * 33, 0, 1, []) is None
    assert root_from_inclusion_proof(b"\x00" * 32, 0, 1, []) == b"\x00" * 32


# --- tree hash and proofs -----------------------------------------------------------------


def test_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"l", b"r") == hashlib.sha256(b"\x01lr").digest()
    # A leaf whose data looks like two child hashes is not that interior node.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(a + b) != node_hash(a, b)


def test_empty_tree() -> None:
    assert tree_hash([]) == hashlib.sha256(b"").digest()
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


# --- properties ---------------------------------------------------------------------------

FAST = settings(deadline=None, database=None, max_examples=200)


@st.composite
def tree_and_leaf(draw: st.DrawFn) -> tuple[list[bytes], int]:
    n = draw(st.integers(min_value=1, max_value=70))
    return _leaves(n), draw(st.integers(min_value=0, max_value=n - 1))


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
    at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=255))
    flipped = bytearray(proof[at])
    flipped[bit // 8] ^= 1 << (bit % 8)
    mutated_proof = [*proof[:at], bytes(flipped), *proof[at + 1 :]]
    assert root_from_inclusion_proof(leaves[index], index, len(leaves), mutated_proof) != root


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
