"""Refinements in the store: trials retrained at a higher fidelity (``nas refine``), linked to the trial.

A refinement is keyed by its trial and its refined recipe (the trial's recipe with more epochs):
asked again for the same epochs, a completed one is reused and a failed or interrupted one is
trained again in place.  The trial rows themselves are never changed, so every reader of trials
(front, budget, reuse, resume) sees the search exactly as it ran.  A store of schema 3 opened
read-only (it could not be upgraded) has no such table: it simply has no refinements.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from sqlalchemy import select

from search_spaces.canonical import canonical_json, json_hash

from .engine import StoreError
from .models import RefinementRow, Search, Trial, utcnow
from .records import EPOCH_METRICS, TrialStatus
from .repository import Store, _iso, _loads

__all__ = ["REFINEMENTS_SCHEMA", "RefinementRecord", "finish_refinement", "record_refinement_epoch",
           "refinements", "start_refinement"]

REFINEMENTS_SCHEMA = 4  # the schema version that added the table


@dataclass(frozen=True)
class RefinementRecord:
    """One trial retrained with ``epochs`` epochs: its best validation accuracy and learning curve."""

    id: int
    trial_id: int
    search: str | None
    epochs: int
    recipe: dict | None
    recipe_hash: str
    status: TrialStatus | str
    accuracy: float | None = None
    epochs_done: int = 0
    curve: tuple[dict[str, Any], ...] = ()  # one dict per epoch: ``epoch`` plus ``EPOCH_METRICS``
    device_kind: str | None = None
    devices_held: float = 0.0
    device_hours: float = 0.0
    weights_path: str | None = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def completed(self) -> bool:
        """Trained every epoch of the refined recipe: a result at the refined fidelity."""
        return self.status == TrialStatus.COMPLETED and self.accuracy is not None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = str(self.status)
        out["curve"] = list(self.curve)
        return out


def refinements(store: Store, *, search: str | None = None, trial_ids: Iterable[int] | None = None,
                epochs: int | None = None) -> list[RefinementRecord]:
    """Stored refinements (of one search's trials, of ``trial_ids``, at ``epochs``), in id order."""
    if store.schema_version < REFINEMENTS_SCHEMA:
        return []
    with store._session() as s:
        query = select(RefinementRow, Search.name).join(Trial, RefinementRow.trial_id == Trial.id).join(Search)
        if search is not None:
            query = query.where(Search.name == search)
        if trial_ids is not None:
            query = query.where(RefinementRow.trial_id.in_(sorted(set(trial_ids))))
        if epochs is not None:
            query = query.where(RefinementRow.epochs == epochs)
        return [_record(row, name) for row, name in s.execute(query.order_by(RefinementRow.id)).all()]


def start_refinement(store: Store, trial_id: int, recipe: Mapping[str, Any], *, tune_trial_id: str | None = None,
                     devices_held: float = 0.0) -> int:
    """A running refinement of ``trial_id`` under ``recipe`` (a failed or interrupted one is started over
    in place); returns its id.  A completed one is never overwritten (StoreError)."""
    _need_table(store)
    recipe_hash = json_hash(dict(recipe))
    with store._write() as s:
        if s.get(Trial, trial_id) is None:
            raise StoreError(f"unknown trial {trial_id}")
        row = s.scalar(select(RefinementRow).where(RefinementRow.trial_id == trial_id,
                                                   RefinementRow.recipe_hash == recipe_hash))
        if row is not None and row.status == TrialStatus.COMPLETED.value:
            raise StoreError(f"trial {trial_id} is already refined at {row.epochs} epochs (refinement {row.id})")
        if row is None:
            row = RefinementRow(trial_id=trial_id, recipe_hash=recipe_hash)
            s.add(row)
        row.epochs, row.recipe_json = int(recipe["epochs"]), canonical_json(dict(recipe))
        row.status, row.accuracy, row.epochs_done, row.curve_json = TrialStatus.RUNNING.value, None, 0, "[]"
        row.device_kind, row.devices_held, row.device_hours = None, float(devices_held), 0.0
        row.weights_path, row.error, row.tune_trial_id = None, None, tune_trial_id
        row.started_at, row.finished_at = utcnow(), None
        s.flush()
        return row.id


def record_refinement_epoch(store: Store, refinement_id: int, epoch: int, metrics: Mapping[str, Any], *,
                            best_accuracy: float | None, device_hours: float | None = None,
                            device_kind: str | None = None) -> None:
    """Add (or overwrite) one epoch of the curve, with the best accuracy so far and the running charge."""
    values = {"epoch": int(epoch), **{k: (float(metrics[k]) if metrics.get(k) is not None else None)
                                      for k in EPOCH_METRICS}}
    with store._write() as s:
        row = _get(s, refinement_id)
        curve = [e for e in _loads(row.curve_json, []) if isinstance(e, dict) and e.get("epoch") != epoch]
        row.curve_json = canonical_json(sorted(curve + [values], key=lambda e: e["epoch"]))
        row.epochs_done = max(row.epochs_done or 0, int(epoch))
        if best_accuracy is not None:
            row.accuracy = float(best_accuracy)
        if device_hours is not None:
            row.device_hours = float(device_hours)
        if device_kind:
            row.device_kind = device_kind


def finish_refinement(store: Store, refinement_id: int, status: TrialStatus, *, accuracy: float | None = None,
                      device_hours: float | None = None, error: str | None = None,
                      weights_path: str | None = None) -> None:
    with store._write() as s:
        row = _get(s, refinement_id)
        row.status, row.finished_at = TrialStatus(status).value, utcnow()
        if accuracy is not None:
            row.accuracy = float(accuracy)
        if device_hours is not None:
            row.device_hours = float(device_hours)
        if error is not None:
            row.error = error
        if weights_path is not None:
            row.weights_path = weights_path


def _need_table(store: Store) -> None:
    if store.schema_version < REFINEMENTS_SCHEMA:
        raise StoreError(f"database {store.engine.url!r} has old schema version {store.schema_version} and could "
                         f"not be upgraded (is it read-only?); it can be read, but no refinement can be stored")


def _get(s, refinement_id: int) -> RefinementRow:
    row = s.get(RefinementRow, refinement_id)
    if row is None:
        raise StoreError(f"unknown refinement {refinement_id}")
    return row


def _record(row: RefinementRow, search: str | None) -> RefinementRecord:
    curve = _loads(row.curve_json, [])
    return RefinementRecord(
        id=row.id, trial_id=row.trial_id, search=search, epochs=row.epochs, recipe=_loads(row.recipe_json, None),
        recipe_hash=row.recipe_hash, status=TrialStatus.parse(row.status), accuracy=row.accuracy,
        epochs_done=row.epochs_done or 0,
        curve=tuple(e for e in curve if isinstance(e, dict)) if isinstance(curve, list) else (),
        device_kind=row.device_kind, devices_held=row.devices_held or 0.0, device_hours=row.device_hours or 0.0,
        weights_path=row.weights_path, error=row.error, started_at=_iso(row.started_at),
        finished_at=_iso(row.finished_at))
