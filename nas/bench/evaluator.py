"""Answer a trial from a tabular benchmark instead of training it.

``TabularEvaluator.reports(arch)`` yields exactly the reports ``nas.trial.runner.run_trial``
would send for that architecture (a ``measure`` phase with the recorded ``Measurement``, then
one ``epoch`` report per recorded epoch), each with the device-seconds the real trial spent
reaching it.  A row recorded as failed ends with an error step (what the real trial raised).
A consumer charges a trial only the steps it received, so a trial stopped early costs its
measurement plus the epochs it ran, as in a real search.  No Ray, no torch work: one dict
lookup per trial.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from nas.bench.table import BenchEntry, BenchTable
from nas.store.records import Measurement
from nas.trial.measure_settings import MeasureSettings
from nas.trial.progress import EPOCH_PHASE, MEASURE_PHASE
from search_spaces import Architecture

__all__ = ["RecordedTrialError", "TabularEvaluator", "TabularStep"]


class RecordedTrialError(RuntimeError):
    """Raised by ``TabularEvaluator.run_trial`` where the recorded trial raised."""


@dataclass(frozen=True)
class TabularStep:
    """One report of a replayed trial (or, with ``error``, its failure) and the device-seconds since the last."""

    seconds: float
    result: dict[str, Any]
    error: str | None = None


class TabularEvaluator:
    """Replays recorded trials; ``measure`` applies speed limits as the real trial does."""

    def __init__(self, table: BenchTable, measure: MeasureSettings | None = None):
        self.table = table
        self.measure = measure or MeasureSettings()

    def entry(self, arch: Architecture) -> BenchEntry:
        return self.table.entry(arch)

    def measurement(self, arch: Architecture) -> Measurement | None:
        """The recorded speed and size of ``arch`` with ``self.measure``'s verdict; None if it was never measured."""
        e = self.table.entry(arch)
        if not e.measured:
            return None
        provenance = self.table.provenance
        return Measurement(
            params=e.params, gmacs=e.gmacs, latency_ms=e.latency_ms, throughput=e.throughput,
            latency_iqr_ms=e.latency_iqr_ms, throughput_iqr=e.throughput_iqr,
            protocol=provenance.get("protocol"), device_kind=provenance.get("device_kind"),
            violation=self.measure.violation(e.latency_ms, e.throughput))

    def reports(self, arch: Architecture) -> Iterator[TabularStep]:
        """The trial's reports in order: the measurement, then (if feasible) every epoch it recorded."""
        e = self.table.entry(arch)
        measurement = self.measurement(arch)
        if measurement is None:  # failed before its measurement was reported
            yield TabularStep(e.measure_s, {}, error=e.error)
            return
        yield TabularStep(e.measure_s, {"phase": MEASURE_PHASE, "epoch": 0, "val_accuracy": 0.0,
                                        **measurement.to_report()})
        if not measurement.feasible:
            return
        elapsed = 0.0
        for epoch, (accuracy, seconds) in enumerate(zip(e.val_accuracy, e.epoch_s), start=1):
            elapsed += seconds
            yield TabularStep(seconds, {"phase": EPOCH_PHASE, "epoch": epoch, "val_accuracy": accuracy,
                                        "elapsed_s": elapsed})
        if e.error is not None:
            yield TabularStep(0.0, {}, error=e.error)

    def run_trial(self, config: Mapping[str, Any], report, *, time_scale: float = 0.0) -> None:
        """Drop-in for ``run_trial(config, report)``: sends the recorded reports, without weights.

        Sleeps ``time_scale`` x the recorded seconds before each report (0: answers at once),
        stops when ``report`` returns False (an early-stopping verdict), and raises
        ``RecordedTrialError`` where the recorded trial failed.
        """
        for step in self.reports(Architecture.from_dict(config["arch"])):
            if time_scale > 0:
                time.sleep(step.seconds * time_scale)
            if step.error is not None:
                raise RecordedTrialError(step.error)
            if report(dict(step.result), None) is False:
                return
