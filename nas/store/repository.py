"""``Store``: the one place that reads and writes the results database.

The search driver is the only writer during a search (a Ray Tune callback in the driver
process); the CLI, dashboard and export only read.  Methods return the frozen records of
``nas.store.records``, so callers never hold ORM objects across sessions or index string keys.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from search_spaces.canonical import canonical_json, json_hash

from .engine import StoreError, ensure_schema, make_engine, normalise_url
from .leases import DriverId, DriverLease, SearchBusyError, busy, drop_lease, read_lease, renew_lease, take_lease
from .models import EpochMetric, MeasurementProtocol, Search, Trial, utcnow
from .records import (
    EPOCH_METRICS, FEASIBLE_STATES, EpochRecord, Measurement, SearchRecord, SearchStatus, TrialRecord, TrialStatus,
)


def open_store(url: str, *, create: bool = False) -> "Store":
    """Open (or with ``create=True`` initialise) the store at ``url``; StoreError on any problem."""
    return Store(url, create=create)


class Store:
    def __init__(self, url: str, *, create: bool = False):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, create=create)
        self.schema_version = ensure_schema(self.engine, create=create)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def _write(self):
        """A session in one transaction; SQLAlchemy errors surface as StoreError."""
        return _WriteSession(self._session)

    # ------------------------------------------------------------------ searches
    def create_search(self, name: str, *, space: str, space_description: dict, config: dict, budget_kind: str,
                      budget_total: float, budget_text: str, device_kind: str | None = None,
                      driver: DriverId | None = None) -> SearchRecord:
        """A new running search; with ``driver``, owned by it (lease taken in the same transaction)."""
        with self._write() as s:
            if s.scalar(select(Search.id).where(Search.name == name)) is not None:
                raise StoreError(f"a search named {name!r} already exists (use --resume {name} to continue it)")
            row = Search(name=name, space=space, space_json=canonical_json(space_description),
                         config_json=canonical_json(config), budget_kind=budget_kind, budget_total=budget_total,
                         budget_text=budget_text, device_kind=device_kind, status=SearchStatus.RUNNING.value)
            s.add(row)
            s.flush()
            if driver is not None:
                self._need_leases()
                take_lease(s, row.id, name, driver, lambda lease: False)
            return search_record(row)

    # ------------------------------------------------------------------ ownership (one driver per search)
    def claim_search(self, name: str, driver: DriverId, is_stale: Callable[[DriverLease], bool],
                     **fields: Any) -> tuple[SearchRecord, DriverLease | None]:
        """Take search ``name`` for ``driver`` and mark it running (plus ``fields``), in one transaction.

        Returns the search and the stale lease it replaced (None if it was free); raises
        ``SearchBusyError`` naming the owner while a live driver holds it.
        """
        _check_search_fields(fields)
        self._need_leases()
        try:
            with self._write() as s:
                row = s.scalar(select(Search).where(Search.name == name))
                if row is None:
                    raise StoreError(f"unknown search {name!r}")
                replaced = take_lease(s, row.id, name, driver, is_stale)
                row.status = SearchStatus.RUNNING.value
                for k, v in fields.items():
                    setattr(row, k, v)
                s.flush()
                return search_record(row), replaced
        except StoreError as exc:  # a concurrent driver inserted its lease first (primary key)
            lease = None if isinstance(exc, SearchBusyError) else self.search_lease(name)
            if lease is not None and lease.driver_id != driver.driver_id:
                raise busy(name, lease) from None
            raise

    def search_lease(self, name: str) -> DriverLease | None:
        """The driver that owns search ``name`` now (None: nobody, e.g. it ended or never started)."""
        self._need_leases()
        with self._session() as s:
            search_id = s.scalar(select(Search.id).where(Search.name == name))
            return None if search_id is None else read_lease(s, search_id)

    def _need_leases(self) -> None:
        if self.schema_version < 2:
            raise StoreError(f"database {self.engine.url!r} has old schema version {self.schema_version} and "
                             f"could not be upgraded (is it read-only?); it can be read, but no search can run on it")

    def renew_lease(self, search_id: int, driver_id: str) -> bool:
        """Heartbeat; False when another driver has taken the search over."""
        with self._write() as s:
            return renew_lease(s, search_id, driver_id)

    def release_search(self, search_id: int, driver_id: str, **fields: Any) -> bool:
        """End this driver's ownership, writing ``fields`` (status, charge) in the same transaction.

        Nothing is written when the search has been taken over (returns False): the new owner's
        status stands.
        """
        _check_search_fields(fields)
        with self._write() as s:
            if not drop_lease(s, search_id, driver_id):
                return False
            row = s.get(Search, search_id)
            for k, v in fields.items():
                setattr(row, k, v.value if isinstance(v, SearchStatus) else v)
            return True

    def get_search(self, name: str) -> SearchRecord | None:
        with self._session() as s:
            row = s.scalar(select(Search).where(Search.name == name))
            return search_record(row) if row else None

    def list_searches(self) -> list[SearchRecord]:
        with self._session() as s:
            return [search_record(r) for r in s.scalars(select(Search).order_by(Search.id))]

    def update_search(self, name: str, **fields: Any) -> None:
        _check_search_fields(fields)
        with self._write() as s:
            row = s.scalar(select(Search).where(Search.name == name))
            if row is None:
                raise StoreError(f"unknown search {name!r}")
            for k, v in fields.items():
                setattr(row, k, v.value if isinstance(v, SearchStatus) else v)

    def charged(self, search_id: int) -> float:
        """Device-hours charged so far: the sum over the search's trials."""
        with self._session() as s:
            return float(s.scalar(select(func.coalesce(func.sum(Trial.device_hours), 0.0))
                                  .where(Trial.search_id == search_id)))

    # ------------------------------------------------------------------ trials
    def start_trial(self, search_id: int, *, arch: dict, recipe: dict, tune_trial_id: str | None = None,
                    seed_name: str | None = None, devices_held: float = 0.0, model_args: dict | None = None,
                    device_kind: str | None = None) -> int:
        with self._write() as s:
            number = _next_number(s, search_id)
            row = Trial(search_id=search_id, number=number, tune_trial_id=tune_trial_id,
                        arch_json=canonical_json(arch), arch_hash=json_hash(arch),
                        recipe_json=canonical_json(recipe), recipe_hash=json_hash(recipe),
                        model_args_json=canonical_json(model_args) if model_args is not None else None,
                        seed_name=seed_name, status=TrialStatus.RUNNING.value, devices_held=devices_held, device_kind=device_kind)
            s.add(row)
            s.flush()
            return row.id

    def record_measurement(self, trial_id: int, measurement: Measurement, *,
                           device_hours: float | None = None) -> None:
        m = measurement
        with self._write() as s:
            row = _get_trial(s, trial_id)
            if device_hours is not None:
                row.device_hours = float(device_hours)
            row.params, row.gmacs = int(m.params), float(m.gmacs)
            if m.model_args is not None:
                row.model_args_json = canonical_json(m.model_args)
            if m.data_config is not None:
                row.data_config_json = canonical_json(m.data_config)
            row.uncounted_ops_json = canonical_json(sorted(m.uncounted_ops))
            row.latency_ms, row.latency_iqr_ms = m.latency_ms, m.latency_iqr_ms
            row.throughput, row.throughput_iqr = m.throughput, m.throughput_iqr
            if m.device_kind:
                row.device_kind = m.device_kind
            if m.protocol is not None:
                row.protocol_id = _protocol_id(s, m.protocol, m.device_kind or row.device_kind or "unknown")

    def record_epoch(self, trial_id: int, epoch: int, metrics: dict[str, Any], *, best_accuracy: float | None,
                     device_hours: float | None = None) -> None:
        """Insert or overwrite one epoch's metrics (a resumed trial may report an epoch again), with the
        trial's best accuracy so far and running charge, in one transaction."""
        values = {k: (float(v) if v is not None else None) for k, v in metrics.items() if k in EPOCH_METRICS}
        with self._write() as s:
            row = s.scalar(select(EpochMetric).where(EpochMetric.trial_id == trial_id, EpochMetric.epoch == epoch))
            if row is None:
                s.add(EpochMetric(trial_id=trial_id, epoch=epoch, **values))
            else:
                for k, v in values.items():
                    setattr(row, k, v)
            trial = _get_trial(s, trial_id)
            if device_hours is not None:
                trial.device_hours = float(device_hours)
            trial.epochs_done = max(trial.epochs_done or 0, epoch)
            if best_accuracy is not None:
                trial.accuracy = float(best_accuracy)

    def finish_trial(self, trial_id: int, status: TrialStatus, *, device_hours: float | None = None,
                     accuracy: float | None = None, error: str | None = None,
                     weights_path: str | None = None) -> None:
        with self._write() as s:
            row = _get_trial(s, trial_id)
            row.status = TrialStatus(status).value
            row.finished_at = utcnow()
            if device_hours is not None:
                row.device_hours = float(device_hours)
            if accuracy is not None:
                row.accuracy = float(accuracy)
            if error is not None:
                row.error = error
            if weights_path is not None:
                row.weights_path = weights_path

    def set_device_hours(self, trial_id: int, device_hours: float) -> None:
        with self._write() as s:
            _get_trial(s, trial_id).device_hours = float(device_hours)

    def find_reusable(self, arch: dict, recipe: dict, device_kind: str,
                      accept: Callable[[TrialRecord], bool] | None = None) -> TrialRecord | None:
        """An earlier trained result (any search) for this architecture, recipe and device kind.

        ``accept(trial)`` can narrow the candidates further (e.g. to one measurement protocol).
        """
        with self._session() as s:
            rows = s.scalars(
                select(Trial)
                .where(Trial.arch_hash == json_hash(arch), Trial.recipe_hash == json_hash(recipe),
                       Trial.device_kind == device_kind, Trial.status.in_(FEASIBLE_STATES),
                       Trial.reused_from_id.is_(None))
                .order_by(Trial.id)).all()
            rows.sort(key=lambda r: (r.status == TrialStatus.COMPLETED.value, r.epochs_done or 0, -r.id),
                      reverse=True)
            candidates = (trial_record(r) for r in rows)
            return next((t for t in candidates if accept is None or accept(t)), None)

    def record_reuse(self, search_id: int, source_trial_id: int, *, tune_trial_id: str | None = None,
                     seed_name: str | None = None) -> int:
        """A new trial row in ``search_id`` that reuses another trial's stored result (charged nothing)."""
        with self._write() as s:
            src = _get_trial(s, source_trial_id)
            number = _next_number(s, search_id)
            copy_fields = ("arch_json", "arch_hash", "recipe_json", "recipe_hash", "model_args_json", "data_config_json", "status",
                           "device_kind", "params", "gmacs", "uncounted_ops_json", "latency_ms", "latency_iqr_ms",
                           "throughput", "throughput_iqr", "protocol_id", "accuracy", "epochs_done",
                           "weights_path")
            row = Trial(search_id=search_id, number=number, tune_trial_id=tune_trial_id,
                        seed_name=seed_name, reused_from_id=src.id, devices_held=0.0, device_hours=0.0,
                        finished_at=utcnow(), **{f: getattr(src, f) for f in copy_fields})
            s.add(row)
            s.flush()
            return row.id

    def trials(self, search: str | None = None, statuses: Iterable[str] | None = None, *,
               newer_than: int | None = None, ids: Iterable[int] = ()) -> list[TrialRecord]:
        """Trials in id order; with ``newer_than``, only those with a larger id plus ``ids`` (an
        incremental read: a reader that keeps what it has read re-reads only what can have changed)."""
        with self._session() as s:
            q = select(Trial).join(Search).order_by(Trial.id)
            if search is not None:
                q = q.where(Search.name == search)
            if statuses is not None:
                q = q.where(Trial.status.in_([str(x) for x in statuses]))
            if newer_than is not None:
                q = q.where(or_(Trial.id > newer_than, Trial.id.in_(list(ids))))
            return [trial_record(r) for r in s.scalars(q)]

    def trial(self, trial_id: int, *, with_epochs: bool = True) -> TrialRecord | None:
        """One trial; with its learning curve (a reused row shows the curve of the trial it copies)."""
        with self._session() as s:
            row = s.get(Trial, trial_id)
            if row is None:
                return None
            if not with_epochs:
                return trial_record(row)
            source = row if row.reused_from_id is None else s.get(Trial, row.reused_from_id)
            return trial_record(row, epochs=tuple(epoch_record(e) for e in (source.epochs if source else [])))

    def mark_running_as_failed(self, search_id: int, reason: str) -> int:
        """On resume: trials left ``running`` by a killed driver are recorded as failed."""
        with self._write() as s:
            rows = s.scalars(select(Trial).where(Trial.search_id == search_id,
                                                 Trial.status == TrialStatus.RUNNING.value)).all()
            for r in rows:
                r.status, r.error, r.finished_at = TrialStatus.FAILED.value, reason, utcnow()
            return len(rows)


