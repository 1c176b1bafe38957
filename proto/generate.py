"""Regenerate the Python gRPC/protobuf modules in node/wire/ from proto/intelshare/v1/*.proto.

Usage (from the repository root):
    python proto/generate.py            # rewrite node/wire/
    python proto/generate.py --check    # exit 1 listing files that differ from a fresh run
    python proto/generate.py --out DIR  # write into DIR instead of node/wire/

Output is flat modules (node/wire/<name>_pb2.py, _pb2.pyi, _pb2_grpc.py, __init__.py) whose
cross imports point at node.wire, so nothing imports a top-level ``intelshare`` or ``proto``
package. Same inputs and same grpcio-tools version give byte-identical output.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PROTO_PACKAGE_DIR", "PROTO_ROOT", "WIRE_DIR", "diff_dirs", "generate", "main"]

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
PROTO_PACKAGE_DIR = PROTO_ROOT / "intelshare" / "v1"
WIRE_DIR = REPO_ROOT / "node" / "wire"
WIRE_MODULE = "node.wire"

# Generated-code markers that name the proto package as a Python package.
_IMPORT_RE = re.compile(r"^from intelshare\.v1 import ", re.MULTILINE)
_MODULE_NAME_RE = re.compile(r"'intelshare\.v1\.(\w+_pb2)'")
_PATH_IN_MSG_RE = re.compile(r"intelshare/v1/(\w+_pb2_grpc\.py)")
_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _init_text() -> str:
    # Recording the tool versions makes --check fail loudly on a toolchain mismatch
    # instead of producing a confusing diff deep inside serialized descriptors.
    tools = importlib.metadata.version("grpcio-tools")
    return (
        '"""Generated protobuf/gRPC modules for package intelshare.v1.\n\n'
        "Do not edit: regenerate with `python proto/generate.py`.\n"
        '"""\n\n'
        f'GRPCIO_TOOLS_VERSION = "{tools}"\n'
    )


def _rewrite(name: str, text: str) -> str:
    text = _IMPORT_RE.sub(f"from {WIRE_MODULE} import ", text)
    # The module name given to the protobuf builder becomes each class's __module__.
    text = _MODULE_NAME_RE.sub(lambda m: f"'{WIRE_MODULE}.{m.group(1)}'", text)
    text = _PATH_IN_MSG_RE.sub(lambda m: f"node/wire/{m.group(1)}", text)
    if re.search(r"^\s*(from|import)\s+(intelshare|proto)\b", text, re.MULTILINE):
        raise RuntimeError(f"{name}: unrewritten import of intelshare/proto package")
    return text


def generate(out_dir: Path) -> list[str]:
    """Generate all modules into out_dir (created if missing); return the file names written."""
    from grpc_tools import protoc  # imported late so --help works without grpcio-tools

    protos = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_PACKAGE_DIR.glob("*.proto"))
    if not protos:
        raise RuntimeError(f"no .proto files under {PROTO_PACKAGE_DIR}")
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="intelshare-protoc-") as raw:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={raw}",
            f"--pyi_out={raw}",
            f"--grpc_python_out={raw}",
            *protos,
        ]
        rc = protoc.main(args)
        if rc != 0:
            raise RuntimeError(f"protoc failed with exit code {rc}")
        produced = sorted((Path(raw) / "intelshare" / "v1").iterdir())
        written: list[str] = []
        for src in produced:
            if not src.name.endswith(_SUFFIXES):
                continue
            text = _rewrite(src.name, src.read_text(encoding="utf-8"))
            (out_dir / src.name).write_bytes(text.encode("utf-8"))
            written.append(src.name)
    (out_dir / "__init__.py").write_bytes(_init_text().encode("utf-8"))
    written.append("__init__.py")
    return sorted(written)


def _managed(directory: Path) -> set[str]:
    if not directory.is_dir():
        return set()
    return {
        p.name for p in directory.iterdir() if p.is_file() and (p.name == "__init__.py" or p.name.endswith(_SUFFIXES))
    }


def diff_dirs(expected: Path, actual: Path) -> list[str]:
    """Names of generated files that are missing, stale or different in actual."""
    names = _managed(expected) | _managed(actual)
    return sorted(
        n
        for n in names
        if not (expected / n).is_file()
        or not (actual / n).is_file()
        or (expected / n).read_bytes() != (actual / n).read_bytes()
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare a fresh run with node/wire/ and report")
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    ns = parser.parse_args(argv)
    target: Path = ns.out if ns.out is not None else WIRE_DIR
    if ns.check:
        with tempfile.TemporaryDirectory(prefix="intelshare-wire-") as tmp:
            generate(Path(tmp))
            differing = diff_dirs(Path(tmp), target)
        if differing:
            print(f"generated code in {target} is stale; run: python proto/generate.py")
            for name in differing:
                print(f"  differs: {name}")
            return 1
        return 0
    # Drop stale modules (e.g. from a removed .proto) so the directory mirrors the protos.
    for name in _managed(target):
        (target / name).unlink()
    for name in generate(target):
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
