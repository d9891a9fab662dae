"""SQLAlchemy 2 ORM models of the results store (searches, trials, epoch metrics, protocols).

Modelled on Optuna's RDB storage split (``optuna/storages/_rdb/models.py``): one row per search,
one per trial, one per reported epoch, plus a schema-version table that is checked on open
(older stores are migrated in place by ``nas.store.migrations``), plus one lease row per
search that a driver is running, plus the seed papers' reference models measured on each device kind,
plus the refinements (``nas refine``: a trial retrained at a higher fidelity, linked to it).
All JSON columns hold canonical JSON text so any SQLAlchemy backend (SQLite, PostgreSQL) works.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    DateTime, Float, ForeignKey, Integer, MetaData, String, Text, UniqueConstraint, Index,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .records import SearchStatus, TrialStatus

SCHEMA_VERSION = 4  # 2: search_leases (one driver per search); 3: reference_measurements; 4: refinements


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class VersionInfo(Base):
    __tablename__ = "version_info"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schema_version: Mapped[int] = mapped_column(Integer)
    library_version: Mapped[str] = mapped_column(String(32))


class Search(Base):
    __tablename__ = "searches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    space: Mapped[str] = mapped_column(String(200))            # space name (or file path it came from)
    space_json: Mapped[str] = mapped_column(Text)              # the full space description
    config_json: Mapped[str] = mapped_column(Text)             # strategy, dataset, recipe, constraints, resources
    budget_kind: Mapped[str] = mapped_column(String(16))       # "gpu-h" | "cpu-h" | "trials"
    budget_total: Mapped[float] = mapped_column(Float)         # device-hours, or a trial count
    budget_text: Mapped[str] = mapped_column(String(64))       # as the user wrote it, e.g. "64gpu-h"
    charged: Mapped[float] = mapped_column(Float, default=0.0)  # device-hours (or trials) charged so far
    status: Mapped[str] = mapped_column(String(16), default=SearchStatus.RUNNING.value)
    device_kind: Mapped[str | None] = mapped_column(String(200), nullable=True)  # e.g. "cpu:AMD EPYC (2 threads)"
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    trials: Mapped[list["Trial"]] = relationship(back_populates="search", order_by="Trial.number")


class MeasurementProtocol(Base):
    """How a latency/throughput number was taken; shared by every trial measured the same way."""
    __tablename__ = "measurement_protocols"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    protocol_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    protocol_json: Mapped[str] = mapped_column(Text)   # warmup, repeats, batch sizes, threads, device, dtype, torch
    device_kind: Mapped[str] = mapped_column(String(200))


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("search_id", "number", name="uq_trials_search_number"),
        Index("ix_trials_reuse", "arch_hash", "recipe_hash", "device_kind"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)                 # 0, 1, 2 ... within the search
    tune_trial_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    arch_json: Mapped[str] = mapped_column(Text)                 # canonical JSON: mixers, depths, dims, mixer_kwargs
    arch_hash: Mapped[str] = mapped_column(String(64))
    recipe_json: Mapped[str] = mapped_column(Text)               # proxy recipe (dataset, epochs, res, ...)
    recipe_hash: Mapped[str] = mapped_column(String(64))
    model_args_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # kwargs that rebuild the trained model
    data_config_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # input size, mean/std it trained with
    seed_name: Mapped[str | None] = mapped_column(String(100), nullable=True)  # e.g. "CAFormer-like" for hand designs
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.RUNNING.value, index=True)
    reused_from_id: Mapped[int | None] = mapped_column(ForeignKey("trials.id"), nullable=True)
    device_kind: Mapped[str | None] = mapped_column(String(200), nullable=True)
    params: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gmacs: Mapped[float | None] = mapped_column(Float, nullable=True)          # at the target resolution
    uncounted_ops_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)     # batch 1, median
    latency_iqr_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    throughput: Mapped[float | None] = mapped_column(Float, nullable=True)     # img/s at the throughput batch, median
    throughput_iqr: Mapped[float | None] = mapped_column(Float, nullable=True)
    protocol_id: Mapped[int | None] = mapped_column(ForeignKey("measurement_protocols.id"), nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)       # best proxy val accuracy, 0..1
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    devices_held: Mapped[float] = mapped_column(Float, default=0.0)  # GPUs (or CPUs on a CPU search) held
    device_hours: Mapped[float] = mapped_column(Float, default=0.0)  # charged: wall time x devices held
    weights_path: Mapped[str | None] = mapped_column(Text, nullable=True)  # safetensors of the proxy-trained model
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    search: Mapped[Search] = relationship(back_populates="trials")
    protocol: Mapped[MeasurementProtocol | None] = relationship()
    epochs: Mapped[list["EpochMetric"]] = relationship(order_by="EpochMetric.epoch", cascade="all, delete-orphan")


class EpochMetric(Base):
    __tablename__ = "epoch_metrics"
    __table_args__ = (UniqueConstraint("trial_id", "epoch", name="uq_epoch_metrics_trial_epoch"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)                # 1-based
    train_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    lr: Mapped[float | None] = mapped_column(Float, nullable=True)
    images_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    elapsed_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class SearchLease(Base):
    """The driver that owns a running search: at most one row per search, renewed by its heartbeat.

    Taken in the transaction that marks the search running, deleted when the driver ends; a row
    whose driver died (no heartbeat, or its process gone) may be taken over by ``--resume``.
    """
    __tablename__ = "search_leases"
    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id"), primary_key=True)
    driver_id: Mapped[str] = mapped_column(String(64))          # random per driver run
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ReferenceMeasurementRow(Base):
    """A seed paper's own model (e.g. ``litv2_s``) measured on one device kind under one protocol.

    Measured once per device kind and protocol, at the start of the first search that needs it, and
    shown beside every search measured the same way (``nas.store.references``).
    """
    __tablename__ = "reference_measurements"
    __table_args__ = (UniqueConstraint("model", "device_kind", "protocol_id",
                                       name="uq_reference_measurements_model_device_protocol"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(100), index=True)      # timm name
    device_kind: Mapped[str] = mapped_column(String(200))
    protocol_id: Mapped[int] = mapped_column(ForeignKey("measurement_protocols.id"))
    params: Mapped[int] = mapped_column(Integer)
    gmacs: Mapped[float] = mapped_column(Float)
    uncounted_ops_json: Mapped[str] = mapped_column(Text, default="[]")
    latency_ms: Mapped[float] = mapped_column(Float)
    latency_iqr_ms: Mapped[float] = mapped_column(Float)
    throughput: Mapped[float] = mapped_column(Float)
    throughput_iqr: Mapped[float] = mapped_column(Float)
    measured_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    protocol: Mapped[MeasurementProtocol] = relationship()


class RefinementRow(Base):
    """A trial retrained at a higher fidelity (``nas refine``): the same architecture and recipe with more
    epochs, linked to the trial whose proxy accuracy it checks.

    One row per (trial, refined recipe): a refine asked again for the same epochs reuses a completed
    row and retrains a failed one in place.  The original trial row is never changed.
    """
    __tablename__ = "refinements"
    __table_args__ = (UniqueConstraint("trial_id", "recipe_hash", name="uq_refinements_trial_recipe"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)  # the proxy-fidelity trial
    epochs: Mapped[int] = mapped_column(Integer)                  # the refined recipe's epochs (the fidelity)
    recipe_json: Mapped[str] = mapped_column(Text)                # the trial's recipe with ``epochs`` raised
    recipe_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.RUNNING.value)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)  # best validation accuracy, 0..1
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    curve_json: Mapped[str] = mapped_column(Text, default="[]")   # per-epoch metrics (EPOCH_METRICS + epoch)
    device_kind: Mapped[str | None] = mapped_column(String(200), nullable=True)
    devices_held: Mapped[float] = mapped_column(Float, default=0.0)
    device_hours: Mapped[float] = mapped_column(Float, default=0.0)  # wall time x devices held
    weights_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    tune_trial_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
