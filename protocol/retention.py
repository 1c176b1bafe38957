"""Retention: when an item's holders must destroy its content (SPEC §9.3.9, §11.13).

Pure functions of the times involved; the node passes ``now`` in (SPEC §3.3). An item's
retention ends at the earliest of its label's ``retain_until``, the ``retain-until``
conditions of the consent chain it is held under (SPEC §9.4.4), and the time it was
received plus the maximum retention of the agreement it is held under (SPEC §6.1), which
may have been shortened by an amendment since (SPEC §6.4).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from protocol.encoding import require_aware

__all__ = ["retention_deadline", "retention_passed"]


def retention_passed(deadline: datetime, now: datetime) -> bool:
    """Whether a retention that ends at ``deadline`` has passed at ``now``: the deadline itself counts."""
    require_aware(now)
    require_aware(deadline)
    return deadline <= now


def retention_deadline(
    retain_until: datetime,
    *,
    held_since: datetime | None = None,
    max_retention: timedelta | None = None,
    condition: datetime | None = None,
) -> datetime:
    """When a holder's retention of an item ends (SPEC §11.13).

    ``retain_until`` is the label's; ``max_retention`` the maximum of the agreement the
    copy is held under, counted from ``held_since`` (when it was received); ``condition``
    the earliest ``retain-until`` condition of its consent chain. The earliest of those
    that apply.
    """
    require_aware(retain_until)
    deadline = retain_until
    if held_since is not None and max_retention is not None:
        require_aware(held_since)
        deadline = min(deadline, held_since + max_retention)
    if condition is not None:
        require_aware(condition)
        deadline = min(deadline, condition)
    return deadline
