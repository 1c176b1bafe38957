"""``intelshare``: the command line for officers, auditors and trainers.

Every command has ``--help``; user mistakes print one clear line and exit with a
documented code (``node.cli.base.ExitCode``), never a traceback. Node commands talk to
the node's desk socket; ``audit`` commands open the node's database directly, so an
auditor can work with the node stopped.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from sqlalchemy.exc import DBAPIError

from node.cli import admin, agreement, audit, consent, console, officer, oversight, roster
from node.cli.base import ExitCode, app, err, exit_code_for
from node.store import database_error
from protocol.errors import IntelshareError

__all__ = ["admin", "agreement", "app", "audit", "consent", "console", "main", "officer", "oversight", "roster"]


def main() -> None:
    """Console entry point: typed errors become one line and their exit code, never a traceback.

    A mistake in the command line itself (an unknown option, a value out of its range) is
    one line too, exit 2, rather than the option parser's boxed usage text.
    """
    try:
        code = app(standalone_mode=False)
    except IntelshareError as exc:
        _fail(str(exc), exit_code_for(exc))
    except DBAPIError as exc:  # a database no typed error stood for: say so in one line
        typed = database_error(exc)
        if typed is None:
            raise
        _fail(str(typed), exit_code_for(typed))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        usage = _usage_error(exc)
        if usage is None:
            raise
        _fail(*usage)
    sys.exit(code if isinstance(code, int) else ExitCode.OK)


def _usage_error(exc: Exception) -> tuple[str, int] | None:
    """The option parser's error (typer's own click, whichever version) as a message and its exit code."""
    format_message, code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
    if not callable(format_message) or not isinstance(code, int):
        return None
    command = getattr(getattr(exc, "ctx", None), "command_path", "intelshare")
    return f"{format_message()} (see '{command} --help')", ExitCode.USAGE if code == 2 else code


def _fail(message: str, code: int) -> NoReturn:
    err.print("[bold red]error:[/] ", end="")
    err.print(message, markup=False, highlight=False)
    sys.exit(code)
