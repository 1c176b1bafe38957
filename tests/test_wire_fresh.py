"""node/wire/ must be exactly what proto/generate.py produces from the .proto files."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
WIRE = REPO / "node" / "wire"


def _load_generator() -> ModuleType:
    # proto/ is deliberately not a package, so load the script by path.
    spec = importlib.util.spec_from_file_location("_intelshare_generate", REPO / "proto" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    gen = _load_generator()
    written = gen.generate(tmp_path)
    assert "__init__.py" in written
    assert {"exchange_pb2.py", "exchange_pb2_grpc.py", "desk_pb2.py", "desk_pb2_grpc.py"} <= set(written)
    differing = gen.diff_dirs(tmp_path, WIRE)
    assert differing == [], f"node/wire is stale ({differing}); run: python proto/generate.py"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    gen = _load_generator()
    gen.generate(tmp_path / "a")
    gen.generate(tmp_path / "b")
    assert gen.diff_dirs(tmp_path / "a", tmp_path / "b") == []


def test_generated_code_imports_only_node_wire() -> None:
    bad = re.compile(r"^\s*(from|import)\s+(intelshare|proto)\b", re.MULTILINE)
    for path in sorted(WIRE.glob("*.py*")):
        assert not bad.search(path.read_text(encoding="utf-8")), path.name
    from node.wire import desk_pb2_grpc, exchange_pb2, exchange_pb2_grpc

    assert exchange_pb2.Envelope.__module__ == "node.wire.exchange_pb2"
    assert exchange_pb2.DESCRIPTOR.package == "intelshare.v1"
    assert hasattr(exchange_pb2_grpc, "ExchangeServicer")
    assert hasattr(desk_pb2_grpc, "DeskServicer")
