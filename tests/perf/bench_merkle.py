"""Benchmark: roots, consistency and inclusion proofs of a 1,000,000-leaf audit log (SPEC §11.10.1).

    .venv/bin/python tests/perf/bench_merkle.py [--leaves 1000000] [--repeat 5]

What a node does with ``protocol.merkle`` on a large log, each figure the best of
``--repeat`` runs (the machine is shared):

1. **Verify**: stream every leaf hash once through a ``Frontier`` in chunks of 1,000
   (as rows come from the database) and compare the root. Peak memory is the frontier
   and one chunk, not the log.
2. **Write path**: ``Frontier.append`` per leaf, returning the perfect subtrees it
   completes, as a node would when it stores them in the append transaction.
3. **Serve from stored subtrees**, two layouts: every level stored (one row per
   completed subtree: point reads) and every 8th level stored (one row per 256 leaves,
   ``nodes_from_levels``: bounded range reads). For each: the root at the full size,
   a consistency proof from the last witnessed size (999,000, 500,001 and 1) and an
   inclusion proof for leaves 0, 500,000 and the last; with the number of stored hashes
   read, so a database's cost per read can be put on top.
4. **Verify the proofs** (what a witness or auditor does per checkpoint).

The stored levels are bytearrays in memory standing in for database tables. Not a
pytest module (no ``test_`` prefix); run it directly.
"""

from __future__ import annotations

import argparse
import hashlib
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from functools import partial

from protocol.merkle import (
    Frontier,
    NodeHash,
    consistency_proof,
    inclusion_proof,
    nodes_from_levels,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

HASH = 32
CHUNK = 1000


def leaves_of(n: int) -> bytearray:
    """``n`` distinct leaf hashes, packed (32 MB for a million)."""
    out = bytearray()
    for i in range(n):
        out += hashlib.sha256(b"\x00" + i.to_bytes(8, "big")).digest()
    return out


def chunks(packed: bytearray, n: int) -> Iterator[list[bytes]]:
    for start in range(0, n, CHUNK):
        end = min(start + CHUNK, n)
        yield [bytes(packed[i * HASH : (i + 1) * HASH]) for i in range(start, end)]


def best(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


class Store:
    """Perfect-subtree roots by level, as a database table would hold them; counts reads."""

    def __init__(self, leaves: bytearray, n: int, every: int) -> None:
        self.every = every
        self.levels: dict[int, bytearray] = {0: leaves}
        self.reads = 0
        self.n = n

    def add(self, level: int, index: int, value: bytes) -> None:
        if level % self.every == 0:
            column = self.levels.setdefault(level, bytearray())
            assert len(column) == index * HASH
            column += value

    def point(self, level: int, index: int) -> bytes:
        self.reads += 1
        return bytes(self.levels[level][index * HASH : (index + 1) * HASH])

    def fetch(self, level: int, first: int, count: int) -> Sequence[bytes]:
        self.reads += count
        column = self.levels[level]
        return [bytes(column[i * HASH : (i + 1) * HASH]) for i in range(first, first + count)]

    def node(self) -> NodeHash:
        return self.point if self.every == 1 else nodes_from_levels(self.fetch, self.every)

    def stored(self) -> int:
        return sum(len(column) // HASH for level, column in self.levels.items() if level > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, repeat = args.leaves, args.repeat

    packed = leaves_of(n)
    print(f"log of {n:,} leaves (leaf hashes given; hashing the entries themselves is not counted)")

    # 1. Verify by streaming.
    def stream() -> bytes:
        frontier = Frontier()
        for chunk in chunks(packed, n):
            frontier.extend(chunk)
        return frontier.root()

    tracemalloc.start()
    stream()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    seconds, root = best(min(repeat, 3), stream)
    assert isinstance(root, bytes)
    print(f"  verify: stream all leaves through a Frontier       {seconds:6.3f} s   peak {peak / 1024:,.0f} KiB")

    def stream_hashing_only() -> None:
        for chunk in chunks(packed, n):
            for _ in chunk:
                pass

    seconds_io, _ = best(min(repeat, 3), stream_hashing_only)
    print(f"    of which unpacking the chunks (the 'database')   {seconds_io:6.3f} s")

    # 2. Write path, building both stores.
    stores = {1: Store(packed, n, 1), 8: Store(packed, n, 8)}

    def write() -> None:
        frontier = Frontier()
        for chunk in chunks(packed, n):
            for leaf in chunk:
                for level, index, value in frontier.append(leaf):
                    for store in stores.values():
                        store.add(level, index, value)
        assert frontier.root() == root

    t0 = time.perf_counter()
    write()
    seconds = time.perf_counter() - t0
    print(f"  write path: Frontier.append per leaf (+ storing)   {seconds:6.3f} s   {seconds / n * 1e6:.2f} µs/leaf")

    # 3 and 4. Serving and verifying.
    checks = [(n - 1000, n), (n // 2 + 1, n), (1, n)]
    leaves = [0, n // 2, n - 1]
    for every, store in stores.items():
        node = store.node()
        label = "every level" if every == 1 else f"every {every}th level"
        print(f"  served from {label}: {store.stored():,} stored subtree roots besides the leaves")
        seconds, got = best(repeat, partial(root_hash, n, node))
        store.reads = 0
        root_hash(n, node)
        assert got == root
        print(f"    root at {n:,}                          {seconds * 1e3:8.3f} ms  {store.reads:5d} hashes read")
        for old, new in checks:
            old_root = root_hash(old, node)
            seconds, proof = best(repeat, partial(consistency_proof, old, new, node))
            assert isinstance(proof, list)
            store.reads = 0
            consistency_proof(old, new, node)
            reads = store.reads
            verify_s, _ = best(repeat, partial(verify_consistency, old, new, old_root, root, proof))
            print(
                f"    consistency {old:>9,} -> {new:,}   {seconds * 1e3:8.3f} ms  {reads:5d} hashes read,"
                f" {len(proof):2d} in proof; verify {verify_s * 1e6:6.1f} µs"
            )
        for index in leaves:
            leaf = store.point(0, index)
            seconds, proof = best(repeat, partial(inclusion_proof, index, n, node))
            assert isinstance(proof, list)
            store.reads = 0
            inclusion_proof(index, n, node)
            reads = store.reads
            verify_s, _ = best(repeat, partial(verify_inclusion, leaf, index, n, proof, root))
            print(
                f"    inclusion of leaf {index:>9,}          {seconds * 1e3:8.3f} ms  {reads:5d} hashes read,"
                f" {len(proof):2d} in proof; verify {verify_s * 1e6:6.1f} µs"
            )


if __name__ == "__main__":
    main()
