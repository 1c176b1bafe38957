"""Setting up and running: ``federation init``, ``node run`` and the trainers' ``demo``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from node.cli.base import DirOpt, app, config_path, console, exit_code_for, fail, federation_app, node_app
from protocol.errors import IntelshareError

__all__ = ["demo", "federation_init", "node_run"]


@federation_app.command("init")
def federation_init(
    config: Annotated[Path, typer.Argument(help="Federation TOML file (see examples/federation.toml).")],
    directory: DirOpt,
    base_port: Annotated[int | None, typer.Option(help="First TCP port; free ports are picked if unset.")] = None,
) -> None:
    """Create the CA, member keys and certificates, signed roster and agreements in DIR."""
    from node.federation import init_federation

    if not config.is_file():
        fail(f"no federation file {config}")
    layout = init_federation(config, directory, now=datetime.now(UTC), base_port=base_port)
    console.print(f"federation written to [bold]{layout.root}[/] for {', '.join(layout.members)}")


@node_app.command("run")
def node_run(
    directory: Annotated[Path | None, typer.Option("--dir", "-d", help="Federation directory.")] = None,
    member: Annotated[str | None, typer.Option("--member", "-m", help="Member id.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Path to the node's node.toml.")] = None,
) -> None:
    """Run a node in the foreground until SIGTERM or Ctrl-C."""
    from node.runtime.process import run_node

    if config is None:
        if directory is None or member is None:
            fail("give --config, or both --dir and --member")
        config = config_path(directory, member)
    try:
        run_node(config)
    except IntelshareError as exc:  # refused to start: one line, nothing written
        fail(f"node not started: {exc}", exit_code_for(exc))


@app.command()
def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", "-d", help="Where to build it (default: a new temporary directory).")
    ] = None,
    federation: Annotated[
        Path | None, typer.Option(help="Federation TOML (default: examples/federation.toml).")
    ] = None,
) -> None:
    """Build the five-member demonstration federation and play the trainers' scenario."""
    from node.demo import run_demo

    raise typer.Exit(run_demo(directory, federation, console))
