"""Plain-text views of trials: the fixed-width table (``nas trials``, reports) and one trial's details."""
from __future__ import annotations

import json
from typing import Iterable

from nas.formatting import fmt
from nas.store.records import TrialRecord
from search_spaces import Architecture


def arch_label(trial: TrialRecord) -> str:
    """``mixer -> mixer -> ...`` of a trial, or ``?`` when its stored architecture is unreadable."""
    try:
        return Architecture.from_dict(trial.arch).label() if trial.arch else "?"
    except (TypeError, ValueError, KeyError):
        return "?"


def trials_table(rows: Iterable[TrialRecord], with_search: bool = False) -> str:
    """Fixed-width table: id, status, epochs trained (an early-stopped trial's accuracy is from its
    last one), accuracy, speed, size, cost and the architecture's label."""
    header = ["id"] + (["search"] if with_search else []) + [
        "status", "epochs", "acc", "img/s", "lat_ms", "params_M", "GMACs", "dev_h", "architecture"]
    table = [header]
    for t in rows:
        label = arch_label(t)
        if t.seed_name:
            label = f"{label} ({t.seed_name})"
        if t.reused:
            label = f"{label} [reuses {t.reused_from}]"
        table.append([str(t.id)] + ([t.search or "-"] if with_search else []) + [
            str(t.status), str(t.epochs_done or 0), fmt(t.accuracy, ".3f"), fmt(t.throughput, ".4g"), fmt(t.latency_ms, ".3g"),
            fmt(t.params, ".2f", 1e-6), fmt(t.gmacs, ".3g"), fmt(t.device_hours, ".4f"), label])
    if len(table) == 1:
        return "(no trials)"
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in table)


def describe_trial(t: TrialRecord) -> str:
    """Every stored field of one trial, then its learning curve."""
    lines = [f"trial {t.id} (#{t.number} of search {t.search!r}): {t.status}",
             f"  architecture  {arch_label(t)}" + (f" (seed {t.seed_name})" if t.seed_name else "")]
    fields = [
        ("accuracy", fmt(t.accuracy, ".4f")),
        ("throughput", f"{fmt(t.throughput, '.4g')} img/s (IQR {fmt(t.throughput_iqr, '.3g')})"),
        ("latency", f"{fmt(t.latency_ms, '.4g')} ms (IQR {fmt(t.latency_iqr_ms, '.3g')})"),
        ("params", f"{fmt(t.params, '.3f', 1e-6)} M"), ("GMACs", fmt(t.gmacs, ".4g")),
        ("uncounted ops", ", ".join(t.uncounted_ops) or "-"), ("device", t.device_kind or "-"),
        ("device-hours", f"{fmt(t.device_hours, '.5f')} ({t.devices_held:g} device(s) held)"),
        ("epochs done", str(t.epochs_done)), ("weights", t.weights_path or "-"),
        ("reused from", str(t.reused_from) if t.reused else "-"),
        ("error", t.error or "-"), ("started", t.started_at or "-"), ("finished", t.finished_at or "-"),
        ("arch JSON", json.dumps(t.arch, sort_keys=True)), ("recipe", json.dumps(t.recipe, sort_keys=True)),
        ("protocol", json.dumps(t.protocol, sort_keys=True) if t.protocol else "-"),
    ]
    lines += [f"  {name:<13} {value}" for name, value in fields]
    if t.epochs:
        lines.append("  epoch  train_loss  val_loss  val_acc  lr        img/s")
        for e in t.epochs:
            lines.append(f"  {e.epoch:<5}  {fmt(e.train_loss, '.4f'):<10}  {fmt(e.val_loss, '.4f'):<8}  "
                         f"{fmt(e.val_accuracy, '.4f'):<7}  {fmt(e.lr, '.2e'):<8}  {fmt(e.images_per_s, '.4g')}")
    return "\n".join(lines)