class _WriteSession:
    def __init__(self, factory):
        self._factory = factory

    def __enter__(self) -> Session:
        self._s = self._factory()
        self._s.begin()
        return self._s

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                try:
                    self._s.commit()
                except SQLAlchemyError as err:
                    self._s.rollback()
                    raise StoreError(f"database write failed: {getattr(err, 'orig', err)}") from None
            else:
                self._s.rollback()
                if isinstance(exc, SQLAlchemyError):
                    raise StoreError(f"database write failed: {getattr(exc, 'orig', exc)}") from None
        finally:
            self._s.close()
        return False


_UPDATABLE_SEARCH_FIELDS = {"status", "charged", "device_kind", "budget_total", "budget_text"}


def _check_search_fields(fields: dict[str, Any]) -> None:
    if set(fields) - _UPDATABLE_SEARCH_FIELDS:
        raise ValueError(f"cannot update search fields {sorted(set(fields) - _UPDATABLE_SEARCH_FIELDS)}")


def _next_number(s: Session, search_id: int) -> int:
    return s.scalar(select(func.coalesce(func.max(Trial.number) + 1, 0)).where(Trial.search_id == search_id))


def _get_trial(s: Session, trial_id: int) -> Trial:
    row = s.get(Trial, trial_id)
    if row is None:
        raise StoreError(f"unknown trial {trial_id}")
    return row


