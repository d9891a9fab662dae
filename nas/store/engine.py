"""Engine creation and schema checks.

SQLite gets WAL (the dashboard reads while the driver writes), ``synchronous=NORMAL``, foreign keys
and a busy timeout; the search driver is the only writer.  Any other SQLAlchemy URL (PostgreSQL...)
is used as given.
"""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from .migrations import READABLE_OLD_VERSIONS, MigrationError, migrate
from .models import SCHEMA_VERSION, Base, VersionInfo

DEFAULT_URL = "sqlite:///nas.db"


class StoreError(Exception):
    """A problem with the results store that the user must fix (bad URL, unwritable path, newer schema)."""


def normalise_url(url: str) -> str:
    """Accept a SQLAlchemy URL or a bare file path (treated as SQLite)."""
    if "://" not in url:
        return f"sqlite:///{url}"
    return url


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def make_engine(url: str, *, create: bool) -> Engine:
    """Engine for ``url``; with ``create=False`` a missing SQLite file is an error, not a new DB."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"invalid database URL {url!r}") from None
    path = sqlite_path(url)
    if path is not None:
        if not create and not path.exists():
            raise StoreError(f"database file {str(path)!r} does not exist")
        if create and not path.exists():
            parent = path.parent if str(path.parent) else Path(".")
            if not parent.is_dir():
                raise StoreError(f"cannot create database {str(path)!r}: directory {str(parent)!r} does not exist")
            if not os.access(parent, os.W_OK):
                raise StoreError(f"cannot create database {str(path)!r}: directory {str(parent)!r} is not writable")
        if path.exists() and path.is_dir():
            raise StoreError(f"database path {str(path)!r} is a directory")
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise StoreError(f"cannot use database URL {url!r}: {exc}") from None
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def ensure_schema(engine: Engine, *, create: bool) -> int:
    """Create tables on an empty DB, upgrade an older one in place; refuse a newer (or foreign) schema.
    Returns the store's schema version (older than ``SCHEMA_VERSION`` only for a store that could
    not be upgraded but can still be read)."""
    from nas import __version__

    try:
        tables = set(inspect(engine).get_table_names())
    except OperationalError as exc:
        raise StoreError(f"cannot open database {engine.url!r}: {exc.orig}") from None
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open database {engine.url!r}: {exc}") from None
    if not tables:
        if not create:
            raise StoreError(f"database {engine.url!r} holds no mixer-nas results")
        try:
            Base.metadata.create_all(engine)
            with Session(engine) as s, s.begin():
                s.add(VersionInfo(schema_version=SCHEMA_VERSION, library_version=__version__))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write database {engine.url!r}: {getattr(exc, 'orig', exc)}") from None
        return SCHEMA_VERSION
    if "version_info" not in tables:
        raise StoreError(f"database {engine.url!r} is not a mixer-nas store (no version_info table)")
    with Session(engine) as s:
        row = s.scalars(select(VersionInfo)).first()
    if row is None:
        raise StoreError(f"database {engine.url!r} has an empty version_info table")
    if row.schema_version > SCHEMA_VERSION:
        raise StoreError(
            f"database {engine.url!r} has schema version {row.schema_version}, newer than this "
            f"mixer-nas ({SCHEMA_VERSION}); upgrade mixer-nas to read it")
    if row.schema_version < SCHEMA_VERSION:
        return _upgrade(engine, row.schema_version, __version__)
    return row.schema_version


def _upgrade(engine: Engine, version: int, library_version: str) -> int:
    """Migrate an older store in place (a concurrent opener may have done it first); returns the
    version it now has.  A store that cannot be written (read-only) stays as it is if today's
    readers can read it (``READABLE_OLD_VERSIONS``): only writing a search needs the upgrade."""
    try:
        migrate(engine, version, library_version)
        return SCHEMA_VERSION
    except MigrationError as exc:
        with Session(engine) as s:
            row = s.scalars(select(VersionInfo)).first()
        if row is not None and row.schema_version == SCHEMA_VERSION:
            return SCHEMA_VERSION
        if version in READABLE_OLD_VERSIONS:
            return version
        raise StoreError(f"database {engine.url!r} has old schema version {version} (current "
                         f"{SCHEMA_VERSION}) and could not be upgraded in place: {exc}") from None
