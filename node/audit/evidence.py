"""What commits to the audit log from outside its rows, and how the log compares with it (SPEC §11.10.6).

Used by ``node.audit.verify``: the node's own signed checkpoints, and ``Pin``s held by
others. A comparison that fails places the first altered entry after the last size that
still agrees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from node.audit.checkpoints import checkpoint_at, own_checkpoint_roots
from protocol.checkpoint import verify_checkpoint
from protocol.errors import RemoteProtocolError
from protocol.merkle import Frontier
from protocol.roster import Roster

__all__ = ["Comparisons", "Outcome", "own_checkpoints", "signature_checker"]

OWN = "the node's own signed checkpoint"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One comparison of the log with something that commits to its first ``size`` entries."""

    size: int
    agrees: bool
    source: str
    own: bool


def own_checkpoints(session: Session) -> list[tuple[int, bytes]]:
    """(size, root) of every checkpoint the node kept, oldest first (signatures are checked only where relied on)."""
    return own_checkpoint_roots(session)


def signature_checker(session: Session, roster: Roster, member: str) -> Callable[[int], bool]:
    """Whether the checkpoint row of a size carries ``member``'s valid signature for that size and root."""

    def signed(size: int) -> bool:
        row = checkpoint_at(session, size)
        if row is None:
            return False
        try:
            verified = verify_checkpoint(row.note, roster=roster, member_id=member)
        except RemoteProtocolError:
            return False
        return (verified.checkpoint.size, verified.checkpoint.root) == (row.size, row.root)

    return signed


class Comparisons:
    """The comparisons a streamed pass makes as the log's tree grows."""

    def __init__(self, own: Sequence[tuple[int, bytes]], pins: Sequence[tuple[int, bytes | None, str | None, str]]):
        self._own = dict(own)
        self._pins: dict[int, list[tuple[bytes | None, str | None, str]]] = {}
        for size, root, leaf, source in pins:
            self._pins.setdefault(size, []).append((root, leaf, source))
        self.outcomes: list[Outcome] = []

    def sizes(self) -> list[int]:
        """Every size something commits to, ascending: where the pass must stop and compare."""
        return sorted(self._own.keys() | self._pins.keys())

    def at(self, frontier: Frontier, leaf: str | None) -> None:
        """Compare everything that commits to the first ``frontier.size`` entries."""
        size = frontier.size
        own, pins = self._own.get(size), self._pins.get(size)
        if own is None and pins is None:
            return
        root = frontier.root()
        if own is not None:
            self.outcomes.append(Outcome(size, own == root, OWN, True))
        for pin_root, pin_leaf, source in pins or ():
            agrees = pin_root == root if pin_root is not None else pin_leaf == leaf
            self.outcomes.append(Outcome(size, agrees, source, False))

    def beyond(self, count: int) -> list[Outcome]:
        """Pins on sizes the log no longer reaches: entries after ``count`` were removed."""
        return [
            Outcome(size, False, source, False)
            for size, pins in self._pins.items()
            if size > count
            for _, _, source in pins
        ]
