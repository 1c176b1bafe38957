"""What every ``intelshare`` command shares: the app, options, exit codes and the desk connection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from node.client import DeskClient
from node.errors import (
    FailedPreconditionError,
    IllegalTransitionError,
    InvalidRequestError,
    NodeUnavailableError,
    NotAuthenticatedError,
    NotFoundError,
    PermissionDeniedError,
    StoredDataError,
)
from node.wire import desk_pb2
from protocol.errors import IntelshareError

if TYPE_CHECKING:
    from node.audit.sources import AuditView

__all__ = [
    "BundleOpt",
    "DirOpt",
    "ExitCode",
    "MemberOpt",
    "VersionOpt",
    "agreement_app",
    "app",
    "audit_app",
    "audit_view",
    "config_path",
    "consent_app",
    "console",
    "err",
    "exit_code_for",
    "fail",
    "federation_app",
    "node_app",
    "one_line",
    "open_desk",
    "outcomes_table",
    "print_table",
]

app = typer.Typer(
    help="intelshare: policy-enforcing intelligence sharing between member services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
federation_app = typer.Typer(help="Create a federation directory.", no_args_is_help=True)
node_app = typer.Typer(help="Run a member service's node.", no_args_is_help=True)
consent_app = typer.Typer(
    help="Third-party consent: requests, decisions, onward grants and revocations.", no_args_is_help=True
)
agreement_app = typer.Typer(
    help="The agreements this node holds, and amendments proposed to or by the other party.", no_args_is_help=True
)
audit_app = typer.Typer(help="Inspect, export and verify a node's audit log.", no_args_is_help=True)
app.add_typer(federation_app, name="federation")
app.add_typer(node_app, name="node")
app.add_typer(consent_app, name="consent")
app.add_typer(agreement_app, name="agreement")
app.add_typer(audit_app, name="audit")

console = Console()
err = Console(stderr=True, soft_wrap=True)  # one line per error, however narrow the terminal

DirOpt = Annotated[Path, typer.Option("--dir", "-d", help="Federation directory.", envvar="INTELSHARE_DIR")]
MemberOpt = Annotated[
    str, typer.Option("--member", "-m", help="Member id of the node, e.g. TR.", envvar="INTELSHARE_MEMBER")
]
VersionOpt = Annotated[int, typer.Option("--version", help="Item version.")]
BundleOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--bundle",
        help="Read this audit bundle (intelshare audit bundle) instead of the nodes' databases; repeatable.",
    ),
]


class ExitCode(IntEnum):
    """The documented exit codes of ``intelshare`` (README, "Exit codes")."""

    OK = 0
    #: Anything not listed below: a bad file or configuration, or ``audit verify`` found a problem.
    FAILED = 1
    #: The command line itself is wrong (from the option parser).
    USAGE = 2
    #: A transfer was refused by policy (``send``, ``reshare``); the table says why.
    REFUSED = 3
    #: The node has no such item, request or entry.
    NOT_FOUND = 4
    #: The request is invalid (a value out of range, a forbidden ask).
    INVALID = 5
    #: The record's state does not allow it (e.g. a request already decided).
    PRECONDITION = 6
    #: This node, or this officer, may not do that (or the officer's token is not theirs).
    PERMISSION = 7
    #: The node is not running or not reachable; or a recipient is not, and the envelope stays queued.
    UNAVAILABLE = 8
    #: Data the node stored no longer verifies or opens.
    DATA_LOSS = 9


_CODES: tuple[tuple[type[Exception], ExitCode], ...] = (
    (NotFoundError, ExitCode.NOT_FOUND),
    (InvalidRequestError, ExitCode.INVALID),
    (FailedPreconditionError, ExitCode.PRECONDITION),
    (IllegalTransitionError, ExitCode.PRECONDITION),
    (PermissionDeniedError, ExitCode.PERMISSION),
    (NotAuthenticatedError, ExitCode.PERMISSION),
    (NodeUnavailableError, ExitCode.UNAVAILABLE),
    (StoredDataError, ExitCode.DATA_LOSS),
)


def exit_code_for(exc: IntelshareError) -> ExitCode:
    """The exit code a typed error ends the command with."""
    return next((code for kind, code in _CODES if isinstance(exc, kind)), ExitCode.FAILED)


def one_line(exc: Exception) -> str:
    """An error as one line: a validation error's first problem and where, else the message's first line."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fail(message: str, code: int = ExitCode.FAILED) -> NoReturn:
    """Print one line to stderr and exit non-zero."""
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def config_path(directory: Path, member: str) -> Path:
    """``nodes/<MEMBER>/node.toml`` of a federation directory, or fail with one line."""
    path = directory / "nodes" / member.upper() / "node.toml"
    if not path.is_file():
        fail(f"no node {member!r} in {directory} (expected {path})")
    return path


