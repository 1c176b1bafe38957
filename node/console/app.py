"""The console as an ASGI application: routes, templates, static files, access and headers.

``create_app(view, access=…, hosts=…)`` serves one ``AuditView``: a federation
directory's databases (``node.audit.sources.federation_view``) or audit bundles
of the same shape. Every page is rendered on the server; the pages carry no script and
load nothing but the console's own stylesheet, which the Content-Security-Policy
enforces.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.audit.sources import AuditView
from node.console import pages
from node.console.access import Access
from node.console.checks import Checks
from node.console.web import Console, templates

__all__ = ["Guard", "create_app"]

STATIC = Path(__file__).resolve().parent / "static"
_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def _same_origin(request: Request) -> bool:
    """Whether a form was posted from the console's own pages (a browser always says where from)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site form: programs send none
    return urlsplit(origin).netloc == request.headers.get("host", "")


class Guard:
    """Every request presents a credential (unless none is required); every response gets the safety headers.

    A form posted from another site's page is refused: the console's only posts (sign in,
    verify again) come from its own pages.
    """

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD") and not _same_origin(Request(scope)):
            await PlainTextResponse("cross-site request refused", status_code=403)(scope, receive, with_headers)
            return
        if path.startswith("/static/") or path == "/login":
            await self.app(scope, receive, with_headers)
            return
        who = self.access.who(Request(scope))
        if who is None:
            await pages.sign_in_page(Request(scope, receive), status_code=401)(scope, receive, with_headers)
            return
        scope["console.who"] = "" if who == "anyone" else who
        await self.app(scope, receive, with_headers)


def create_app(view: AuditView, *, access: Access | None = None, hosts: Sequence[str] | None = None) -> Starlette:
    """The console over ``view``.

    ``hosts``: the ``Host`` names served (the loopback names when bound to loopback
    without credentials); None serves any.
    """
    access = access or Access()
    routes = [
        Route("/", pages.federation_page, name="federation"),
        Route("/nodes/{member}/log", pages.log_page, name="log"),
        Route("/nodes/{member}/envelopes/{envelope_id}", pages.envelope_page, name="envelope"),
        Route("/items", pages.items_page, name="items"),
        Route("/items/{item_id}", pages.trace_page, name="trace"),
        Route("/reconciliation", pages.reconciliation_page, name="reconciliation"),
        Route("/verify", pages.verify_now, methods=["POST"], name="verify"),
        Route("/login", pages.login, methods=["GET", "POST"], name="login"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(Guard, access=access)]
    if hosts is not None:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts)))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={404: pages.not_found})
    app.state.console = Console(view, Checks(view), templates(), access)
    return app
