"""Column types: timezone-aware UTC datetimes and enum-typed state columns.

``driver_time`` gives a datetime in the form the driver takes for a ``UTCDateTime``
column, for rows written by ``HotWrite``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.types import TypeDecorator

__all__ = ["EnumText", "UTCDateTime", "driver_time"]

E = TypeVar("E", bound=StrEnum)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect.

    SQLite has no timezone type and stores naive values, so we store naive UTC there and
    re-attach UTC on load; PostgreSQL stores ``timestamptz``. Naive input is rejected so a
    local-time value can never slip in silently.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one step to SQLite's own DATETIME text, remembering the last value.

        Same text as ``process_bind_param`` followed by SQLite's DATETIME processor
        (``YYYY-MM-DD HH:MM:SS.ffffff``). Hot paths bind one ``now`` to many rows and
        columns: the last conversion is kept, so they pay for it once.
        """
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        last: list[tuple[datetime | None, str | None]] = [(None, None)]

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            seen, text = last[0]  # one tuple read: safe without a lock
            if seen is value:
                return text
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("UTCDateTime needs a timezone-aware datetime")
            text = value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
            last[0] = (value, text)
            return text

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_TIME_PROCESSORS: dict[str, Callable[[Any], Any]] = {}


def driver_time(dialect: Dialect, at: datetime) -> Any:
    """``at`` as the driver takes it for a ``UTCDateTime`` column, for ``HotWrite`` rows.

    The same conversion SQLAlchemy applies when it binds the column itself.
    """
    processor = _TIME_PROCESSORS.get(dialect.name)
    if processor is None:
        made = UTCDateTime().bind_processor(dialect)
        assert made is not None  # a TypeDecorator with process_bind_param always has one
        processor = _TIME_PROCESSORS[dialect.name] = made
    return processor(at)


class EnumText(TypeDecorator[E], Generic[E]):
    """A ``StrEnum`` stored as its string value in a ``VARCHAR(length)`` column.

    The schema is unchanged (migrations and ``alembic check`` see the plain string
    type), and a value read back that is not a member fails loudly instead of flowing on
    as an unknown state.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[E], length: int = 16) -> None:
        super().__init__(length)
        self.enum_class = enum_class
        self.length = length

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        # A string that is no member goes through as it is: the column's CHECK constraint
        # (from the migrations) refuses it in the database, whoever writes it.
        return value.value if isinstance(value, self.enum_class) else value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_class(value)
