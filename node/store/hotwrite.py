"""Hot-path bulk writes straight to the driver (SPEC §11.7)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert, Update

__all__ = ["HotWrite"]


class HotWrite:
    """A Core INSERT or UPDATE that a hot path runs for many rows at once (SPEC §11.7).

    SQLAlchemy compiles the statement once per dialect and set of keys; the rows then go
    to the driver's ``executemany`` as they are, skipping SQLAlchemy's per-row parameter
    building and type processing, which was most of the Python time of a bulk write, on
    the node's one database thread. So values must already be what the driver takes:
    datetimes from ``driver_time``; ``bytes``, ``str``, ``int``, ``bool`` and ``None``
    as they are. Every row has the keys of the first.
    """

    def __init__(self, statement: Insert | Update) -> None:
        self._statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], tuple[str, Callable[[Mapping[str, Any]], Any] | None]] = {}

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write ``rows`` in the connection's transaction."""
        if not rows:
            return
        keys = tuple(rows[0])
        cached = self._compiled.get((connection.dialect.name, keys))
        if cached is None:
            compiled = self._statement.compile(dialect=connection.dialect, column_keys=list(keys))
            # Positional (sqlite3): each row as a tuple in the statement's order.
            as_tuple = _tuple_getter(compiled.positiontup or ()) if compiled.positional else None
            cached = self._compiled[(connection.dialect.name, keys)] = (compiled.string, as_tuple)
        sql, as_tuple = cached
        if as_tuple is None:  # named parameters (psycopg): the rows as they are
            connection.exec_driver_sql(sql, list(rows))
        else:
            connection.exec_driver_sql(sql, [as_tuple(row) for row in rows])


def _tuple_getter(keys: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if len(keys) == 1:  # itemgetter of one key returns the value, not a 1-tuple
        (key,) = keys
        return lambda row: (row[key],)
    return operator.itemgetter(*keys)
