"""Typed, frozen values the store returns: searches, trials and their epochs.

Callers (driver, CLI, dashboard, export, benchmarks) read attributes, never string keys, and
never hold ORM objects across sessions.  ``TrialRecord.to_json()`` is the public JSON shape of
``nas trials --json`` / ``nas show --json``; ``TrialStatus`` is a ``str`` enum, so the database
keeps plain status strings and old rows read back unchanged.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any


class TrialStatus(str, enum.Enum):
    """Where a trial stands.  COMPLETED and STOPPED (early-stopped by the scheduler) are *feasible*:
    both have a measured speed and a validation accuracy, STOPPED from fewer epochs."""

    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    INFEASIBLE = "infeasible"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @property
    def feasible(self) -> bool:
        return self in (TrialStatus.COMPLETED, TrialStatus.STOPPED)

    @property
    def finished(self) -> bool:
        return self is not TrialStatus.RUNNING

    @classmethod
    def parse(cls, value: Any) -> "TrialStatus | str":
        """The enum member for a stored value; an unknown (corrupt) value stays a plain string."""
        try:
            return cls(value)
        except ValueError:
            return str(value)


class SearchStatus(str, enum.Enum):
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


TRIAL_STATES = tuple(s.value for s in TrialStatus)
FEASIBLE_STATES = tuple(s.value for s in TrialStatus if s.feasible)
# What a trial reports after every epoch (columns of ``epoch_metrics``).
EPOCH_METRICS = ("train_loss", "val_loss", "val_accuracy", "lr", "images_per_s", "elapsed_s")


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    train_loss: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    lr: float | None = None
    images_per_s: float | None = None
    elapsed_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial.  JSON columns that could not be parsed arrive as None (or empty), never raise."""

    id: int
    search: str | None
    number: int
    status: TrialStatus | str
    arch: dict | None
    arch_hash: str
    recipe: dict | None
    recipe_hash: str
    model_args: dict | None = None
    data_config: dict | None = None
    seed_name: str | None = None
    reused_from: int | None = None
    device_kind: str | None = None
    accuracy: float | None = None
    throughput: float | None = None
    throughput_iqr: float | None = None
    latency_ms: float | None = None
    latency_iqr_ms: float | None = None
    params: int | None = None
    gmacs: float | None = None
    uncounted_ops: tuple[str, ...] = ()
    protocol: dict | None = None
    epochs_done: int = 0
    devices_held: float = 0.0
    device_hours: float = 0.0
    weights_path: str | None = None
    error: str | None = None
    tune_trial_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    epochs: tuple[EpochRecord, ...] | None = None  # only when asked for (``Store.trial``)

    @property
    def feasible(self) -> bool:
        """Passed the speed limits and trained (to the end or until the scheduler stopped it)."""
        return isinstance(self.status, TrialStatus) and self.status.feasible

    @property
    def scored(self) -> bool:
        """Feasible with an accuracy: what a strategy learns from and what ``--best`` ranks."""
        return self.feasible and self.accuracy is not None

    @property
    def usable(self) -> bool:
        """Scored and measured: a point of the accuracy/throughput plane."""
        return (self.scored and self.throughput is not None and math.isfinite(self.throughput)
                and self.throughput > 0 and math.isfinite(self.accuracy))

    @property
    def objectives(self) -> tuple[float, float] | None:
        """(accuracy, throughput), both maximised, or None when the trial is not a usable point."""
        return (self.accuracy, self.throughput) if self.usable else None

    @property
    def reused(self) -> bool:
        return self.reused_from is not None

    def to_json(self) -> dict[str, Any]:
        """The public trial object (``--json``); ``epochs`` only when loaded."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "epochs"}
        out["status"] = str(self.status)
        out["uncounted_ops"] = list(self.uncounted_ops)
        if self.epochs is not None:
            out["epochs"] = [e.to_json() for e in self.epochs]
        return out


@dataclass(frozen=True)
class SearchRecord:
    id: int
    name: str
    space: str
    space_description: dict
    config: dict  # the search's stored settings (see ``nas.search.settings.SearchSettings``)
    budget_kind: str
    budget_total: float
    budget_text: str
    charged: float
    status: SearchStatus | str
    device_kind: str | None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def running(self) -> bool:
        return self.status == SearchStatus.RUNNING

    def setting(self, *path: str) -> Any:
        """A nested stored setting, e.g. ``setting("measure", "max_latency_ms")``; None when absent."""
        value: Any = self.config
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value


@dataclass(frozen=True)
class Measurement:
    """What a trial reports once it has been built at the target resolution: size, cost and speed.

    ``violation`` names the speed limit it broke (None: feasible).  Travels through Tune as a
    plain dict (``to_report`` / ``from_report``) inside the ``measure`` phase report.
    """

    params: int
    gmacs: float
    latency_ms: float | None
    throughput: float | None
    latency_iqr_ms: float | None = None
    throughput_iqr: float | None = None
    uncounted_ops: tuple[str, ...] = ()
    protocol: dict | None = None
    device_kind: str | None = None
    model_args: dict | None = None
    data_config: dict | None = None
    violation: str | None = None

    @property
    def feasible(self) -> bool:
        return self.violation is None

    def to_report(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["uncounted_ops"] = sorted(self.uncounted_ops)
        out["feasible"] = self.feasible
        return out

    @classmethod
    def from_report(cls, result: dict[str, Any]) -> "Measurement":
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in result.items() if k in fields}
        values["uncounted_ops"] = tuple(values.get("uncounted_ops") or ())
        if not result.get("feasible", True) and not values.get("violation"):
            values["violation"] = "speed constraint not met"
        return cls(**values)
