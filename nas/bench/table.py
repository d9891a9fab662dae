"""A tabular benchmark in memory: every architecture of a space with its recorded trial.

Each row is what one real trial recorded: the per-epoch validation accuracy, the measured speed,
size and cost, and the device-seconds spent (measurement, then each epoch).  Lookups are by
``Architecture`` and cost a dict access, so a whole search can be replayed in milliseconds
(``nas.bench.evaluator`` answers trials, ``nas.bench.simulator`` runs searches).

The table's *true front* is the Pareto front of every row's final-fidelity result (best accuracy
over all epochs, as a completed trial would record it, against measured throughput), and its
reference point is the worst accuracy and the worst throughput in the table; a search's quality
is the hypervolume of what it found divided by the true front's (``hv_ratio``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from nas.front import hypervolume_2d
from search_spaces import Architecture, SearchSpace, get_space

__all__ = ["BenchEntry", "BenchTable", "load_table"]


@dataclass(frozen=True)
class BenchEntry:
    """One architecture's recorded trial.  Accuracies are 0..1, times are device-seconds."""

    arch: Architecture
    val_accuracy: tuple[float, ...]  # per epoch, epoch 1 first
    throughput: float  # img/s at the table's target resolution
    latency_ms: float
    params: int
    gmacs: float
    measure_s: float  # building, profiling and timing the model before training
    epoch_s: tuple[float, ...]  # each epoch's training + validation time
    throughput_iqr: float | None = None
    latency_iqr_ms: float | None = None

    def __post_init__(self) -> None:
        label = self.arch.label()
        if not self.val_accuracy or len(self.val_accuracy) != len(self.epoch_s):
            raise ValueError(f"table row {label}: needs one accuracy and one duration per epoch, got "
                             f"{len(self.val_accuracy)} and {len(self.epoch_s)}")
        numbers = (*self.val_accuracy, self.throughput, self.latency_ms, self.gmacs, self.measure_s, *self.epoch_s)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            raise ValueError(f"table row {label}: accuracies, speed and times must be finite numbers")
        if self.throughput <= 0 or self.measure_s < 0 or min(self.epoch_s) < 0:
            raise ValueError(f"table row {label}: throughput must be > 0 and times >= 0")

    @property
    def epochs(self) -> int:
        return len(self.val_accuracy)

    @property
    def accuracy(self) -> float:
        """What a completed trial records: the best validation accuracy over all epochs."""
        return max(self.val_accuracy)

    def cost_s(self, epochs_run: int) -> float:
        """Device-seconds of a trial that measured the model and trained ``epochs_run`` epochs."""
        if not 0 <= epochs_run <= self.epochs:
            raise ValueError(f"epochs_run must be in 0..{self.epochs}, got {epochs_run}")
        return self.measure_s + sum(self.epoch_s[:epochs_run])

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "arch_hash": self.arch.hash, "val_accuracy": list(self.val_accuracy),
                "throughput": self.throughput, "throughput_iqr": self.throughput_iqr,
                "latency_ms": self.latency_ms, "latency_iqr_ms": self.latency_iqr_ms, "params": self.params,
                "gmacs": self.gmacs, "measure_s": self.measure_s, "epoch_s": list(self.epoch_s)}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "BenchEntry":
        arch = Architecture.from_dict(row["arch"])
        if "arch_hash" in row and row["arch_hash"] != arch.hash:
            raise ValueError(f"table row {arch.label()}: arch_hash {row['arch_hash']!r} does not match its "
                             f"architecture ({arch.hash})")
        return cls(arch=arch, val_accuracy=tuple(float(a) for a in row["val_accuracy"]),
                   throughput=float(row["throughput"]), latency_ms=float(row["latency_ms"]),
                   params=int(row["params"]), gmacs=float(row["gmacs"]), measure_s=float(row["measure_s"]),
                   epoch_s=tuple(float(s) for s in row["epoch_s"]),
                   throughput_iqr=_optional_float(row.get("throughput_iqr")),
                   latency_iqr_ms=_optional_float(row.get("latency_iqr_ms")))


@dataclass(frozen=True)
class BenchTable:
    """Every architecture of ``space`` with its recorded trial, plus where the numbers came from."""

    space: SearchSpace
    entries: tuple[BenchEntry, ...]
    provenance: dict = field(default_factory=dict)  # recipe, measure settings, device, code revision, ...

    def __post_init__(self) -> None:
        by_arch: dict[Architecture, BenchEntry] = {}
        epochs = {e.epochs for e in self.entries}
        if not self.entries:
            raise ValueError("table has no rows")
        if len(epochs) != 1:
            raise ValueError(f"table rows disagree on the number of epochs: {sorted(epochs)}")
        for entry in self.entries:
            if entry.arch in by_arch:
                raise ValueError(f"table has two rows for {entry.arch.label()}")
            self.space.validate(entry.arch)
            by_arch[entry.arch] = entry
        object.__setattr__(self, "_by_arch", by_arch)

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
            raise KeyError(f"{arch.label()} ({arch.hash}) is not in the {self.space.name} table") from None

    @property
    def epochs(self) -> int:
        return self.entries[0].epochs

    @property
    def reference_point(self) -> tuple[float, float]:
        """(throughput, accuracy): the worst of each in the table."""
        return min(e.throughput for e in self.entries), min(e.accuracy for e in self.entries)

    def points(self) -> list[tuple[float, float]]:
        """(throughput, final accuracy) of every row."""
        return [(e.throughput, e.accuracy) for e in self.entries]

    def true_hypervolume(self) -> float:
        return self.hypervolume(self.points())

    def hypervolume(self, points: Iterable[tuple[float, float]]) -> float:
        """Hypervolume of (throughput, accuracy) points against the table's reference point."""
        ref_throughput, ref_accuracy = self.reference_point
        return hypervolume_2d(points, ref_throughput, ref_accuracy)

    def hv_ratio(self, points: Iterable[tuple[float, float]]) -> float:
        """Hypervolume of ``points`` over the true front's: 1.0 when they contain the true front."""
        return self.hypervolume(points) / self.true_hypervolume()

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.describe(), "provenance": self.provenance, "epochs": self.epochs,
                "rows": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BenchTable":
        space_desc = d.get("space")
        space = SearchSpace.from_dict(space_desc) if isinstance(space_desc, Mapping) else get_space(str(space_desc))
        return cls(space=space, entries=tuple(BenchEntry.from_dict(r) for r in d["rows"]),
                   provenance=dict(d.get("provenance") or {}))


def load_table(path: str | Path) -> BenchTable:
    """Read a table written by ``BenchTable.to_dict`` as JSON; ValueError names the file and the problem."""
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
        raise ValueError(f"benchmark table {path}: {exc}") from None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
