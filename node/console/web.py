"""What every page shares: the console's state, the links between pages, rendering a template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from node.audit.sources import AuditView
from node.console.access import Access
from node.console.checks import Checks

__all__ = [
    "Console",
    "console_of",
    "entry_url",
    "lang_of",
    "log_url",
    "peer_entry_url",
    "render",
    "templates",
    "trace_url",
]


def log_url(member: str, **params: str | int | None) -> str:
    """The audit log page of ``member`` with the given filters and position."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"/nodes/{quote(member, safe='')}/log" + (f"?{query}" if query else "")


def entry_url(member: str, seq: int) -> str:
    """The page of ``member``'s log that starts with entry ``seq``, scrolled to it."""
    return log_url(member, after=seq - 1) + f"#e{seq}"


def peer_entry_url(peer: str, envelope_id: str, *, item_id: str | None, sender: str) -> str:
    """The entry in ``peer``'s log about the same envelope (found by ``pages.envelope_page``)."""
    query = urlencode({k: v for k, v in (("item", item_id), ("from", sender)) if v})
    return f"/nodes/{quote(peer, safe='')}/envelopes/{quote(envelope_id, safe='')}?{query}"


def trace_url(item_id: str) -> str:
    """The trace of an item."""
    return f"/items/{quote(item_id, safe='')}"


#: The language a member's national markings are written in, by member id (a state's ISO 3166 code),
#: so that screen readers read them right; unknown members get none.
LANGUAGES = {"TR": "tr", "AZ": "az", "KZ": "kk", "KG": "ky", "UZ": "uz", "TM": "tk", "HU": "hu"}


def lang_of(member: str | None) -> str:
    """The ``lang`` of ``member``'s markings (empty: unknown)."""
    return LANGUAGES.get(member or "", "")


def templates() -> Jinja2Templates:
    """The console's templates (packaged with it), escaping everything by default."""
    env = Environment(
        loader=PackageLoader("node.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        log_url=log_url, entry_url=entry_url, trace_url=trace_url, peer_entry_url=peer_entry_url, lang_of=lang_of
    )
    return Jinja2Templates(env=env)


@dataclass
class Console:
    """What every page reads: the view, the cached checks, the templates and the access rules."""

    view: AuditView
    checks: Checks
    templates: Jinja2Templates
    access: Access


def console_of(request: Request) -> Console:
    """The console serving ``request``."""
    console = request.app.state.console
    assert isinstance(console, Console)
    return console


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """A page from ``template`` with what every page shows."""
    console = console_of(request)
    base = {
        "federation": console.view.roster.federation,
        "who": request.scope.get("console.who", ""),
        "path": request.url.path,
    }
    return console.templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)
