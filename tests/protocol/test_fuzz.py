"""A bounded, deterministic slice of the parser fuzzing (SPEC §3.4, §4.4.3, §9.2).

Every parser a peer reaches in ``protocol/`` gets inputs from ``tests/fuzz/parsers.py``
and may let only the protocol's typed errors through; ``tests/fuzz/fuzz_parsers.py``
runs the same targets on 10^5 inputs.
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
from fuzz.parsers import TARGETS

SLICE = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize(("name", "strategy", "call"), TARGETS, ids=[name for name, _, _ in TARGETS])
def test_only_typed_errors_escape(name: str, strategy: st.SearchStrategy[Any], call: Callable[[Any], None]) -> None:
    # SPEC §4.4.3: a payload is parsed or refused with MalformedError, nothing else; SPEC §9.2:
    # ingress turns every bad envelope into a refusal; SPEC §8.6: opening raises only OpenError.
    @SLICE
    @given(strategy)
    def run(value: Any) -> None:
        call(value)

    run()
