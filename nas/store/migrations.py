"""In-place upgrades of stores written by older mixer-nas versions.

``MIGRATIONS[v]`` turns a schema-``v`` store into schema ``v + 1``.  Each step spells out the
tables it adds (rather than reusing today's models), so an old step keeps doing what it did
when later versions change the models.  Every step and the version bump run in one
transaction: a store is either fully upgraded or left as it was.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import (
    Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text, UniqueConstraint, inspect, update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from .models import SCHEMA_VERSION, VersionInfo


class MigrationError(Exception):
    """A store could not be upgraded (read-only file, a concurrent writer, a server without rights)."""


def _add_search_leases(conn: Connection) -> None:
    """1 -> 2: the ``search_leases`` table (which driver owns a running search)."""
    if "search_leases" in inspect(conn).get_table_names():
        return
    metadata = MetaData()
    Table("searches", metadata, Column("id", Integer, primary_key=True))
    Table("search_leases", metadata,
          Column("search_id", Integer, ForeignKey("searches.id", name="fk_search_leases_search_id_searches"),
                 primary_key=True),
          Column("driver_id", String(64), nullable=False),
          Column("host", String(255), nullable=False),
          Column("pid", Integer, nullable=False),
          Column("acquired_at", DateTime, nullable=False),
          Column("heartbeat_at", DateTime, nullable=False))
    metadata.tables["search_leases"].create(conn)


def _add_reference_measurements(conn: Connection) -> None:
    """2 -> 3: the ``reference_measurements`` table (the seed papers' models measured per device kind)."""
    if "reference_measurements" in inspect(conn).get_table_names():
        return
    metadata = MetaData()
    Table("measurement_protocols", metadata, Column("id", Integer, primary_key=True))
    Table("reference_measurements", metadata,
          Column("id", Integer, primary_key=True),
          Column("model", String(100), nullable=False, index=True),
          Column("device_kind", String(200), nullable=False),
          Column("protocol_id", Integer, ForeignKey(
              "measurement_protocols.id", name="fk_reference_measurements_protocol_id_measurement_protocols"),
              nullable=False),
          Column("params", Integer, nullable=False),
          Column("gmacs", Float, nullable=False),
          Column("uncounted_ops_json", Text, nullable=False),
          Column("latency_ms", Float, nullable=False),
          Column("latency_iqr_ms", Float, nullable=False),
          Column("throughput", Float, nullable=False),
          Column("throughput_iqr", Float, nullable=False),
          Column("measured_at", DateTime, nullable=False),
          UniqueConstraint("model", "device_kind", "protocol_id",
                           name="uq_reference_measurements_model_device_protocol"))
    metadata.tables["reference_measurements"].create(conn)


def _add_refinements(conn: Connection) -> None:
    """3 -> 4: the ``refinements`` table (trials retrained at a higher fidelity by ``nas refine``)."""
    if "refinements" in inspect(conn).get_table_names():
        return
    metadata = MetaData()
    Table("trials", metadata, Column("id", Integer, primary_key=True))
    Table("refinements", metadata,
          Column("id", Integer, primary_key=True),
          Column("trial_id", Integer, ForeignKey("trials.id", name="fk_refinements_trial_id_trials"),
                 nullable=False, index=True),
          Column("epochs", Integer, nullable=False),
          Column("recipe_json", Text, nullable=False),
          Column("recipe_hash", String(64), nullable=False),
          Column("status", String(16), nullable=False),
          Column("accuracy", Float, nullable=True),
          Column("epochs_done", Integer, nullable=False),
          Column("curve_json", Text, nullable=False),
          Column("device_kind", String(200), nullable=True),
          Column("devices_held", Float, nullable=False),
          Column("device_hours", Float, nullable=False),
          Column("weights_path", Text, nullable=True),
          Column("error", Text, nullable=True),
          Column("tune_trial_id", String(64), nullable=True),
          Column("started_at", DateTime, nullable=False),
          Column("finished_at", DateTime, nullable=True),
          UniqueConstraint("trial_id", "recipe_hash", name="uq_refinements_trial_recipe"))
    metadata.tables["refinements"].create(conn)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _add_search_leases, 2: _add_reference_measurements,
                                                       3: _add_refinements}
# Old versions today's readers can read as they are (later versions only added tables): a store of
# such a version that cannot be upgraded (read-only) is still opened for reading.
READABLE_OLD_VERSIONS = frozenset({1, 2, 3})


def migrate(engine: Engine, from_version: int, library_version: str) -> None:
    """Upgrade a schema-``from_version`` store to ``SCHEMA_VERSION`` in one transaction."""
    missing = [v for v in range(from_version, SCHEMA_VERSION) if v not in MIGRATIONS]
    if missing:
        raise MigrationError(f"no upgrade from schema version {missing[0]}")
    try:
        with engine.begin() as conn:
            for version in range(from_version, SCHEMA_VERSION):
                MIGRATIONS[version](conn)
            conn.execute(update(VersionInfo.__table__)
                         .where(VersionInfo.__table__.c.schema_version == from_version)
                         .values(schema_version=SCHEMA_VERSION, library_version=library_version))
    except SQLAlchemyError as exc:
        raise MigrationError(str(getattr(exc, "orig", exc)).splitlines()[0]) from None
