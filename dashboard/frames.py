"""Pure transforms from store trial dicts to the frames the page shows (no Streamlit, easy to test).

Every reader here is defensive: a row whose JSON could not be parsed arrives with ``arch=None``
(see ``nas.store.repository._loads``) and must still show up, labelled as unreadable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from nas.pareto import hypervolume, hypervolume_history, pareto_front
from nas.store import FEASIBLE_STATES

UNREADABLE = "(unreadable arch)"
TRIAL_COLUMNS = ["id", "number", "status", "seed_name", "reused_from", "mixers", "depths", "dims", "accuracy",
                 "throughput", "latency_ms", "latency_iqr_ms", "params_m", "gmacs", "epochs_done", "device_hours",
                 "on_front", "finished_at", "error"]


@dataclass(frozen=True)
class ArchView:
    """The per-stage lists of an architecture, or empty lists when the stored JSON was unusable."""
    mixers: list[str]
    depths: list
    dims: list

    @property
    def readable(self) -> bool:
        return bool(self.mixers)

    @property
    def label(self) -> str:
        return " → ".join(self.mixers) if self.mixers else UNREADABLE


def arch_view(arch: object) -> ArchView:
    if not isinstance(arch, dict) or not isinstance(arch.get("mixers"), list):
        return ArchView([], [], [])
    return ArchView([str(m) for m in arch["mixers"]], _list(arch, "depths"), _list(arch, "dims"))


def _list(arch: dict, key: str) -> list:
    value = arch.get(key)
    return value if isinstance(value, list) else []


def _dashed(values: list) -> str:
    return "-".join(str(v) for v in values)


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def stage_count(trials: list[dict]) -> int:
    return max((len(arch_view(t.get("arch")).mixers) for t in trials), default=0)


def stage_column(stage: int) -> str:
    """Name of the column that holds the mixer of 1-based ``stage``."""
    return f"stage_{stage}"


def trials_frame(trials: list[dict]) -> pd.DataFrame:
    """One row per trial, ordered by id; accuracy in %, params in millions, one column per stage's mixer."""
    front = front_ids(trials)
    n_stages = stage_count(trials)
    rows = []
    for t in trials:
        arch = arch_view(t.get("arch"))
        row = {
            "id": t["id"], "number": t.get("number"), "status": t.get("status"), "seed_name": t.get("seed_name"),
            "reused_from": t.get("reused_from"), "mixers": arch.label, "depths": _dashed(arch.depths),
            "dims": _dashed(arch.dims), "accuracy": _number(t.get("accuracy")) * 100,
            "throughput": _number(t.get("throughput")), "latency_ms": _number(t.get("latency_ms")),
            "latency_iqr_ms": _number(t.get("latency_iqr_ms")), "params_m": _number(t.get("params")) / 1e6,
            "gmacs": _number(t.get("gmacs")), "epochs_done": t.get("epochs_done") or 0,
            "device_hours": _number(t.get("device_hours")), "on_front": t["id"] in front,
            "finished_at": t.get("finished_at"), "error": t.get("error"),
        }
        for i in range(n_stages):
            row[stage_column(i + 1)] = arch.mixers[i] if i < len(arch.mixers) else None
        rows.append(row)
    columns = TRIAL_COLUMNS + [stage_column(i + 1) for i in range(n_stages)]
    return pd.DataFrame(rows, columns=columns).sort_values("id", kind="stable").reset_index(drop=True)


def front_ids(trials: list[dict]) -> set[int]:
    return {t["id"] for t in pareto_front(trials)}


def is_feasible(status: str) -> bool:
    return status in FEASIBLE_STATES


def filter_trials(df: pd.DataFrame, *, statuses: list[str] | None = None,
                  stage_mixers: dict[int, list[str]] | None = None,
                  accuracy_range: tuple[float, float] | None = None,
                  throughput_range: tuple[float | None, float | None] | None = None) -> pd.DataFrame:
    """Rows matching every given filter; an empty or None filter keeps everything.

    A range filter drops rows that have no value for it (an untrained trial has no accuracy).
    """
    keep = pd.Series(True, index=df.index)
    if statuses:
        keep &= df["status"].isin(statuses)
    for stage, mixers in (stage_mixers or {}).items():
        if mixers:
            keep &= df[stage_column(stage)].isin(mixers)
    if accuracy_range is not None:
        low, high = accuracy_range
        keep &= df["accuracy"].between(low, high)
    if throughput_range is not None:
        low, high = throughput_range
        if low is not None:
            keep &= df["throughput"] >= low
        if high is not None:
            keep &= df["throughput"] <= high
    return df[keep]


def hypervolume_frame(trials: list[dict]) -> pd.DataFrame:
    """Hypervolume after each finished trial against cumulative device-hours charged."""
    return pd.DataFrame(hypervolume_history(trials), columns=["device_hours", "hypervolume"])


def front_mixer_counts(trials: list[dict]) -> pd.DataFrame:
    """Stage × mixer table of how many non-dominated trials use each mixer in each stage."""
    counts: dict[tuple[int, str], int] = {}
    for t in pareto_front(trials):
        for stage, mixer in enumerate(arch_view(t.get("arch")).mixers, start=1):
            counts[(stage, mixer)] = counts.get((stage, mixer), 0) + 1
    if not counts:
        return pd.DataFrame()
    table = pd.Series(counts).unstack(fill_value=0)
    table.index = [f"Stage {s}" for s in table.index]
    return table[sorted(table.columns)]


@dataclass(frozen=True)
class Summary:
    trials: int
    by_status: dict[str, int]
    best_accuracy: float | None   # in %
    best_trial: int | None
    front_size: int
    hypervolume: float


def summarise(trials: list[dict]) -> Summary:
    by_status: dict[str, int] = {}
    for t in trials:
        by_status[t.get("status")] = by_status.get(t.get("status"), 0) + 1
    feasible = [t for t in trials if is_feasible(t.get("status")) and t.get("accuracy") is not None]
    best = max(feasible, key=lambda t: t["accuracy"], default=None)
    return Summary(trials=len(trials), by_status=by_status,
                   best_accuracy=best["accuracy"] * 100 if best else None, best_trial=best["id"] if best else None,
                   front_size=len(pareto_front(trials)), hypervolume=hypervolume(trials))


def target_resolution(trials: list[dict]) -> int | None:
    """Input resolution the speed was measured at, from the protocol or recipe if either records it."""
    for t in trials:
        for source in (t.get("protocol"), t.get("recipe")):
            if isinstance(source, dict):
                for key in ("resolution", "img_size", "input_size"):
                    value = source.get(key)
                    if isinstance(value, int):
                        return value
                    if isinstance(value, list) and value and isinstance(value[-1], int):
                        return value[-1]
    return None
