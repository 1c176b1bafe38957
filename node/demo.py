"""``intelshare demo``: the trainers' scenario on the demonstration federation (README, examples/).

Builds the federation of a federation file in a directory, starts one node process per
member (observers aside) on loopback with SQLite, and plays the scenario step by step
with a narrated transcript (``node.demo_play``). The cast comes from the file's ``[demo]``
table (originator, recipient, reshare_target, refused_target) and every expected outcome
from its agreements and consent rules: before each transfer the demo asks the protocol's
own policy engine what the signed agreements say (``node.demo_referee.Referee``), so a
trainer who tightens an agreement sees the refusal narrated as expected, and the steps
that needed the item are skipped with the reason, rather than an abort or a false ✔.
Every expectation is checked; the command exits non-zero if any did not happen. The
directory is left for ``intelshare audit …``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from node import demo_audit
from node.demo_play import play
from node.demo_referee import Cast, Referee, Transcript, forge_delivery
from node.demo_roster import revoke_compromised_key
from node.federation import open_layout
from node.harness import LocalFederation

__all__ = [
    "DEMO_MEMBERS",
    "Cast",
    "Referee",
    "Transcript",
    "default_federation_file",
    "forge_delivery",
    "play",
    "run_demo",
]

#: The members of the default demonstration federation (its observers are not started).
DEMO_MEMBERS = ("TR", "AZ", "KZ", "KG", "UZ")


def default_federation_file() -> Path:
    """The demonstration federation file, ``examples/federation.toml``, as the package carries it.

    In the source tree ``node/demo_federation.toml`` is a link to it; a wheel carries a copy
    (package data), so ``intelshare demo`` works from an installed package too.
    """
    return Path(__file__).resolve().with_name("demo_federation.toml")


def run_demo(directory: Path | None, federation_file: Path | None, console: Console) -> int:
    """Build, start, play, stop. Returns the exit code (0 only if every expectation held)."""
    source = federation_file or default_federation_file()
    if not source.is_file():
        console.print(f"[red]error:[/] no federation file at {source}; pass --federation")
        return 2
    root = directory or Path(tempfile.mkdtemp(prefix="intelshare-demo-"))
    fed = LocalFederation.create(source, root)
    layout = open_layout(root)
    referee = Referee(root)
    members = referee.members()
    console.print(
        Panel(f"Demonstration federation of {', '.join(members)} in [bold]{root}[/]", title="intelshare demo")
    )
    c = referee.cast
    console.print(
        f"   CA, keys, certificates, signed roster and {len(list(layout.agreements_dir.glob('*.json')))} "
        f"signed agreements written; cast: originator {c.originator}, recipient {c.recipient}, "
        f"third party {c.reshare_target}, refused {c.refused_target}; starting {len(members)} node processes…"
    )
    t = Transcript(console)
    try:
        with fed.running(members):
            play(fed, t, referee)
            revoke_compromised_key(fed, t, members)
            demo_audit.witnessed(fed, t, members)
        demo_audit.audit_after(fed, t, members)
    except Exception as exc:  # any failure is reported, not hidden: the demo exits non-zero
        t.expect("the scenario ran to the end", False, f"{type(exc).__name__}: {exc}")
    failed = [check for check in t.checks if not check[1]]
    console.print()
    summary = f"{len(t.checks) - len(failed)} of {len(t.checks)} expected outcomes happened."
    console.print(
        Panel(summary + (" [green]All as expected.[/]" if not failed else " [red]Some did not.[/]"), title="result")
    )
    console.print(
        f"Inspect it: [bold]intelshare audit list --dir {root} --member {c.recipient}[/]  ·  "
        f"[bold]intelshare notices ITEM --dir {root} --member {c.originator}[/]  ·  "
        f"[bold]intelshare audit verify --dir {root} --member {c.reshare_target}[/]"
    )
    return 1 if failed else 0
