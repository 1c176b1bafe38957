"""``intelshare``: the command line for officers, auditors and trainers.

Every command has ``--help``; user mistakes print one clear line and exit with a
documented code (``node.cli.base.ExitCode``), never a traceback. Node commands talk to
the node's desk socket; ``audit`` commands open the node's database directly, so an
auditor can work with the node stopped.
"""

from __future__ import annotations

import sys

from node.cli import admin, agreement, audit, consent, officer, oversight
from node.cli.base import app, err, exit_code_for
from protocol.errors import IntelshareError

__all__ = ["admin", "agreement", "app", "audit", "consent", "main", "officer", "oversight"]


def main() -> None:
    """Console entry point: typed errors become one line and their exit code, never a traceback."""
    try:
        app()
    except IntelshareError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(exit_code_for(exc))
