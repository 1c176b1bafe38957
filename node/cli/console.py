"""``intelshare console``: the read-only audit console in a browser (``node.console``)."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from node.cli.base import BundleOpt, DirOpt, ExitCode, app, audit_view, fail

__all__ = ["run_console"]


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: any free port), or fail with one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", ExitCode.FAILED)
    sock.listen(128)
    return sock


@app.command("console")
def run_console(
    directory: DirOpt,
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).", min=0, max=65535)] = 8080,
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback needs --token or --auditors.")
    ] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option(
            help="Every request must present this token (at least 16 characters); sign in with it in the browser.",
            envvar="INTELSHARE_CONSOLE_TOKEN",
        ),
    ] = None,
    auditors: Annotated[
        bool,
        typer.Option("--auditors", help="Let the federation's auditors sign in with their officer name and token."),
    ] = False,
    bundle: BundleOpt = None,
) -> None:
    """Serve the read-only audit console: federation, audit logs, item traces, reconciliation.

    It opens every node's database read-only, with the nodes running or stopped, and never
    reads a private key; with ``--bundle``, it shows audit bundles instead (each checked
    against the roster first) and opens no node's database. On 127.0.0.1 by default;
    binding any other address requires a token or auditors' credentials, which every
    request must then present. Put TLS in front of it (or an SSH tunnel) when it is
    reached over a network.
    """
    import uvicorn

    from node.config import load_node_config
    from node.console import Access, create_app, is_loopback

    loopback = is_loopback(host)
    if not loopback and token is None and not auditors:
        fail(f"binding {host} serves other machines: pass --token (or --auditors)", ExitCode.USAGE)
    view = audit_view(directory, bundle)
    officers = [load_node_config(p).officers for p in sorted(directory.glob("nodes/*/node.toml"))] if auditors else []
    try:
        access = Access(token=token, auditors=officers)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    hosts = ["127.0.0.1", "localhost", "::1", "[::1]"] if loopback and not access.required else None
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    # One plain line (never wrapped): programs read the address from it.
    typer.echo(f"audit console of {view.roster.federation} on http://{shown}:{bound}/ (read-only; Ctrl-C stops it)")
    config = uvicorn.Config(create_app(view, access=access, hosts=hosts), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
