"""The shape of ``node/``: imports run one way through the layers, no circles, no giant modules.

A short AST walk (every ``import``, also inside functions) instead of a tool: the rules
are few and the test says exactly which import broke which one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

NODE = Path(__file__).resolve().parents[2] / "node"

#: Lowest first. A module may import its own layer and the ones below, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("node.wire", "node.errors", "node.lifecycle", "node.codec", "node.pki", "node.transport"),
    ("node.store", "node.config", "node.audit"),
    ("node.services",),
    ("node.rpc",),
    ("node.runtime",),
    (
        "node.client",
        "node.federation",
        "node.secretariat",
        "node.harness",
        "node.demo",
        "node.demo_audit",
        "node.demo_referee",
        "node.demo_play",
        "node.demo_roster",
        "node.insider",
        "node.peers",
        "node.cli",
        "node.migrations",
        "node.console",
    ),
)
#: What a node does is plain functions over a session: no gRPC, no asyncio, below the servicers.
NO_IO_FRAMEWORKS = ("node.store", "node.config", "node.audit", "node.services")
MAX_LINES = 500
#: Generated code and migrations are not held to the line limit.
EXEMPT = ("node.wire", "node.migrations")


def module_name(path: Path) -> str:
    parts = path.relative_to(NODE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(NODE.rglob("*.py"))}


ALL = modules()


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file, resolved to a module of the tree when it is one."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield node.lineno, candidate if candidate in ALL else node.module


def layer_of(module: str) -> int | None:
    for rank, layer in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in layer):
            return rank
    return None


def graph() -> dict[str, set[str]]:
    return {name: {m for _, m in imports(path) if m in ALL and m != name} for name, path in ALL.items()}


def test_every_module_has_a_layer() -> None:
    assert [name for name in ALL if name != "node" and layer_of(name) is None] == []


@pytest.mark.parametrize("name", sorted(n for n in ALL if n != "node"))
def test_imports_run_down_the_layers(name: str) -> None:
    rank = layer_of(name)
    assert rank is not None
    upward = [
        f"{ALL[name].name}:{line} imports {target}"
        for line, target in imports(ALL[name])
        if (target_rank := layer_of(target)) is not None and target_rank > rank
    ]
    assert upward == []


@pytest.mark.parametrize("name", sorted(n for n in ALL if n.startswith(NO_IO_FRAMEWORKS)))
def test_services_and_below_use_no_grpc_or_asyncio(name: str) -> None:
    found = [
        f"line {line}: {target}"
        for line, target in imports(ALL[name])
        if target.split(".")[0] in ("grpc", "asyncio") or target.startswith(("node.rpc", "node.runtime"))
    ]
    assert found == []


def test_no_import_circle_in_node() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(name: str) -> None:  # Tarjan's strongly connected components
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        for target in edges[name]:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    assert circles == []


@pytest.mark.parametrize("name", sorted(n for n in ALL if not n.startswith(EXEMPT)))
def test_no_module_past_the_line_limit(name: str) -> None:
    lines = len(ALL[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{ALL[name]} has {lines} lines"


def test_the_checks_see_a_known_upward_import(tmp_path: Path) -> None:
    """The walk finds a function-level import: the one way the rules could be dodged."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from node.runtime.node import Node\n", encoding="utf-8")
    assert list(imports(probe)) == [(2, "node.runtime.node")]
    assert layer_of("node.runtime.node") == 4
