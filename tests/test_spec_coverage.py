"""Every section of SPEC.md that states a MUST or MUST NOT is cited by a test.

A test cites a section with a comment inside its body, ``# SPEC §9.2.9`` (several sections
may follow one ``SPEC``: ``# SPEC §9.2.9, §9.3.10``). A citation names the section whose
text holds the requirement, not a parent or a child. Adding a MUST to a section that no
test cites makes ``test_every_section_with_a_must_is_cited`` fail and name it.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "protocol" / "SPEC.md"

_HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ")
_MUST = re.compile(r"\bMUST(?: NOT)?\b")
_CITATION = re.compile(r"\bSPEC\s+((?:§\d+(?:\.\d+)*[\s,;/and()a-z\-0-9.]*)+)")
_SECTION = re.compile(r"§(\d+(?:\.\d+)*)")


def musts_by_section(spec: str) -> Counter[str]:
    """How many MUST / MUST NOT each numbered section states (BCP 14's own list excluded)."""
    counts: Counter[str] = Counter()
    section: str | None = None
    for line in spec.splitlines():
        heading = _HEADING.match(line)
        if heading:
            section = heading.group(1)
            continue
        if section is None or section == "2":  # §2 defines the key words, it does not use them
            continue
        counts[section] += len(_MUST.findall(line))
    return +counts


def citations(source: str) -> Counter[str]:
    """Sections cited by ``# SPEC §x.y`` comments inside the test functions of one file."""
    tree = ast.parse(source)
    spans = [
        (node.lineno, node.end_lineno or node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    ]
    cited: Counter[str] = Counter()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        line = token.start[0]
        if not any(first <= line <= last for first, last in spans):
            continue
        for match in _CITATION.finditer(token.string):
            cited.update(_SECTION.findall(match.group(1)))
    return cited


def cited_sections(root: Path) -> Counter[str]:
    """Every citation in the test files under ``root``."""
    total: Counter[str] = Counter()
    for path in sorted(root.rglob("test_*.py")):
        total.update(citations(path.read_text(encoding="utf-8")))
    return total


def uncited(spec: str, cited: Counter[str]) -> list[str]:
    """Sections with a MUST that no test cites, in SPEC order."""
    return [section for section in musts_by_section(spec) if section not in cited]


def test_every_section_with_a_must_is_cited() -> None:
    # SPEC §2: MUST and MUST NOT are requirements; each section stating one has a test.
    missing = uncited(SPEC.read_text(encoding="utf-8"), cited_sections(ROOT / "tests"))
    assert not missing, f"sections with a MUST that no test cites: {', '.join('§' + s for s in missing)}"


def test_citations_name_sections_that_exist() -> None:
    headings = {m.group(1) for line in SPEC.read_text(encoding="utf-8").splitlines() if (m := _HEADING.match(line))}
    unknown = sorted(set(cited_sections(ROOT / "tests")) - headings)
    assert not unknown, f"tests cite sections SPEC.md does not have: {', '.join(unknown)}"


# --- the checker itself --------------------------------------------------------------------------

_SPEC_SAMPLE = """\
## 2. Terminology

The key words "MUST" and "MUST NOT" are to be interpreted as in BCP 14.

### 4.1 Statements

A verifier MUST check signatures. A signer MUST NOT reuse nonces.

### 4.2 Other

Nothing required here.

#### 4.2.1 Deeper

A parser MUST refuse duplicates.
"""


def test_checker_counts_musts_per_section() -> None:
    assert musts_by_section(_SPEC_SAMPLE) == Counter({"4.1": 2, "4.2.1": 1})


def test_checker_finds_only_comments_inside_tests() -> None:
    source = '''
# SPEC §4.1 (outside any test: not a citation)
def helper() -> None:
    pass  # SPEC §4.1


def test_one() -> None:
    # SPEC §4.2.1, §4.1
    assert True  # see SPEC §4.2 and the rest

def test_two() -> None:
    """Docstrings are not comments: SPEC §9.9."""
    assert "# SPEC §9.9" != ""
'''
    assert citations(source) == Counter({"4.2.1": 1, "4.1": 1, "4.2": 1})


def test_checker_names_an_uncited_section() -> None:
    assert uncited(_SPEC_SAMPLE, Counter({"4.1": 1})) == ["4.2.1"]
    assert uncited(_SPEC_SAMPLE, Counter({"4.1": 1, "4.2.1": 1})) == []
    # A citation of a parent or a child does not cover the section itself.
    assert uncited(_SPEC_SAMPLE, Counter({"4": 1, "4.2": 1, "4.1.1": 1})) == ["4.1", "4.2.1"]
