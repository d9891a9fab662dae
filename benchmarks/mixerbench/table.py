"""The stored trials of a MixerBench build as the committed table (format in ``benchmarks.mixerbench``)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from nas.bench.table import TABLE_FORMAT
from nas.errors import UsageError
from nas.search.recorder import INTERRUPTED_ERROR
from nas.store import Store, TrialRecord, TrialStatus
from search_spaces import Architecture, SearchSpace

from benchmarks.mixerbench.runs import read_runs

__all__ = ["build_table", "write_table", "rows_summary"]


def build_table(store: Store, search_name: str, artifacts_dir: Path | None = None) -> dict[str, Any]:
    """The table of search ``search_name``: one row per architecture with a finished trial.

    Trials the driver's stop interrupted are not results (``--resume`` runs them again) and make no row.
    A reused trial contributes the result (curve and device time) of the trial it copies.  When an
    architecture has several finished trials (a failed try re-run on resume), the completed one wins,
    else the latest.
    """
    search = store.get_search(search_name)
    if search is None:
        known = ", ".join(s.name for s in store.list_searches())
        raise UsageError(f"no MixerBench build {search_name!r} in {store.url} (run `python -m benchmarks.mixerbench "
                         f"build` first)" + (f"; searches there: {known}" if known else ""))
    space = SearchSpace.from_dict(search.space_description)
    order = _grid_order(space)
    chosen: dict[Architecture, TrialRecord] = {}
    for trial in store.trials(search=search_name):
        arch = Architecture.from_dict(trial.arch)
        if arch not in order or trial.status not in (TrialStatus.COMPLETED, TrialStatus.FAILED) or \
                trial.error == INTERRUPTED_ERROR:  # stopped with the driver, re-run by --resume: no result
            continue
        if arch not in chosen or trial.status == TrialStatus.COMPLETED or chosen[arch].status != TrialStatus.COMPLETED:
            chosen[arch] = trial
    rows, sources = [], []
    for arch in sorted(chosen, key=order.__getitem__):
        source = _source(store, chosen[arch])
        rows.append(_row(arch, chosen[arch], source))
        sources.append(source)
    kinds = sorted({s.device_kind for s in sources if s.device_kind})
    if len(kinds) > 1:
        raise UsageError(f"build {search_name!r} holds trials measured on {len(kinds)} device kinds "
                         f"({', '.join(kinds)}); a table needs one: build into a fresh --db (or --name) on one machine")
    protocol = next((s.protocol for s in sources if s.protocol), None) or {}
    finished = [s.finished_at for s in sources if s.finished_at]
    runs = read_runs(artifacts_dir / search_name) if artifacts_dir is not None else []
    config = search.config
    return {
        "format": TABLE_FORMAT,
        "space": space.describe(),
        "architectures": len(order),
        "complete": len(rows) == len(order),
        "recipe": config.get("recipe"),
        "measure": config.get("measure"),
        "protocol": protocol,
        "device_kind": search.device_kind or protocol.get("device"),
        "torch": protocol.get("torch"),
        "code_revision": runs[0]["revision"] if runs else None,
        "build_date": max(finished)[:10] if finished else None,
        "build": {"search": search_name, "cpus_per_trial": config.get("cpus_per_trial"),
                  "max_concurrent": config.get("max_concurrent"),
                  "wall_s": _round(sum(r.get("wall_s") or 0.0 for r in runs), 0.1),
                  "trained": sum(not chosen[a].reused for a in chosen), "reused": sum(chosen[a].reused for a in chosen),
                  "runs": runs},
        "rows": rows,
    }


def write_table(table: Mapping[str, Any], path: str | Path) -> Path:
    """JSON with one header field and one row per line (compact, and diffs stay readable)."""
    path = Path(path)
    lines = [f" {json.dumps(key)}: {_compact(value)}," for key, value in table.items() if key != "rows"]
    rows = ",\n".join(f"  {_compact(row)}" for row in table["rows"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{\n" + "\n".join(lines) + f'\n "rows": [\n{rows}\n ]\n}}\n')
    return path


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def rows_summary(table: Mapping[str, Any]) -> dict[str, Any]:
    """Counts, accuracy spread and trial cost of a table (what the README and the export print)."""
    rows = [r for r in table["rows"] if r["status"] == TrialStatus.COMPLETED.value]
    acc = sorted(r["accuracy"] for r in rows)
    cost = sorted(r["measure_s"] + sum(r["epoch_s"]) for r in rows)
    speed = sorted(r["throughput"] for r in rows)
    return {"rows": len(table["rows"]), "completed": len(rows), "architectures": table["architectures"],
            "accuracy_min": acc[0] if acc else None, "accuracy_median": _median(acc),
            "accuracy_max": acc[-1] if acc else None, "throughput_min": speed[0] if speed else None,
            "throughput_max": speed[-1] if speed else None, "trial_s_median": _median(cost),
            "trial_s_total": sum(cost), "build_wall_s": table["build"]["wall_s"]}


# ---- rows -------------------------------------------------------------------------------------


def _grid_order(space: SearchSpace) -> dict[Architecture, int]:
    return {arch: i for i, arch in enumerate(space.enumerate())}


def _source(store: Store, trial: TrialRecord) -> TrialRecord:
    """The trial whose result ``trial`` holds (itself, or the one it reused), with its epochs."""
    source = store.trial(trial.reused_from if trial.reused else trial.id)
    if source is None:  # the reused trial was deleted: its copied fields are all there is
        return store.trial(trial.id)
    return source


def _row(arch: Architecture, trial: TrialRecord, source: TrialRecord) -> dict[str, Any]:
    epochs = sorted(source.epochs or (), key=lambda e: e.epoch)
    devices = source.devices_held or 1.0  # epochs report wall seconds; the charge is wall x devices held
    elapsed = [e.elapsed_s or 0.0 for e in epochs]
    epoch_s = [(b - a) * devices for a, b in zip([0.0, *elapsed], elapsed)]
    total_s = source.device_hours * 3600.0
    row: dict[str, Any] = {
        "mixers": list(arch.mixers),
        "arch_hash": arch.hash,
        "status": str(trial.status),
        "val_accuracy": [_round(e.val_accuracy, 1e-4) for e in epochs],
        "accuracy": _round(trial.accuracy, 1e-4),
        "throughput": _significant(trial.throughput),
        "throughput_iqr": _significant(trial.throughput_iqr, 3),
        "latency_ms": _significant(trial.latency_ms),
        "latency_iqr_ms": _significant(trial.latency_iqr_ms, 3),
        "params": trial.params,
        "gmacs": _significant(trial.gmacs),
        "measure_s": _round(max(total_s - sum(epoch_s), 0.0), 0.01),
        "epoch_s": [_round(s, 0.01) for s in epoch_s],
    }
    if trial.status != TrialStatus.COMPLETED:
        row["error"] = trial.error
    return row


def _round(value: float | None, step: float) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    digits = max(0, -math.floor(math.log10(step)))
    return round(value, digits)


def _significant(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value) or value == 0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
