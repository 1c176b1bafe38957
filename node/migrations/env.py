"""Alembic environment for the node schema (target: ``node.store.Base.metadata``).

URL, first found wins: ``config.attributes["connection"]`` (an open Connection),
``config.attributes["url"]`` (set by ``node.store.upgrade``), ``-x url=...``, the
``INTELSHARE_DB_URL`` environment variable, ``sqlalchemy.url`` in the ini file.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from node.store import Base, EnumText, UTCDateTime, make_engine, normalise_url

config = context.config

# Only the CLI configures logging: tests and the node call upgrade() programmatically and
# must keep their own logging set-up.
if config.cmd_opts is not None and config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("INTELSHARE_DB_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set INTELSHARE_DB_URL")
    return normalise_url(str(url))


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Keep generated migrations free of imports from node.store: a migration must keep
    # working after the models change.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, EnumText):
        return f"sa.String({obj.length})"
    return False


def _configure(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=sqlite,
        # make_engine's BEGIN IMMEDIATE recipe makes SQLite DDL transactional, so a
        # failed migration rolls back as a whole there too.
        transactional_ddl=True if sqlite else None,
        compare_type=True,
        render_item=_render_item,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    # make_engine applies the node's SQLite pragmas and BEGIN IMMEDIATE, so DDL runs in
    # one locked transaction like any other writer.
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
