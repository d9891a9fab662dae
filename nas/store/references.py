"""Reference models in the store: the seed papers' own models measured on a device kind, kept for reuse.

A reference measurement is keyed by model, device kind and measurement protocol (the protocol row
trials share): measured once, at the start of the first search that needs it, and read back by
every later search on that device kind whose protocol matches.  The search driver is the only
writer, as for trials.  A store of schema 2 opened read-only (it could not be upgraded) has no
such table: it simply has no reference measurements.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import select

from search_spaces.canonical import canonical_json

from .models import MeasurementProtocol, ReferenceMeasurementRow, utcnow
from .repository import Store, _iso, _loads, _protocol_id

__all__ = ["REFERENCES_SCHEMA", "ReferenceMeasurement", "record_reference", "reference_measurements"]

REFERENCES_SCHEMA = 3  # the schema version that added the table


@dataclass(frozen=True)
class ReferenceMeasurement:
    """One reference model's size, cost and speed on one device kind (same meaning as a trial's)."""

    model: str  # timm name, e.g. "litv2_s"
    device_kind: str
    params: int
    gmacs: float
    latency_ms: float  # batch-1 median
    latency_iqr_ms: float
    throughput: float  # img/s median at the protocol's throughput batch
    throughput_iqr: float
    protocol: dict[str, Any]
    uncounted_ops: tuple[str, ...] = ()
    measured_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["uncounted_ops"] = list(self.uncounted_ops)
        return out


def record_reference(store: Store, measured: ReferenceMeasurement) -> None:
    """Insert, or overwrite the row of the same model, device kind and exact protocol."""
    m = measured
    with store._write() as s:
        protocol_id = _protocol_id(s, m.protocol, m.device_kind)
        row = s.scalar(select(ReferenceMeasurementRow).where(
            ReferenceMeasurementRow.model == m.model, ReferenceMeasurementRow.device_kind == m.device_kind,
            ReferenceMeasurementRow.protocol_id == protocol_id))
        if row is None:
            row = ReferenceMeasurementRow(model=m.model, device_kind=m.device_kind, protocol_id=protocol_id)
            s.add(row)
        row.params, row.gmacs = int(m.params), float(m.gmacs)
        row.uncounted_ops_json = canonical_json(sorted(m.uncounted_ops))
        row.latency_ms, row.latency_iqr_ms = float(m.latency_ms), float(m.latency_iqr_ms)
        row.throughput, row.throughput_iqr = float(m.throughput), float(m.throughput_iqr)
        row.measured_at = utcnow()


def reference_measurements(store: Store, *, device_kinds: set[str] | None = None, models: set[str] | None = None,
                           accept: Callable[[dict[str, Any]], bool] | None = None,
                           latest: bool = True) -> list[ReferenceMeasurement]:
    """Stored reference measurements whose protocol ``accept(protocol)`` takes; with ``latest`` only the
    newest one per (model, device kind), else every one.  Sorted by device kind, then throughput."""
    if store.schema_version < REFERENCES_SCHEMA:
        return []
    with store._session() as s:
        query = select(ReferenceMeasurementRow, MeasurementProtocol.protocol_json).join(MeasurementProtocol)
        if device_kinds is not None:
            query = query.where(ReferenceMeasurementRow.device_kind.in_(sorted(device_kinds)))
        if models is not None:
            query = query.where(ReferenceMeasurementRow.model.in_(sorted(models)))
        rows = s.execute(query.order_by(ReferenceMeasurementRow.measured_at.desc(),
                                        ReferenceMeasurementRow.id.desc())).all()
    chosen: dict[tuple[str, str, int], ReferenceMeasurement] = {}
    for row, protocol_json in rows:
        protocol = _loads(protocol_json, None)
        if not isinstance(protocol, dict):  # unreadable: comparable with nothing, still listed unfiltered
            if accept is not None:
                continue
            protocol = {}
        elif accept is not None and not accept(protocol):
            continue
        chosen.setdefault((row.model, row.device_kind, 0 if latest else row.id), _record(row, protocol))
    return sorted(chosen.values(), key=lambda r: (r.device_kind, r.throughput, r.model))


def _record(row: ReferenceMeasurementRow, protocol: dict[str, Any]) -> ReferenceMeasurement:
    uncounted = _loads(row.uncounted_ops_json, [])
    return ReferenceMeasurement(
        model=row.model, device_kind=row.device_kind, params=row.params, gmacs=row.gmacs,
        latency_ms=row.latency_ms, latency_iqr_ms=row.latency_iqr_ms, throughput=row.throughput,
        throughput_iqr=row.throughput_iqr, protocol=protocol,
        uncounted_ops=tuple(str(op) for op in uncounted) if isinstance(uncounted, list) else (),
        measured_at=_iso(row.measured_at))