@dataclass
class Session:
    """Options of the whole command line (``intelshare --officer NAME …``)."""

    officer: str = "duty"


SESSION = Session()


@app.callback()
def _options(
    officer: Annotated[
        str,
        typer.Option(
            "--officer",
            help="The officer acting at the desk (their token is in the node's directory).",
            envvar="INTELSHARE_OFFICER",
        ),
    ] = "duty",
) -> None:
    """intelshare: policy-enforcing intelligence sharing between member services."""
    SESSION.officer = officer


@contextmanager
def open_desk(directory: Path, member: str) -> Iterator[DeskClient]:
    """A desk client for a member's running node; the desk's refusals become one line and an exit code."""
    from node.config import load_node_config

    cfg = load_node_config(config_path(directory, member))
    if not cfg.desk_socket.exists():
        fail(
            f"node {member} is not running (no desk socket at {cfg.desk_socket}); start it with "
            f"'intelshare node run --dir {directory} --member {member}'",
            ExitCode.UNAVAILABLE,
        )
    try:
        client = DeskClient.for_officer(cfg.node_dir, cfg.desk_socket, SESSION.officer)
    except IntelshareError as exc:
        fail(str(exc), exit_code_for(exc))
    try:
        yield client
    except NodeUnavailableError as exc:
        fail(f"node {member} is not reachable: {exc}", ExitCode.UNAVAILABLE)
    except IntelshareError as exc:
        fail(str(exc), exit_code_for(exc))
    finally:
        client.close()


def audit_view(directory: Path, bundles: Sequence[Path] | None = None) -> AuditView:
    """A federation directory as an auditor sees it (read-only, no private key), or fail with one line.

    With ``bundles``, the logs are those bundles, each checked against the directory's
    roster before it is read, and no node's database is opened. An auditor's directory
    may hold only ``secretariat.json``, the federation's public trust anchor: the roster
    is then the newest one the bundles carry that the secretariat signed.
    """
    from node.audit.sources import bundle_view, federation_view, roster_from_bundles
    from node.config.material import read_secretariat

    if bundles and not (directory / "roster.json").is_file() and (directory / "secretariat.json").is_file():
        roster = roster_from_bundles(bundles, read_secretariat(directory / "secretariat.json"))
        return bundle_view(roster, bundles)
    if not (directory / "roster.json").is_file():
        fail(f"{directory} is not a federation directory (no roster.json), nor an auditor's (secretariat.json)")
    view = federation_view(directory)
    return bundle_view(view.roster, bundles) if bundles else view


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A titled table on standard output."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")  # a narrow terminal folds a value, never cuts it off
    for row in rows:
        table.add_row(*row)
    console.print(table)


def outcomes_table(response: desk_pb2.SubmitResponse, title: str) -> Table:
    """One row per recipient: the decision, its reason code and rule."""
    table = Table(title=title)
    for column in ("recipient", "decision", "reason", "rule", "detail", "envelope"):
        table.add_column(column, overflow="fold")  # whole ids, folded on a narrow terminal
    for o in response.outcomes:
        table.add_row(
            o.recipient,
            "[green]allowed[/]" if o.allowed else "[red]refused[/]",
            o.reason,
            o.rule,
            o.detail,
            o.envelope_id,
        )
    return table
