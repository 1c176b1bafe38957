"""The console's pages: federation, audit log, item trace, reconciliation; and signing in.

Endpoints that read databases are plain functions: Starlette runs them in its thread
pool, each opening read-only sessions (``LogSource.session()``) for as long as the page
takes. Nothing here writes anywhere.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from node.audit import AuditEvent
from node.audit.reconcile import Mismatch, MismatchKind
from node.audit.trace import trace
from node.console.access import COOKIE
from node.console.checks import NodeCheck
from node.console.graph import attempt_lines, layout
from node.console.items import item_bands, matching_items, recent_items
from node.console.logpage import REASONS, find_envelope, parse_query, read_page
from node.console.web import console_of, log_url, render, trace_url

__all__ = [
    "KINDS",
    "envelope_page",
    "federation_page",
    "items_page",
    "log_page",
    "login",
    "not_found",
    "reconciliation_page",
    "sign_in_page",
    "trace_page",
    "verify_now",
]

#: What each kind of mismatch means (``node.audit.reconcile``), in the order the page lists them.
KINDS: dict[str, str] = {
    MismatchKind.NOT_RECEIVED: "the sender holds the receiver's receipt, but the receiver's log has no INGRESS",
    MismatchKind.NOT_SENT: "the receiver logged an INGRESS the sender's log never sent",
    MismatchKind.UNCONFIRMED: "sent and logged by both, but the sender has no delivery confirmation",
    MismatchKind.OUTCOME_DIFFERS: "the receiver's INGRESS and the sender's confirmation disagree on the decision",
    MismatchKind.RESHARE_WITHOUT_CONSENT: "a re-share carried a grant the originator's log never issued",
    MismatchKind.NOTICE_NOT_APPLIED: "a holder a recall or correction was sent to has no entry applying it",
    MismatchKind.NOTICE_NOT_ACKNOWLEDGED: "the originator holds no signed acknowledgement from a holder",
    MismatchKind.SIGNED_ENTRY_DIFFERS: "a signed receipt or acknowledgement names an entry its signer's log lost",
}
_BODY_LIMIT = 4096
#: Mismatches shown per kind (a log rewritten wholesale can leave thousands).
SHOWN_PER_KIND = 100


def _member(request: Request) -> str:
    member = str(request.path_params["member"]).upper()
    if member not in console_of(request).view.sources:
        raise HTTPException(404, f"no log of a member {member!r} here")
    return member


def _safe_next(target: str) -> str:
    """A local path to go back to (never another site)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


async def _form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _BODY_LIMIT:
            raise HTTPException(413, "form too large")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


# --------------------------------------------------------------------------- federation


def federation_page(request: Request) -> Response:
    """Members and observers, each log's state, checkpoint and witnesses; reconciliation; recent items."""
    console = console_of(request)
    view = console.view
    rows = []
    for member in view.roster.members:
        known = member.member_id in view.sources
        check = console.checks.get(member.member_id) if known else NodeCheck(member.member_id, "not_checked")
        rows.append({"member": member, "check": check, "has_log": known})
    mismatches = console.checks.mismatches()
    counts = Counter(m.kind for m in mismatches)
    return render(
        request,
        "federation.html",
        {
            "rows": rows,
            "roster": view.roster,
            "counts": [(kind, counts[kind], KINDS.get(kind, "")) for kind in KINDS if counts[kind]],
            "mismatches": len(mismatches),
            "items": recent_items(view),
        },
    )


async def verify_now(request: Request) -> Response:
    """Verify one log now, however long (or forget every result so the next page verifies again)."""
    console = console_of(request)
    form = await _form(request)
    member = form.get("member", "").upper()
    if member:
        if member not in console.view.sources:
            raise HTTPException(404, f"no log of a member {member!r} here")
        await run_in_threadpool(console.checks.get, member, force=True)
    else:
        console.checks.forget()
    return RedirectResponse(_safe_next(form.get("next", "/")), status_code=303)


# --------------------------------------------------------------------------- audit log


def log_page(request: Request) -> Response:
    """One node's log, filtered, a keyset page at a time."""
    console = console_of(request)
    member = _member(request)
    query = parse_query(request.query_params)
    check = console.checks.get(member)
    problems: dict[int, tuple[str, ...]] = {}
    for p in check.problems:
        problems[p.seq] = (*problems.get(p.seq, ()), p.message)
    source = console.view.sources[member]
    try:
        with source.session() as session:
            page = read_page(session, query, problems=problems)
    except FileNotFoundError:
        page = None
    context = {
        "member": member,
        "info": console.view.roster.member(member),
        "check": check,
        "query": query,
        "page": page,
        "events": [e.value for e in AuditEvent],
        "reasons": REASONS,
        "peers": [m for m in console.view.roster.member_ids() if m != member],
        "linked": set(console.view.sources),
        "next_url": None,
        "previous_url": None,
        "first_url": log_url(member, **query.link_params()),
        "last_url": None,
    }
    if page is not None:
        params = query.link_params()
        if page.next_after is not None:
            context["next_url"] = log_url(member, **params, after=page.next_after)
            context["last_url"] = log_url(member, **params, before=page.head + 1)
        if page.previous_before is not None:
            context["previous_url"] = log_url(member, **params, before=page.previous_before)
    return render(request, "log.html", context, status_code=400 if query.errors else 200)


