"""Fuzz every parser a peer reaches in ``protocol/`` and ``node/`` with 10^5 inputs (SPEC §3.4, §4.4.3).

    python tests/fuzz/fuzz_parsers.py [COUNT]

Runs the targets of ``tests/fuzz/parsers.py`` (the protocol's) and ``tests/fuzz/node_parsers.py``
(the node's: the Exchange requests' decoding and conversion, and what they reach) in rounds
of fresh random inputs until COUNT (default 100000) inputs have been tried, then prints the
count per target and in total. Any exception other than the typed errors stops the run with
hypothesis's shrunk failing input. ``tests/protocol/test_fuzz.py`` and ``tests/node/test_fuzz_node.py`` run
bounded slices in the suite.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fuzz.node_parsers import NODE_TARGETS
from fuzz.parsers import TARGETS as PROTOCOL_TARGETS

TARGETS = [*PROTOCOL_TARGETS, *NODE_TARGETS]


def _run(name: str, strategy: Any, call: Any, examples: int, counts: Counter[str]) -> None:
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(value: Any) -> None:
        call(value)
        counts[name] += 1

    run()


def main(total: int) -> int:
    """Run ``total`` inputs spread over the targets; return how many ran."""
    per_round = max(1, math.ceil(total / len(TARGETS) / 4))
    counts: Counter[str] = Counter()
    started = time.monotonic()
    while sum(counts.values()) < total:
        for name, strategy, call in TARGETS:
            left = total - sum(counts.values())
            if left <= 0:
                break

            _run(name, strategy, call, min(per_round, left), counts)
    for name, _, _ in TARGETS:
        print(f"{counts[name]:>8}  {name}")
    ran = sum(counts.values())
    print(f"fuzz_parsers: {ran} inputs in {time.monotonic() - started:.0f} s; only typed errors escaped")
    return ran


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
