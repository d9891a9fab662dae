"""Engine creation and schema checks.

SQLite gets WAL (the dashboard reads while the driver writes), ``synchronous=NORMAL``, foreign keys
and a busy timeout; the search driver is the only writer.  Any other SQLAlchemy URL (PostgreSQL...)
is used as given.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, select
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, SQLAlchemyError
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


def display_url(url: str | URL) -> str:
    """``url`` as it may be printed, logged or shown on a page: any password replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # unparsable: mask whatever sits between "user:" and "@"
        return _USER_PASSWORD.sub(r"\1***@", url)
    secret_options = {key: _MASK for key in parsed.query if "password" in key.lower()}  # ?password=...
    if parsed.password is None and not secret_options:
        return url  # as given: rendering would percent-escape e.g. ":memory:"
    return parsed.update_query_dict(secret_options).render_as_string(hide_password=True).replace(_MASK, "***")


_MASK = "MIXERNASMASKED"  # a value rendering leaves alone, swapped for "***" afterwards


_USER_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def error_line(exc: BaseException) -> str:
    """One true line for a database error: the driver's own message, without SQLAlchemy's SQL echo and
    "Background on this error" link or the driver's indented hints (psycopg's "Is the server running...")."""
    inner = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(inner).splitlines()
             if line.strip() and not line.strip().startswith("(Background on this error")]
    if not lines:
        return type(inner).__name__
    first = lines[0]
    if first.endswith(":") and len(lines) > 1:  # "Multiple connection attempts failed. All failures were:"
        first = f"{first} {lines[1].lstrip('- ')}"
    return first


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite); StoreError if malformed."""
    u = _parse(normalise_url(url))
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def make_engine(url: str, *, create: bool) -> Engine:
    """Engine for ``url``; with ``create=False`` a missing SQLite file is an error, not a new DB, and a
    file this process cannot write (read-only filesystem or directory) is opened read-only."""
    url = normalise_url(url)
    parsed = _parse(url)
    path = sqlite_path(url)
    read_only_url = None
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
        if not create:
            read_only_url = sqlite_read_only_url(path)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(read_only_url or url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_read_only_pragmas if read_only_url else _sqlite_pragmas)
            event.listen(engine, "handle_error", _sqlite_damaged(display_url(url)))
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise StoreError(f"cannot use database URL {display_url(url)!r}: {error_line(exc)}") from None
    return engine


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"invalid database URL {display_url(url)!r}") from None
    except ValueError:  # make_url's int(port): "invalid literal for int() with base 10"
        raise StoreError(f"invalid database URL {display_url(url)!r}: the port is not a number") from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise StoreError(f"invalid database URL {display_url(url)!r}: the port must be between 1 and 65535")
    return parsed


def sqlite_read_only_url(path: Path) -> URL | None:
    """A read-only SQLite URI for a database this process cannot write, else None.

    Even reading a WAL database needs its ``-shm``/``-wal`` files, which SQLite creates beside it.
    In a directory that cannot be written, ``mode=ro`` works only if both exist; without a ``-wal``
    file every committed transaction is in the main file, so ``immutable=1`` reads it as it is.
    """
    directory = path.parent if str(path.parent) else Path(".")
    dir_writable = os.access(directory, os.W_OK)
    if dir_writable and os.access(path, os.W_OK):
        return None
    options = {"mode": "ro"}
    if not dir_writable and not Path(f"{path}-wal").exists():
        options["immutable"] = "1"
    # A URL object, not a string: SQLAlchemy would unquote the percent-escapes SQLite's URI needs ("#", "?").
    return URL.create("sqlite", database=f"file:{urllib.parse.quote(str(path.resolve()))}",
                      query={**options, "uri": "true"})


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_read_only_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.execute("PRAGMA foreign_keys=ON")  # journal mode and sync level would be writes


def _sqlite_damaged(shown_url: str):
    """A ``handle_error`` hook: SQLite's plain DatabaseError ("database disk image is malformed", "file is
    not a database") means a damaged file; say so in one line instead of SQLAlchemy's traceback."""
    def handle(context) -> None:
        if type(context.sqlalchemy_exception) is DatabaseError:
            raise StoreError(f"database {shown_url!r} is damaged: {error_line(context.original_exception)} "
                             f"(restore a copy, or salvage it with `sqlite3 FILE .recover`)")
    return handle


def ensure_schema(engine: Engine, *, create: bool) -> int:
    """Create tables on an empty DB, upgrade an older one in place; refuse a newer (or foreign) schema.
    Returns the store's schema version (older than ``SCHEMA_VERSION`` only for a store that could
    not be upgraded but can still be read)."""
    from nas import __version__

    try:
        tables = set(inspect(engine).get_table_names())
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open database {engine.url!r}: {error_line(exc)}") from None
    if not tables:
        if not create:
            raise StoreError(f"database {engine.url!r} holds no mixer-nas results")
        try:
            Base.metadata.create_all(engine)
            with Session(engine) as s, s.begin():
                s.add(VersionInfo(schema_version=SCHEMA_VERSION, library_version=__version__))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write database {engine.url!r}: {error_line(exc)}") from None
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
