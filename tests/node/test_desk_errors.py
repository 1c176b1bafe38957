"""The desk answers each kind of failed request with its own status, and the CLI with its own exit code.

A real KZ and TR node over their unix-socket desks (SPEC §11.8); the README lists the exit
codes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.cli.base import ExitCode
from node.client import DeskClient
from node.errors import (
    FailedPreconditionError,
    InvalidRequestError,
    NotAuthenticatedError,
    NotFoundError,
    PermissionDeniedError,
)
from node.harness import LocalFederation, eventually, make_label
from protocol.classification import Band
from protocol.item import ReportTemplate

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "federation.toml"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    federation = LocalFederation.create(EXAMPLE, tmp_path_factory.mktemp("desk") / "fed", now=datetime.now(UTC))
    with federation.running(["KZ", "TR"]):
        yield federation


@pytest.fixture
def kz(fed: LocalFederation) -> Iterator[DeskClient]:
    with fed.desk("KZ") as desk:
        yield desk


def intelshare(fed: LocalFederation, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "node.cli", *args, "--dir", str(fed.root)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_unknown_item_is_not_found(kz: DeskClient) -> None:
    with pytest.raises(NotFoundError, match="holds no item"):
        kz.read("0" * 32)


def test_originating_for_another_member_is_permission_denied(fed: LocalFederation, kz: DeskClient) -> None:
    label = make_label(fed.roster, "TR", band=Band.RESTRICTED, releasable_to=["KZ"])
    report = ReportTemplate(title="t", summary="s", body="b", assessment="a", grading=label.grading)
    with pytest.raises(PermissionDeniedError, match="cannot originate items for TR"):
        kz.submit(label, report, ["TR"])


def test_unknown_filter_value_is_invalid(kz: DeskClient) -> None:
    with pytest.raises(InvalidRequestError, match="unknown outbox state 'lost'"):
        kz.outbox("lost")


def test_deciding_a_request_twice_is_a_failed_precondition(fed: LocalFederation, kz: DeskClient) -> None:
    label = make_label(fed.roster, "KZ", band=Band.RESTRICTED, releasable_to=["TR"])
    report = ReportTemplate(title="t", summary="s", body="b", assessment="a", grading=label.grading)
    sent = kz.submit(label, report, ["TR"])
    kz.wait_settled([sent.outcomes[0].envelope_id])
    with fed.desk("TR") as tr:
        asked = tr.ask_consent(sent.item_id, "UZ", "joint operation")
    # KZ's standing rules deny UZ at once ("otherwise = deny"): the request is decided.
    assert eventually(lambda: any(r.request_id == asked.request_id for r in kz.consent_requests("denied")))
    with pytest.raises(FailedPreconditionError, match="already denied"):
        kz.decide(asked.request_id, grant=True)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("show", "0" * 32, "--member", "KZ"), ExitCode.NOT_FOUND),
        (("outbox", "--member", "KZ", "--state", "lost"), ExitCode.INVALID),
        (("recall", "0" * 32, "--member", "KZ", "--reason", "x"), ExitCode.NOT_FOUND),
        (("inbox", "--member", "AZ"), ExitCode.UNAVAILABLE),
    ],
)
def test_cli_exit_codes(fed: LocalFederation, args: tuple[str, ...], code: ExitCode) -> None:
    done = intelshare(fed, *args)
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_officers_are_told_apart_by_their_tokens(fed: LocalFederation, kz: DeskClient) -> None:
    """An entry names the officer whose token the node checked, not a name a caller claims (SPEC §11.8)."""
    label = make_label(fed.roster, "KZ", band=Band.RESTRICTED, releasable_to=["TR"])
    report = ReportTemplate(title="t", summary="s", body="b", assessment="a", grading=label.grading)
    sent = kz.submit(label, report, ["TR"])
    kz.read(sent.item_id)
    reads = [r for r in kz.audit(event="OFFICER_READ") if r["item_id"] == sent.item_id]
    assert [r["actor"] for r in reads] == ["duty@KZ"]


def test_an_auditor_reads_the_log_but_not_an_item(fed: LocalFederation, kz: DeskClient) -> None:
    label = make_label(fed.roster, "KZ", band=Band.RESTRICTED, releasable_to=["TR"])
    report = ReportTemplate(title="t", summary="s", body="b", assessment="a", grading=label.grading)
    sent = kz.submit(label, report, ["TR"])
    with fed.desk("KZ", "auditor") as auditor:
        assert auditor.audit(limit=5)
        with pytest.raises(PermissionDeniedError, match="auditor"):
            auditor.read(sent.item_id)


def test_a_wrong_token_is_not_an_officer(fed: LocalFederation) -> None:
    config = fed.nodes["KZ"].config
    impostor = DeskClient(config.desk_socket, officer="duty", token="not-the-token")
    with impostor, pytest.raises(NotAuthenticatedError):
        impostor.status()
