"""The demo command end to end, and the CLI's handling of user mistakes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def intelshare(*args: str, timeout: float = 180, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``subprocess.run`` arguments that run the package as a built wheel installs it, not the source tree."""
    root = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root), str(REPO)], check=True)
    (wheel,) = root.glob("intelshare-*.whl")
    site = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    run = {"cwd": root, "env": {**os.environ, "PYTHONPATH": str(site)}}
    where = subprocess.run(
        [sys.executable, "-c", "import node; print(node.__file__)"], capture_output=True, text=True, check=True, **run
    )
    assert where.stdout.startswith(str(site)), where.stdout  # the wheel's copy, not the source tree's
    return run


def test_demo_from_an_installed_wheel_plays_every_expected_outcome(tmp_path: Path, installed: dict[str, Any]) -> None:
    # The demo's federation file travels as package data (README, "The two commands").
    root = tmp_path / "demo"
    result = intelshare("demo", "--dir", str(root), **installed)
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in (
        "THIRD_PARTY_WITHOUT_CONSENT",
        "CONSENT_NOT_TRANSFERABLE",
        "BAND_ABOVE_CEILING",
        "SENDER_IDENTITY_MISMATCH",
        "KEY_REVOKED",
        "KZ revokes its grant",
        "AZ applied it too, passed on by TR",
        "KZ holds the acknowledgement of every holder",
        "TR's copy is purged at its retention date",
        "ITEM_PURGED RETENTION_EXPIRED",
        "All as expected",
    ):
        assert expected in result.stdout
    assert "NOT as expected" not in result.stdout
    for member in ("TR", "AZ", "KZ", "KG", "UZ"):
        verified = intelshare("audit", "verify", "--dir", str(root), "--member", member)
        assert verified.returncode == 0, verified.stderr
    listed = intelshare("audit", "list", "--dir", str(root), "--member", "TR", "--event", "RESHARE")
    assert listed.returncode == 0
    assert "THIRD_PA" in listed.stdout  # rich may truncate the column, never drop the row


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("inbox", "--dir", "/nonexistent", "--member", "TR"), "no node 'TR'"),
        (("federation", "init", "/nonexistent.toml", "--dir", "/tmp/x"), "no federation file"),
        (("node", "run"), "give --config"),
        (("roster", "revoke-key", "--dir", "/nonexistent", "--member", "UZ"), "not a federation directory"),
        (("roster", "show", "--dir", "/nonexistent"), "/nonexistent/roster.json"),
    ],
)
def test_user_mistakes_give_one_clear_line_and_no_traceback(args: tuple[str, ...], message: str) -> None:
    result = intelshare(*args, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_every_command_has_help() -> None:
    for command in (
        ["--help"],
        ["send", "--help"],
        ["audit", "verify", "--help"],
        ["consent", "grant", "--help"],
        ["consent", "revoke", "--help"],
        ["consent", "onward", "--help"],
        ["agreement", "propose", "--help"],
        ["correct", "--help"],
        ["notices", "--help"],
        ["federation", "init", "--help"],
        ["demo", "--help"],
        ["roster", "--help"],
    ):
        result = intelshare(*command, timeout=60)
        assert result.returncode == 0, command
        assert "Usage" in result.stdout


def test_example_federation_header_runs_as_written_and_names_no_machine_path(tmp_path: Path) -> None:
    # The header's usage line is the CLI's real syntax; its comments name no build machine's path.
    example = REPO / "examples" / "federation.toml"
    header = []
    for line in example.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# "))
    assert not [line for line in header if re.search(r"(^|[\s(])(/|~/)[\w.-]+/", line)]
    (usage,) = [line for line in header if line.startswith("intelshare ")]
    args = [str(tmp_path / "out") if a == "OUT_DIR" else a for a in shlex.split(usage)[1:]]
    done = intelshare(*args, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "roster.json").is_file()


def test_roster_commands_refuse_mistakes_with_their_exit_codes(tmp_path: Path) -> None:
    root = tmp_path / "fed"
    example = Path(__file__).resolve().parents[2] / "examples" / "federation.toml"
    assert intelshare("federation", "init", str(example), "--dir", str(root)).returncode == 0
    unknown = intelshare("roster", "rotate-key", "--dir", str(root), "--member", "XX")
    assert (unknown.returncode, "XX is not a member" in unknown.stderr) == (4, True), unknown.stderr
    twice = intelshare(
        "roster",
        "add-member",
        "--dir",
        str(root),
        "--member",
        "TR",
        "--state",
        "x",
        "--service",
        "y",
        "--marking=SECRET=Z",
    )
    assert (twice.returncode, "already a member" in twice.stderr) == (5, True), twice.stderr
    nobody = intelshare("roster", "revoke-key", "--dir", str(root), "--member", "UZ", "--sign-as", "chair")
    assert (nobody.returncode, "needs 2 signatures" in nobody.stderr) == (5, True), nobody.stderr
    assert "Traceback" not in unknown.stderr + twice.stderr + nobody.stderr
    shown = intelshare("roster", "show", "--dir", str(root))
    assert shown.returncode == 0
    assert "version 1" in shown.stdout


@pytest.mark.parametrize("command", ["show", "add-member", "remove-member", "rotate-key", "revoke-key", "publish"])
def test_every_roster_command_has_help(command: str) -> None:
    from typer.testing import CliRunner

    from node.cli import app

    result = CliRunner().invoke(app, ["roster", command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_demo_follows_a_tightened_agreement_and_narrates_the_refusal(tmp_path: Path) -> None:
    # A trainer lowers KZ–TR's ceilings: the first transfer is refused, as the file says, and
    # the steps that needed the item are skipped with the reason: no abort, no false ✔.
    example = Path(__file__).resolve().parents[2] / "examples" / "federation.toml"
    tight = tmp_path / "tight.toml"
    text = example.read_text(encoding="utf-8")
    loose = 'ceilings = { KZ = "SECRET", TR = "SECRET" }'
    assert loose in text
    tight.write_text(text.replace(loose, 'ceilings = { KZ = "CONFIDENTIAL", TR = "CONFIDENTIAL" }'), encoding="utf-8")
    result = intelshare("demo", "--dir", str(tmp_path / "demo"), "--federation", str(tight))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agreement says no: BAND_ABOVE_CEILING" in result.stdout
    assert "skipped" in result.stdout
    assert "NOT as expected" not in result.stdout
    assert "All as expected" in result.stdout
