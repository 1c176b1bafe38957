"""Engines, sessions and schema upgrade for SQLite and PostgreSQL (SPEC §11.7)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from node.errors import StoredDataError
from node.store.models import Base
from protocol.errors import ConfigurationError, IntelshareError

__all__ = [
    "MIGRATIONS_DIR",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_PAGE_SIZE",
    "DatabaseUnavailableError",
    "NoDatabaseError",
    "analyse",
    "database_error",
    "make_engine",
    "make_reader",
    "make_sessionmaker",
    "normalise_url",
    "opening",
    "upgrade",
]

#: Folder holding ``alembic.ini``, ``env.py`` and ``versions/``; shipped as package data.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

#: How long a SQLite writer waits for another writer's BEGIN IMMEDIATE to finish.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Page size of a new SQLite database (an existing one keeps its own).
SQLITE_PAGE_SIZE = 16_384


def normalise_url(url: str) -> str:
    """Pin PostgreSQL URLs to psycopg 3 (the only PostgreSQL driver we install)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _sqlite_on_connect(busy_timeout_ms: int) -> Callable[[Any, ConnectionPoolEntry], None]:
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 module so the "begin" hook can
        # emit BEGIN IMMEDIATE (documented SQLAlchemy pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # Before WAL: a page size only applies to a database with no tables yet, and is
            # ignored (harmlessly) for one that exists. Sealed items and envelopes are 4-11
            # KiB rows: on 16 KiB pages they fit one page instead of an overflow chain, so a
            # commit writes fewer WAL frames (SPEC §11.7).
            cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: the inbox and the audit log must survive power loss, not just a crash.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    return on_connect


def _sqlite_on_begin(conn: Connection) -> None:
    # Take the write lock up front: writers serialise instead of failing with
    # SQLITE_BUSY when a read transaction later tries to upgrade to a write.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **kwargs: Any) -> Engine:
    """Create an engine with the node's durability and locking settings.

    SQLite: WAL, ``synchronous=FULL``, foreign keys, ``busy_timeout_ms`` and BEGIN
    IMMEDIATE transactions. PostgreSQL: ``postgresql+psycopg://`` with pre-ping.
    ``kwargs`` go to ``create_engine``.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect(busy_timeout_ms))
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # No server-side prepared statements: psycopg prepares a query after five runs, and
    # PostgreSQL then keeps a generic plan made while the tables were empty (the replay
    # check read every delivery of a sender per batch once a receiver held 30k rows).
    # Planned on each run instead, the hot queries follow the statistics as tables grow.
    connect_args = {"prepare_threshold": None, **kwargs.pop("connect_args", {})}
    return create_engine(url, connect_args=connect_args, **kwargs)


class DatabaseUnavailableError(ConfigurationError):
    """The database a URL names cannot be reached or opened (no server there, refused, no such database)."""


#: What SQLite says of a file that is not a database, or a damaged one.
_NOT_A_DATABASE = ("file is not a database", "database disk image is malformed")


def database_error(exc: DBAPIError, url: str | None = None) -> IntelshareError | None:
    """The typed error a failure to open a database stands for, with one line; None for any other failure.

    A file that is not a SQLite database (or a damaged one) is ``StoredDataError``: data
    the node stored no longer opens. A server that cannot be reached, or refuses, is
    ``DatabaseUnavailableError``.
    """
    where = "" if url is None else f" {make_url(url).render_as_string(hide_password=True)}"
    cause = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    if any(text in cause for text in _NOT_A_DATABASE):
        return StoredDataError(f"the database{where} is not a SQLite database, or it is damaged: {cause}")
    if isinstance(exc, OperationalError):
        return DatabaseUnavailableError(f"cannot open the database{where}: {cause}")
    return None


@contextmanager
def opening(url: str) -> Iterator[None]:
    """Failures to open ``url`` inside the block become ``database_error``'s typed errors."""
    try:
        yield
    except DBAPIError as exc:
        typed = database_error(exc, url)
        if typed is None:
            raise
        raise typed from exc


class NoDatabaseError(FileNotFoundError):
    """A read-only engine was asked for a SQLite database file that does not exist."""


def make_reader(url: str) -> Engine:
    """An engine that can only read: for auditors, the console and tools (nothing is ever written).

    SQLite opens the file read-only (and refuses to create a missing one); PostgreSQL runs
    every transaction read-only. No pragmas that write, no BEGIN IMMEDIATE.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            raise NoDatabaseError("no database file")
        path = Path(database)
        if not path.is_file():
            raise NoDatabaseError(f"no database at {path}")
        engine = create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")

        def query_only(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            dbapi_connection.execute("PRAGMA query_only=1")

        event.listen(engine, "connect", query_only)
        return engine
    # Keep the URL's own options (say, a search_path) beside the read-only default.
    existing = parsed.query.get("options", "")
    options = " ".join(filter(None, ["-c default_transaction_read_only=on", str(existing)]))
    return create_engine(parsed.update_query_dict({"options": options}), pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory; rows stay readable after commit (no reload round trip)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


#: The schema a PostgreSQL URL selects with ``options=-csearch_path=NAME`` (a plain identifier).
_SEARCH_PATH = re.compile(r"-c\s*search_path=([A-Za-z_][A-Za-z0-9_]{0,62})(?:\s|$)")


def _create_schema(url: str) -> None:
    """Create the schema a PostgreSQL URL names in its search path, if missing (one per member, SPEC §11.7)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "postgresql":
        return
    options = parsed.query.get("options", "")
    match = _SEARCH_PATH.search(" ".join(options) if isinstance(options, tuple) else options)
    if match is None:
        return
    engine = create_engine(parsed)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{match[1]}"'))
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>`` on ``url`` with the packaged migrations.

    A PostgreSQL schema the URL selects (``options=-csearch_path=NAME``) is created first,
    and the node's tables are analysed after, so their statistics never depend on when
    autovacuum gets to them (SPEC §11.7).
    """
    _create_schema(url)
    # Imported here so importing the models does not pull in Alembic.
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option: ini values treat "%" as interpolation.
    cfg.attributes["url"] = url
    command.upgrade(cfg, revision)
    _analyse(url)


def _analyse(url: str) -> None:
    """``analyse`` on a short-lived engine for ``url`` (a no-op but on PostgreSQL)."""
    if make_url(normalise_url(url)).get_backend_name() != "postgresql":
        return
    engine = make_engine(url)
    try:
        analyse(engine)
    finally:
        engine.dispose()


def analyse(engine: Engine) -> None:
    """``ANALYZE`` the node's tables on PostgreSQL, on a connection of its own; a no-op elsewhere.

    The runtime calls it at start (``upgrade``) and each time the node's log has doubled,
    so the planner's statistics are never far from the tables' real sizes, whenever
    autovacuum comes round (SPEC §11.7). SQLite plans by its indexes and needs none.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        # The tables this package owns, not the whole database.
        names = [name for name in Base.metadata.tables if inspect(connection).has_table(name)]
        if names:
            connection.execute(text(f"ANALYZE {', '.join(names)}"))
            connection.commit()
