"""An item's provenance as a picture: boxes for nodes, arrows for transfers, laid out server-side.

The originator sits in the first column; each member the item reached sits one column
to the right of the first member that sent it there; a member that was refused it sits
where the refused transfer would have put it, drawn dashed. Each box carries the member,
the item's band in that member's own national marking, and its copy's state. Every
arrow is one sender-recipient pair, labelled with each attempt: the version, whether it
was sent or refused and why, the agreement, and the consent grants a re-share carried.
The template turns this into inline SVG: no script, no request anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from node.audit.trace import Holding, Trace, Transfer
from protocol.classification import Band
from protocol.roster import Roster

__all__ = ["Box", "Edge", "Graph", "layout"]

BOX_W, BOX_H = 190, 88
GAP_X, GAP_Y = 180, 44
#: Height of one line of an arrow's label.
LINE = 14
MARGIN = 16
#: Markings longer than this are set smaller, on two lines, so they fit the box.
LONG_MARKING = 18


@dataclass(frozen=True)
class Box:
    """One member in the picture."""

    member: str
    state_name: str
    #: The item's band in this member's national marking (or the common band's title).
    marking: str
    #: The marking as drawn: one line, or two for a long one.
    marking_lines: tuple[str, ...]
    band: str
    #: "original v1", "held v1", "recalled v1", "not received".
    holding: str
    #: CSS classes: "originator", "holder", "recalled", "refused-only".
    kind: str
    x: int
    y: int

    @property
    def cx(self) -> int:
        """Horizontal centre."""
        return self.x + BOX_W // 2


@dataclass(frozen=True)
class Edge:
    """One sender-recipient pair and every attempt between them."""

    sender: str
    recipient: str
    path: str
    #: The label's lines, one to three per attempt, each with whether its attempt was refused.
    labels: tuple[tuple[str, bool], ...]
    label_x: int
    label_y: int
    #: "sent" if any attempt went through, else "refused".
    kind: str


@dataclass(frozen=True)
class Graph:
    """The laid-out picture."""

    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    box_w: int = BOX_W
    box_h: int = BOX_H


def _columns(trace: Trace) -> dict[str, int]:
    """Each member's column: hops from the originator along transfers (allowed ones first)."""
    origin = trace.originator or next((h.member for h in trace.holdings if h.state == "original"), None)
    column: dict[str, int] = {} if origin is None else {origin: 0}
    ordered = sorted(trace.transfers, key=lambda t: not t.allowed)
    changed = True
    while changed:  # relax until stable: a re-share may be listed before the transfer that enabled it
        changed = False
        for t in ordered:
            if t.sender not in column:
                continue
            hop = column[t.sender] + 1
            if t.recipient not in column or (t.allowed and hop < column[t.recipient]):
                column[t.recipient] = hop
                changed = True
    for t in trace.transfers:  # a sender the originator's log does not show (its log missing)
        column.setdefault(t.sender, 1)
        column.setdefault(t.recipient, column[t.sender] + 1)
    for h in trace.holdings:
        column.setdefault(h.member, 1)
    return column


def _lines(marking: str) -> tuple[str, ...]:
    """A long marking split at the space nearest its middle (one line if it has none)."""
    if len(marking) <= LONG_MARKING or " " not in marking:
        return (marking,)
    spaces = [i for i, c in enumerate(marking) if c == " "]
    cut = min(spaces, key=lambda i: abs(i - len(marking) / 2))
    return (marking[:cut], marking[cut + 1 :])


def _holding(holdings: Sequence[Holding]) -> str:
    if not holdings:
        return "not received"
    latest = max(holdings, key=lambda h: h.version)
    return f"{latest.state} v{latest.version}"


def _kind(member: str, trace: Trace, holdings: Sequence[Holding]) -> str:
    if member == trace.originator:
        kind = "originator"
    elif holdings:
        kind = "holder"
    else:
        kind = "refused-only"
    if holdings and max(holdings, key=lambda h: h.version).state == "recalled":
        kind += " recalled"
    return kind