def _protocol_id(s: Session, protocol: dict, device_kind: str) -> int:
    h = json_hash(protocol)
    pid = s.scalar(select(MeasurementProtocol.id).where(MeasurementProtocol.protocol_hash == h))
    if pid is None:
        row = MeasurementProtocol(protocol_hash=h, protocol_json=canonical_json(protocol), device_kind=device_kind)
        s.add(row)
        s.flush()
        pid = row.id
    return pid


def _loads(text: str | None, default: Any = None) -> Any:
    """Parse a JSON column; a corrupt value becomes ``default`` instead of breaking every reader."""
    if text is None:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def search_record(row: Search) -> SearchRecord:
    status = row.status
    try:
        status = SearchStatus(status)
    except ValueError:
        pass
    return SearchRecord(
        id=row.id, name=row.name, space=row.space, space_description=_loads(row.space_json, {}),
        config=_loads(row.config_json, {}), budget_kind=row.budget_kind, budget_total=row.budget_total,
        budget_text=row.budget_text, charged=row.charged, status=status, device_kind=row.device_kind,
        created_at=_iso(row.created_at), updated_at=_iso(row.updated_at))


def trial_record(row: Trial, epochs: tuple[EpochRecord, ...] | None = None) -> TrialRecord:
    protocol = _loads(row.protocol.protocol_json, None) if row.protocol is not None else None
    uncounted = _loads(row.uncounted_ops_json, [])
    return TrialRecord(
        id=row.id, search=row.search.name if row.search is not None else None, number=row.number,
        status=TrialStatus.parse(row.status), arch=_loads(row.arch_json, None), arch_hash=row.arch_hash,
        recipe=_loads(row.recipe_json, None), recipe_hash=row.recipe_hash,
        model_args=_loads(row.model_args_json, None), data_config=_loads(row.data_config_json, None),
        seed_name=row.seed_name, reused_from=row.reused_from_id, device_kind=row.device_kind,
        accuracy=row.accuracy, throughput=row.throughput, throughput_iqr=row.throughput_iqr,
        latency_ms=row.latency_ms, latency_iqr_ms=row.latency_iqr_ms, params=row.params, gmacs=row.gmacs,
        uncounted_ops=tuple(str(op) for op in uncounted) if isinstance(uncounted, list) else (),
        protocol=protocol, epochs_done=row.epochs_done or 0, devices_held=row.devices_held or 0.0,
        device_hours=row.device_hours or 0.0, weights_path=row.weights_path, error=row.error,
        tune_trial_id=row.tune_trial_id, started_at=_iso(row.started_at), finished_at=_iso(row.finished_at),
        epochs=epochs)


def epoch_record(row: EpochMetric) -> EpochRecord:
    return EpochRecord(epoch=row.epoch, **{k: getattr(row, k) for k in EPOCH_METRICS})
