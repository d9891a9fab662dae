"""A tabular benchmark in memory: architectures of a space with the trial each one recorded.

Each row is what one real trial recorded: the per-epoch validation accuracy, the measured speed
and size, and the device-seconds it spent (measurement, then each epoch), or that it failed.
Lookups are by ``Architecture`` and cost a dict access, so a whole search replays in
milliseconds (``nas.bench.evaluator`` answers trials, ``nas.bench.simulator`` runs searches).

File format: MixerBench's ``mixerbench/1`` JSON (documented in ``benchmarks/mixerbench``): the
space's description, provenance keys (recipe, measure settings, protocol, device kind, code
revision, ...) and ``rows``, each naming its architecture by per-stage ``mixers`` (stages with
one depth and width) or a full ``arch`` dict, with ``status`` ``completed`` or ``failed``.

The table's *true front* is the Pareto front of the completed rows' final-fidelity results (best
accuracy over all epochs, what a completed trial records, against measured throughput); its
reference point is the worst accuracy and the worst throughput among them.  A search's quality
is the hypervolume of what it found over the true front's (``hv_ratio``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from nas.front import hypervolume_2d
from search_spaces import Architecture, SearchSpace

__all__ = ["TABLE_FORMAT", "BenchEntry", "BenchTable", "load_table"]

TABLE_FORMAT = "mixerbench/1"
COMPLETED, FAILED = "completed", "failed"


@dataclass(frozen=True)
class BenchEntry:
    """One architecture's recorded trial.  Accuracies are 0..1, times are device-seconds.

    A failed row (``error`` set) keeps what its trial recorded before it raised: maybe a
    measurement, maybe some epochs.
    """

    arch: Architecture
    val_accuracy: tuple[float, ...]  # per epoch, epoch 1 first
    throughput: float | None  # img/s at the table's target resolution
    latency_ms: float | None
    params: int | None
    gmacs: float | None
    measure_s: float  # everything but the epochs: start-up, building, profiling and timing the model
    epoch_s: tuple[float, ...]  # each epoch's training + validation time
    throughput_iqr: float | None = None
    latency_iqr_ms: float | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        label = self.arch.label()
        if len(self.val_accuracy) != len(self.epoch_s):
            raise ValueError(f"row {label}: needs one accuracy and one duration per epoch, got "
                             f"{len(self.val_accuracy)} and {len(self.epoch_s)}")
        if not all(_finite(v) and v >= 0 for v in (*self.val_accuracy, self.measure_s, *self.epoch_s)):
            raise ValueError(f"row {label}: accuracies and times must be finite, non-negative numbers")
        if self.error is None and not (self.val_accuracy and self.measured):
            raise ValueError(f"row {label}: a completed row needs epochs and a positive throughput and latency")

    @property
    def completed(self) -> bool:
        return self.error is None

    @property
    def measured(self) -> bool:
        return _finite(self.throughput) and self.throughput > 0 and _finite(self.latency_ms)

    @property
    def accuracy(self) -> float | None:
        """What the trial recorded: the best validation accuracy of its epochs."""
        return max(self.val_accuracy, default=None)

    def cost_s(self, epochs_run: int | None = None) -> float:
        """Device-seconds of the trial stopped after ``epochs_run`` epochs (default: all it ran)."""
        epochs_run = len(self.epoch_s) if epochs_run is None else epochs_run
        if not 0 <= epochs_run <= len(self.epoch_s):
            raise ValueError(f"epochs_run must be in 0..{len(self.epoch_s)}, got {epochs_run}")
        return self.measure_s + sum(self.epoch_s[:epochs_run])

    def to_row(self, by_mixers: bool) -> dict[str, Any]:
        row: dict[str, Any] = {"mixers": list(self.arch.mixers)} if by_mixers else {"arch": self.arch.to_dict()}
        row |= {"arch_hash": self.arch.hash, "status": FAILED if self.error else COMPLETED,
                "val_accuracy": list(self.val_accuracy), "accuracy": self.accuracy,
                "throughput": self.throughput, "throughput_iqr": self.throughput_iqr,
                "latency_ms": self.latency_ms, "latency_iqr_ms": self.latency_iqr_ms, "params": self.params,
                "gmacs": self.gmacs, "measure_s": self.measure_s, "epoch_s": list(self.epoch_s)}
        if self.error:
            row["error"] = self.error
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any], space: SearchSpace) -> "BenchEntry":
        arch = Architecture.from_dict(row["arch"]) if "arch" in row else row_architecture(space, row["mixers"])
        if "arch_hash" in row and row["arch_hash"] != arch.hash:
            raise ValueError(f"row {arch.label()}: arch_hash {row['arch_hash']!r} is not its architecture's "
                             f"({arch.hash})")
        status = row.get("status", COMPLETED)
        if status not in (COMPLETED, FAILED):
            raise ValueError(f"row {arch.label()}: status must be {COMPLETED!r} or {FAILED!r}, got {status!r}")
        return cls(arch=arch, val_accuracy=tuple(float(a) for a in row["val_accuracy"]),
                   throughput=_optional(float, row.get("throughput")),
                   latency_ms=_optional(float, row.get("latency_ms")),
                   params=_optional(int, row.get("params")), gmacs=_optional(float, row.get("gmacs")),
                   measure_s=float(row["measure_s"]), epoch_s=tuple(float(s) for s in row["epoch_s"]),
                   throughput_iqr=_optional(float, row.get("throughput_iqr")),
                   latency_iqr_ms=_optional(float, row.get("latency_iqr_ms")),
                   error=(str(row.get("error") or "failed") if status == FAILED else None))


def row_architecture(space: SearchSpace, mixers: Iterable[str]) -> Architecture:
    """The member of ``space`` with these per-stage mixers (each stage must have one depth and width)."""
    mixers = list(mixers)
    if len(mixers) != len(space.stages):
        raise ValueError(f"{space.name}: a row needs {len(space.stages)} mixers, got {mixers}")
    choices: dict[str, Any] = {}
    for i, (stage, mixer) in enumerate(zip(space.stages, mixers), start=1):
        if len(stage.depths) != 1 or len(stage.widths) != 1:
            raise ValueError(f"{space.name}: stage{i} has several depths or widths, so rows need a full 'arch'")
        choices |= {f"stage{i}.mixer": mixer, f"stage{i}.depth": stage.depths[0], f"stage{i}.width": stage.widths[0]}
    return space.arch_from_choices(choices)


class BenchTable:
    """Rows of ``space``'s architectures, plus where the numbers came from (``provenance``)."""

    def __init__(self, space: SearchSpace, entries: Iterable[BenchEntry], epochs: int,
                 provenance: Mapping[str, Any] | None = None):
        self.space = space
        self.entries = tuple(entries)
        self.epochs = epochs
        self.provenance = dict(provenance or {})
        self._by_arch: dict[Architecture, BenchEntry] = {}
        for entry in self.entries:
            if entry.arch in self._by_arch:
                raise ValueError(f"two rows for {entry.arch.label()}")
            if entry.completed and len(entry.val_accuracy) != epochs:
                raise ValueError(f"row {entry.arch.label()}: completed with {len(entry.val_accuracy)} epochs, "
                                 f"the recipe has {epochs}")
            space.validate(entry.arch)
            self._by_arch[entry.arch] = entry
        self.completed = tuple(e for e in self.entries if e.completed)
        if not self.completed:
            raise ValueError("no completed rows")

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[BenchEntry]:
        return iter(self.entries)

    def __contains__(self, arch: object) -> bool:
        return arch in self._by_arch

    def entry(self, arch: Architecture) -> BenchEntry:
        """The recorded trial of ``arch``; KeyError naming it when the table has none."""
        try:
            return self._by_arch[arch]
        except KeyError:
            raise KeyError(f"{arch.label()} ({arch.hash}) has no row in the {self.space.name} table") from None

    @property
    def reference_point(self) -> tuple[float, float]:
        """(throughput, accuracy): the worst of each among the completed rows."""
        return min(e.throughput for e in self.completed), min(e.accuracy for e in self.completed)

    def points(self) -> list[tuple[float, float]]:
        """(throughput, final accuracy) of every completed row."""
        return [(e.throughput, e.accuracy) for e in self.completed]

    def true_front(self) -> list[BenchEntry]:
        """Completed rows no other completed row beats on both accuracy and throughput, fastest first."""
        front, best = [], -math.inf
        for e in sorted(self.completed, key=lambda e: (-e.throughput, -e.accuracy)):
            if e.accuracy > best:
                front.append(e)
                best = e.accuracy
        return front

    def true_hypervolume(self) -> float:
        return self.hypervolume(self.points())

    def hypervolume(self, points: Iterable[tuple[float, float]]) -> float:
        """Hypervolume of (throughput, accuracy) points (log10 throughput) against the reference point."""
        ref_throughput, ref_accuracy = self.reference_point
        return hypervolume_2d(points, ref_throughput, ref_accuracy)

    def hv_ratio(self, points: Iterable[tuple[float, float]]) -> float:
        """Hypervolume of ``points`` over the true front's: 1.0 when they include the true front."""
        true = self.true_hypervolume()
        if true <= 0:
            raise ValueError("the table's true front has zero hypervolume (its best-accuracy row is also its slowest, "
                             "and its fastest the least accurate): no search can be rated on it")
        return self.hypervolume(points) / true

    def to_dict(self) -> dict[str, Any]:
        """The ``mixerbench/1`` JSON object (rows name mixers when every stage has one depth and width)."""
        by_mixers = all(len(s.depths) == 1 and len(s.widths) == 1 for s in self.space.stages)
        provenance = {k: v for k, v in self.provenance.items() if k not in ("format", "space", "rows")}
        recipe = {**(provenance.get("recipe") or {}), "epochs": self.epochs}
        return {"format": TABLE_FORMAT, "space": self.space.describe(), **provenance, "recipe": recipe,
                "rows": [e.to_row(by_mixers) for e in self.entries]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BenchTable":
        if d.get("format") != TABLE_FORMAT:
            raise ValueError(f"format must be {TABLE_FORMAT!r}, got {d.get('format')!r}")
        space = SearchSpace.from_dict(d["space"])
        rows = [BenchEntry.from_row(row, space) for row in d["rows"]]
        epochs = (d.get("recipe") or {}).get("epochs")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"recipe.epochs must be a positive int, got {epochs!r}")
        provenance = {k: v for k, v in d.items() if k not in ("format", "space", "rows")}
        return cls(space, rows, epochs, provenance)

    def describe(self) -> dict[str, Any]:
        """Provenance plus what the quality numbers rest on: sizes, true front, reference point."""
        ref_throughput, ref_accuracy = self.reference_point
        front = self.true_front()
        build = {k: v for k, v in (self.provenance.get("build") or {}).items() if k != "runs"}
        return {**self.provenance, "build": build, "space": self.space.name,
                "epochs": self.epochs, "rows": len(self.entries), "completed_rows": len(self.completed),
                "true_front_size": len(front), "true_front": [e.arch.label() for e in front],
                "true_hypervolume": self.true_hypervolume(), "reference_point": {
                    "throughput": ref_throughput, "accuracy": ref_accuracy}}


def load_table(path: str | Path) -> BenchTable:
    """Read a ``mixerbench/1`` JSON table; ValueError naming the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"benchmark table {path}: cannot read it ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"benchmark table {path}: not valid JSON ({exc})") from None
    try:
        return BenchTable.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"benchmark table {path}: {detail}") from None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _optional(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)
