"""Which stored reference-model measurements belong beside a search.

The seed papers' own models (``backbones.references``) are measured with a search's protocol on
its device (``nas.search.references``) and stored per device kind (``nas.store.references``).  A
search shows those taken on the device kinds its trials ran on, under the protocol its trials
were measured with (``MeasureSettings.same_protocol``: resolution and batch sizes), and only when
that resolution is the one the reference models are designed for.
"""
from __future__ import annotations

from typing import Iterable

from backbones.references import REFERENCE_RESOLUTION
from nas.store import ReferenceMeasurement, SearchRecord, Store, TrialRecord, reference_measurements
from nas.trial.measure_settings import MeasureSettings

__all__ = ["references_apply", "references_for_search", "search_device_kinds", "search_measure_settings"]


def references_apply(measure: MeasureSettings) -> bool:
    """Whether reference models are measured beside a search measured this way (their design resolution)."""
    return measure.target_res == REFERENCE_RESOLUTION


def search_measure_settings(search: SearchRecord) -> MeasureSettings | None:
    """The search's stored measurement settings; None when missing or unreadable."""
    stored = search.setting("measure")
    if not isinstance(stored, dict):
        return None
    try:
        return MeasureSettings.from_dict(stored)
    except (TypeError, ValueError):
        return None


def search_device_kinds(search: SearchRecord, trials: Iterable[TrialRecord] = ()) -> set[str]:
    """The device kinds a search measured on: its own (local searches) and every trial's (clusters)."""
    kinds = {t.device_kind for t in trials if t.device_kind}
    if search.device_kind:
        kinds.add(search.device_kind)
    return kinds


def references_for_search(store: Store, search: SearchRecord,
                          device_kinds: Iterable[str] | None = None) -> list[ReferenceMeasurement]:
    """The reference measurements comparable with the search's trials (empty when none apply);
    ``device_kinds`` default to ``search_device_kinds`` of the stored trials."""
    measure = search_measure_settings(search)
    if measure is None or not references_apply(measure):
        return []
    kinds = set(device_kinds) if device_kinds is not None else \
        search_device_kinds(search, store.trials(search=search.name))
    if not kinds:
        return []
    return reference_measurements(store, device_kinds=kinds, accept=measure.same_protocol)
