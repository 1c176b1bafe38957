"""A bounded, deterministic slice of the node's parser fuzzing (SPEC §3.4, §11.1, §11.3).

Every parser a peer reaches in ``node/`` gets inputs from ``tests/fuzz/node_parsers.py``
and may let only typed errors through (most may raise nothing at all);
``tests/fuzz/fuzz_parsers.py`` runs the same targets on 10^5 inputs with the protocol's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz.node_parsers import NODE_TARGETS

SLICE = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize(("name", "strategy", "call"), NODE_TARGETS, ids=[name for name, _, _ in NODE_TARGETS])
def test_only_typed_errors_escape_the_node(
    name: str, strategy: st.SearchStrategy[Any], call: Callable[[Any], None]
) -> None:
    # SPEC §11.1: an undecodable request is answered, never an error of the gRPC library; SPEC §11.3:
    # a batch's envelopes are refusals, never exceptions; SPEC §11.9: a bad statement is an ack.
    @SLICE
    @given(strategy)
    def run(value: Any) -> None:
        call(value)

    run()
