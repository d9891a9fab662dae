"""The long runs: the table's recipe at ``factor`` x its epochs, trained by the normal trial runner.

Each run goes through ``nas.trial.runner.run_trial`` exactly as a search trial does (measure,
then train, one report per epoch), in this process or in a spawned process pool, and lands in
an append-only JSONL cache as soon as it finishes, so an interrupted benchmark loses at most the
runs in flight.
"""
from __future__ import annotations

import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, TextIO

from nas.bench import BenchEntry, BenchTable
from nas.device import device_kind
from nas.trial.measure_settings import MeasureSettings
from nas.trial.progress import EPOCH_PHASE
from nas.trial.recipe import ProxyRecipe
from nas.trial.runner import run_trial
from search_spaces import Architecture

__all__ = ["LongRun", "RunCache", "long_recipe", "long_run_config", "measure_settings", "run_long", "table_recipe",
           "train_long"]


@dataclass(frozen=True)
class LongRun:
    """What one long run recorded: validation accuracy and device time per epoch, or why it failed."""

    arch_hash: str
    recipe_hash: str
    val_accuracy: tuple[float, ...]
    epoch_s: tuple[float, ...]
    wall_s: float
    device_kind: str
    error: str | None = None

    def completed(self, epochs: int) -> bool:
        return self.error is None and len(self.val_accuracy) == epochs

    def to_json(self) -> dict[str, Any]:
        row = {"arch_hash": self.arch_hash, "recipe_hash": self.recipe_hash,
               "val_accuracy": [round(a, 4) for a in self.val_accuracy],
               "epoch_s": [round(s, 2) for s in self.epoch_s], "wall_s": round(self.wall_s, 2),
               "device_kind": self.device_kind}
        return row | ({"error": self.error} if self.error else {})

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> "LongRun":
        return cls(arch_hash=str(row["arch_hash"]), recipe_hash=str(row["recipe_hash"]),
                   val_accuracy=tuple(float(a) for a in row["val_accuracy"]),
                   epoch_s=tuple(float(s) for s in row["epoch_s"]), wall_s=float(row["wall_s"]),
                   device_kind=str(row["device_kind"]), error=row.get("error"))


class RunCache:
    """Finished long runs, one JSON object per line, keyed by (architecture hash, recipe hash).

    Unreadable lines (a run killed mid-write) are skipped and counted; appending first completes a
    torn last line, so a new run never lands on the end of a broken one.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.runs: dict[tuple[str, str], LongRun] = {}
        self.unreadable = 0
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            if not line.strip():
                continue
            try:
                run = LongRun.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                self.unreadable += 1
                continue
            self.runs[(run.arch_hash, run.recipe_hash)] = run

    def get(self, arch_hash: str, recipe_hash: str) -> LongRun | None:
        return self.runs.get((arch_hash, recipe_hash))

    def add(self, run: LongRun) -> LongRun:
        """Append ``run``; returns it as stored (rounded), so a report from memory equals one from the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = self._ends_torn()
        row = run.to_json()
        with self.path.open("a") as f:
            f.write(("\n" if torn else "") + json.dumps(row) + "\n")
        stored = self.runs[(run.arch_hash, run.recipe_hash)] = LongRun.from_json(row)
        return stored

    def _ends_torn(self) -> bool:
        """Whether the file ends inside a line (its writer was killed mid-write)."""
        try:
            with self.path.open("rb") as f:
                if f.seek(0, 2) == 0:
                    return False
                f.seek(-1, 2)
                return f.read(1) != b"\n"
        except FileNotFoundError:
            return False


def table_recipe(table: BenchTable) -> ProxyRecipe:
    """The recipe every completed row was trained with (the table's ``recipe``)."""
    recipe = dict(table.provenance.get("recipe") or {})
    try:
        return ProxyRecipe.from_dict({**recipe, "epochs": table.epochs})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the table's recipe: {exc}") from None


def long_recipe(table: BenchTable, factor: int) -> ProxyRecipe:
    """The table's recipe with ``factor`` x the epochs (everything else, the seed included, unchanged)."""
    return ProxyRecipe.from_dict({**table_recipe(table).to_dict(), "epochs": table.epochs * factor})


def measure_settings(table: BenchTable) -> MeasureSettings:
    """The table's measurement settings without speed limits: a long run must train whatever it measures."""
    given = table.provenance.get("measure") or {"target_res": table.space.target_res}
    try:
        return MeasureSettings.from_dict({**given, "max_latency_ms": None, "min_throughput": None})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the table's measurement settings: {exc}") from None


def long_run_config(entry: BenchEntry, recipe: ProxyRecipe, measure: MeasureSettings) -> dict[str, Any]:
    """``run_trial``'s config for one long run: one thread, nothing downloaded."""
    return {"arch": entry.arch.to_dict(), "recipe": recipe.to_dict(), "measure": measure.to_dict(), "cpus": 1,
            "download": False}


def train_long(config: dict[str, Any], device: str) -> LongRun:
    """Run one trial and keep its per-epoch accuracy; an exception it raises is recorded, not raised."""
    recipe = ProxyRecipe.from_dict(config["recipe"])
    accuracies: list[float] = []
    elapsed: list[float] = [0.0]

    def report(metrics: dict[str, Any], weights_dir: str | None) -> None:
        if metrics.get("phase") == EPOCH_PHASE:
            accuracies.append(float(metrics["val_accuracy"]))
            elapsed.append(float(metrics["elapsed_s"]))

    started = time.perf_counter()
    error = None
    try:
        run_trial(config, report, device=device)
    except Exception as exc:  # a failed run is a result (the runs are seeded: it would fail again)
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if error is None and len(accuracies) != recipe.epochs:
        error = f"trained {len(accuracies)} of {recipe.epochs} epochs (the measurement reported it infeasible)"
    return LongRun(arch_hash=Architecture.from_dict(config["arch"]).hash, recipe_hash=recipe.hash,
                   val_accuracy=tuple(accuracies), epoch_s=tuple(b - a for a, b in zip(elapsed, elapsed[1:])),
                   wall_s=time.perf_counter() - started, device_kind=device_kind(device), error=error)


def run_long(entries: Iterable[BenchEntry], recipe: ProxyRecipe, measure: MeasureSettings, cache: RunCache, *,
             workers: int, device: str = "cpu", limit: int | None = None, out: TextIO | None = None) -> int:
    """Train the entries without a cached long run (at most ``limit``), ``workers`` at once; returns how many ran."""
    out = out or sys.stdout
    todo = [e for e in entries if cache.get(e.arch.hash, recipe.hash) is None]
    todo = todo if limit is None else todo[:limit]
    configs = [long_run_config(e, recipe, measure) for e in todo]
    labels = {e.arch.hash: ",".join(e.arch.mixers) for e in todo}
    if not configs:
        return 0

    def done(run: LongRun, index: int) -> None:
        run = cache.add(run)
        result = run.error or f"final accuracy {run.val_accuracy[-1]:.4f}"
        print(f"[{index}/{len(configs)}] {labels[run.arch_hash]}: {result} ({run.wall_s:.1f} s)", file=out, flush=True)

    if workers == 1:
        for i, config in enumerate(configs, start=1):
            done(train_long(config, device), i)
        return len(configs)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(configs)),
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(train_long, config, device) for config in configs]
        for i, future in enumerate(as_completed(futures), start=1):
            done(future.result(), i)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return len(configs)