def envelope_page(request: Request) -> Response:
    """The entry at a peer about the same envelope (``?item=`` and ``?from=`` narrow the search)."""
    console = console_of(request)
    member = _member(request)
    envelope_id = str(request.path_params["envelope_id"])
    item_id = request.query_params.get("item") or None
    sender = (request.query_params.get("from") or "").upper() or None
    try:
        with console.view.sources[member].session() as session:
            found = find_envelope(session, envelope_id, item_id=item_id, peer=sender)
    except FileNotFoundError:
        found = []
    if found:
        target = log_url(member, item=item_id, after=found[0] - 1) if item_id else log_url(member, after=found[0] - 1)
        return RedirectResponse(f"{target}#e{found[0]}", status_code=303)
    return render(
        request,
        "missing.html",
        {"member": member, "envelope_id": envelope_id, "item_id": item_id, "sender": sender},
        status_code=404,
    )


# --------------------------------------------------------------------------- items


def items_page(request: Request) -> Response:
    """Find an item by its id or a prefix of it; one match goes straight to its trace."""
    console = console_of(request)
    prefix = request.query_params.get("q", "").strip()
    matches = matching_items(console.view, prefix) if len(prefix) >= 4 else []
    if len(matches) == 1:
        return RedirectResponse(trace_url(matches[0]), status_code=303)
    status = 200 if matches or not prefix else 404
    return render(request, "items.html", {"prefix": prefix, "matches": matches}, status_code=status)


def trace_page(request: Request) -> Response:
    """The item's provenance across the federation, as a picture and as tables."""
    console = console_of(request)
    view = console.view
    item_id = str(request.path_params["item_id"])
    result = trace(view, item_id)
    if not result.transfers and not result.holdings and not result.notices:
        matches = matching_items(view, item_id)
        if len(matches) == 1 and matches[0] != item_id:
            return RedirectResponse(trace_url(matches[0]), status_code=303)
        return render(request, "items.html", {"prefix": item_id, "matches": matches}, status_code=404)
    bands, band = item_bands(view, result)
    graph = layout(result, view.roster, bands, band)
    holders = sorted(result.holdings, key=lambda h: (h.member != result.originator, h.member, h.version))
    markings: dict[str, str | None] = {}
    for h in holders:
        held = bands.get(h.member, band)
        markings[h.member] = None if held is None else view.roster.marking(h.member, held)
    return render(
        request,
        "trace.html",
        {
            "trace": result,
            "graph": graph,
            "band": band,
            "origin_marking": (
                view.roster.marking(result.originator, band) if result.originator and band is not None else None
            ),
            "holders": holders,
            "markings": markings,
            "attempt_lines": attempt_lines,
            "linked": set(view.sources),
        },
    )


# --------------------------------------------------------------------------- reconciliation


def reconciliation_page(request: Request) -> Response:
    """Every mismatch between the logs, by kind, with the entries on both sides."""
    mismatches = console_of(request).checks.mismatches()
    by_kind: dict[str, list[Mismatch]] = {}
    for m in mismatches:
        by_kind.setdefault(m.kind, []).append(m)
    kinds = dict.fromkeys([*KINDS, *sorted(by_kind)])  # the known kinds in order, then any new one
    groups = [
        (kind, KINDS.get(kind, ""), by_kind[kind][:SHOWN_PER_KIND], len(by_kind[kind]))
        for kind in kinds
        if kind in by_kind
    ]
    return render(request, "reconciliation.html", {"groups": groups, "total": len(mismatches)})


# --------------------------------------------------------------------------- access


def sign_in_page(request: Request, *, status_code: int = 200, error: str = "") -> Response:
    """The sign-in form (what every request without a credential gets, with 401)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    next_path = request.query_params.get("next", target) if request.url.path == "/login" else target
    response = render(
        request,
        "login.html",
        {"next": _safe_next(next_path), "error": error, "auditors": console_of(request).access.auditors},
        status_code=status_code,
    )
    if status_code == 401:
        response.headers["www-authenticate"] = 'Bearer realm="intelshare console"'
    return response


async def login(request: Request) -> Response:
    """GET: the form. POST: check the token or an auditor's name and token; a session cookie on success."""
    access = console_of(request).access
    if request.method == "GET" or not access.required:
        return sign_in_page(request)
    form = await _form(request)
    who = access.check(form.get("name", "").strip(), form.get("token", "").strip())
    if who is None:
        return sign_in_page(request, status_code=401, error="That token (or name and token) is not accepted.")
    response = RedirectResponse(_safe_next(form.get("next", "/")), status_code=303)
    response.set_cookie(COOKIE, access.sign_in(who), httponly=True, samesite="strict", path="/")
    return response


async def not_found(request: Request, exc: Exception) -> Response:
    """A page saying what was not found (404)."""
    detail = exc.detail if isinstance(exc, HTTPException) else "not found"
    return render(request, "error.html", {"status": 404, "detail": detail}, status_code=404)