def attempt_lines(t: Transfer) -> tuple[str, ...]:
    """``v1 sent · KZ-TR:1`` (and ``grant 03202b3b`` below), or ``v1 refused`` and the reason below.

    The reason code is written in words (``third party without consent``): narrower, and
    the tables under the picture give the code itself.
    """
    if not t.allowed:
        return (f"v{t.version or '?'} refused", t.reason.replace("_", " ").lower())
    under = f" · {t.agreement}" if t.agreement else ""
    return (f"v{t.version or '?'} sent{under}", *(f"grant {g[:8]}" for g in t.grants))


def _path(a: Box, b: Box) -> tuple[str, int, int]:
    """A curve from ``a`` to ``b`` and where its label goes."""
    if b.x > a.x:
        x1, y1, x2, y2 = a.x + BOX_W, a.y + BOX_H // 2, b.x, b.y + BOX_H // 2
        bend = (x2 - x1) // 2
        return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}", (x1 + x2) // 2, (y1 + y2) // 2 - 4
    # Back to an earlier column (or the same one): under the boxes.
    x1, y1, x2, y2 = a.cx, a.y + BOX_H, b.cx + 12, b.y + BOX_H
    low = max(y1, y2) + GAP_Y
    return f"M{x1},{y1} C{x1},{low} {x2},{low} {x2},{y2}", (x1 + x2) // 2, low - 4


def layout(trace: Trace, roster: Roster, bands: Mapping[str, Band], default_band: Band | None) -> Graph:
    """Lay out ``trace``; ``bands`` is the band of each member's copy, ``default_band`` the item's."""
    column = _columns(trace)
    by_column: dict[int, list[str]] = {}
    for member, col in sorted(column.items(), key=lambda mc: (mc[1], mc[0] != trace.originator, mc[0])):
        by_column.setdefault(col, []).append(member)
    holdings: dict[str, list[Holding]] = {}
    for h in trace.holdings:
        holdings.setdefault(h.member, []).append(h)
    pairs: dict[tuple[str, str], list[Transfer]] = {}
    for t in trace.transfers:
        pairs.setdefault((t.sender, t.recipient), []).append(t)
    labels = {
        pair: tuple((line, not t.allowed) for t in attempts for line in attempt_lines(t))
        for pair, attempts in pairs.items()
    }
    # Room above the first row for the tallest label of an arrow between boxes there.
    top = MARGIN + max(0, max((len(lines) for lines in labels.values()), default=0) - 3) * LINE
    boxes: dict[str, Box] = {}
    for col, members in by_column.items():
        for row, member in enumerate(members):
            band = bands.get(member, default_band)
            marking = (roster.marking(member, band) if band is not None else None) or (band.title if band else "?")
            info = roster.member(member)
            boxes[member] = Box(
                member=member,
                state_name=info.state if info else "",
                marking=marking,
                marking_lines=_lines(marking),
                band=band.title if band is not None else "unknown band",
                holding=_holding(holdings.get(member, [])),
                kind=_kind(member, trace, holdings.get(member, [])),
                x=MARGIN + col * (BOX_W + GAP_X),
                y=top + row * (BOX_H + GAP_Y),
            )
    edges = []
    for (sender, recipient), attempts in pairs.items():
        path, lx, ly = _path(boxes[sender], boxes[recipient])
        kind = "sent" if any(t.allowed for t in attempts) else "refused"
        lines = labels[(sender, recipient)]
        edges.append(Edge(sender, recipient, path, lines, lx, ly - LINE * (len(lines) - 1), kind))
    columns = max(column.values(), default=0) + 1
    rows = max((len(m) for m in by_column.values()), default=1)
    width = 2 * MARGIN + columns * BOX_W + (columns - 1) * GAP_X
    backward = any(boxes[e.recipient].x <= boxes[e.sender].x for e in edges)
    height = top + MARGIN + rows * BOX_H + (rows - 1) * GAP_Y + (GAP_Y + 8 if backward else 0)
    return Graph(tuple(boxes.values()), tuple(edges), width, height)
