"""Pure transforms from the store's trial records to the frames the page shows (no Streamlit, easy to test).

Every reader here is defensive: a row whose JSON could not be parsed arrives with ``arch=None``
and must still show up, labelled as unreadable.

The front (``on_front``, the hypervolume, the mixers on the front) is computed from the trials that
trained every epoch unless ``include_stopped``: an early-stopped trial's accuracy comes from fewer
epochs (``stopped_at_epoch`` of ``epochs_planned``), a lower fidelity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from nas.front import hypervolume_history, pareto_front
from nas.store import TrialRecord, TrialStatus

UNREADABLE = "(unreadable arch)"
TRIAL_COLUMNS = ["id", "number", "status", "seed_name", "reused_from", "mixers", "depths", "dims", "accuracy",
                 "throughput", "latency_ms", "latency_iqr_ms", "params_m", "gmacs", "epochs_done", "epochs_planned", "stopped_at_epoch", "device_hours",
                 "on_front", "finished_at", "error", "refined_accuracy", "refined_epochs"]


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


def stage_count(trials: list[TrialRecord]) -> int:
    return max((len(arch_view(t.arch).mixers) for t in trials), default=0)


def stage_column(stage: int) -> str:
    """Name of the column that holds the mixer of 1-based ``stage``."""
    return f"stage_{stage}"


def epochs_planned(trial: TrialRecord) -> int | None:
    """The epochs the trial's recipe asked for, if its stored recipe says."""
    value = trial.recipe.get("epochs") if isinstance(trial.recipe, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


RowCache = dict  # trial id -> (the record a row was built from, stage count, the row)


def trials_frame(trials: list[TrialRecord], include_stopped: bool = False,
                 row_cache: RowCache | None = None) -> pd.DataFrame:
    """One row per trial, ordered by id; accuracy in %, params in millions, one column per stage's mixer.

    ``row_cache`` (kept by the caller between calls) reuses the row of every trial whose record is
    the very object it was built from, so a live page rebuilds only the rows of changed trials.
    """
    front = front_ids(trials, include_stopped)
    n_stages = stage_count(trials)
    rows = []
    for t in trials:
        cached = row_cache.get(t.id) if row_cache is not None else None
        if cached is not None and cached[0] is t and cached[1] == n_stages:
            rows.append(cached[2])
            continue
        row = _trial_row(t, n_stages)
        if row_cache is not None:
            row_cache[t.id] = (t, n_stages, row)
        rows.append(row)
    columns = TRIAL_COLUMNS + [stage_column(i + 1) for i in range(n_stages)]
    df = pd.DataFrame(rows, columns=columns)
    df["on_front"] = df["id"].isin(front)
    return df.sort_values("id", kind="stable").reset_index(drop=True)


def _trial_row(t: TrialRecord, n_stages: int) -> dict:
    arch = arch_view(t.arch)
    row = {
        "id": t.id, "number": t.number, "status": str(t.status), "seed_name": t.seed_name,
        "reused_from": t.reused_from, "mixers": arch.label, "depths": _dashed(arch.depths),
        "dims": _dashed(arch.dims), "accuracy": _number(t.accuracy) * 100,
        "throughput": _number(t.throughput), "latency_ms": _number(t.latency_ms),
        "latency_iqr_ms": _number(t.latency_iqr_ms), "params_m": _number(t.params) / 1e6,
        "gmacs": _number(t.gmacs), "epochs_done": t.epochs_done or 0,
        "epochs_planned": epochs_planned(t),
        "stopped_at_epoch": (t.epochs_done or 0) if t.status == TrialStatus.STOPPED else None,
        "device_hours": _number(t.device_hours), "on_front": False,
        "finished_at": t.finished_at, "error": t.error,
        "refined_accuracy": math.nan, "refined_epochs": None,  # filled by dashboard.refinements (nas refine)
    }
    for i in range(n_stages):
        row[stage_column(i + 1)] = arch.mixers[i] if i < len(arch.mixers) else None
    return row


def front_ids(trials: list[TrialRecord], include_stopped: bool = False) -> set[int]:
    return {t.id for t in pareto_front(trials, include_stopped)}


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


def hypervolume_frame(trials: list[TrialRecord], include_stopped: bool = False) -> pd.DataFrame:
    """Hypervolume against cumulative device-hours charged: the finished trials that changed it, and the
    last one.  Drawn as a step line, these are the same curve as one point per finished trial (10,000
    points for a big search, most of them on flat steps) at a fraction of what the page ships."""
    history = hypervolume_history(trials, include_stopped=include_stopped)
    steps = [point for i, point in enumerate(history)
             if i == 0 or i == len(history) - 1 or point[1] != history[i - 1][1]]
    return pd.DataFrame(steps, columns=["device_hours", "hypervolume"])


def front_mixer_counts(trials: list[TrialRecord], include_stopped: bool = False) -> pd.DataFrame:
    """Stage × mixer table of how many non-dominated trials use each mixer in each stage."""
    counts: dict[tuple[int, str], int] = {}
    for t in pareto_front(trials, include_stopped):
        for stage, mixer in enumerate(arch_view(t.arch).mixers, start=1):
            counts[(stage, mixer)] = counts.get((stage, mixer), 0) + 1
    if not counts:
        return pd.DataFrame()
    table = pd.Series(counts).unstack(fill_value=0)
    table.index = [f"Stage {s}" for s in table.index]
    return table[sorted(table.columns)]


def target_resolution(trials: list[TrialRecord]) -> int | None:
    """Input resolution the speed was measured at, from the protocol or recipe if either records it."""
    for t in trials:
        for source in (t.protocol, t.recipe):
            if isinstance(source, dict):
                for key in ("resolution", "img_size", "input_size"):
                    value = source.get(key)
                    if isinstance(value, int):
                        return value
                    if isinstance(value, list) and value and isinstance(value[-1], int):
                        return value[-1]
    return None


TABLE_PAGE_ROWS = 100  # rows of the trial table sent to the browser at a time
TABLE_ORDERS = ("Trial id", "Newest first", "Accuracy, best first", "Throughput, fastest first")
_ORDER_BY = {"Trial id": ("id", True), "Newest first": ("id", False), "Accuracy, best first": ("accuracy", False),
             "Throughput, fastest first": ("throughput", False)}


def page_count(rows: int, page_rows: int = TABLE_PAGE_ROWS) -> int:
    return max(1, -(-rows // page_rows))


def table_page(df: pd.DataFrame, order: str, page: int, page_rows: int = TABLE_PAGE_ROWS) -> pd.DataFrame:
    """Rows of 1-based ``page`` in ``order`` (one of ``TABLE_ORDERS``; trials without a value last)."""
    column, ascending = _ORDER_BY[order]
    keys, orders = ([column], [ascending]) if column == "id" else ([column, "id"], [ascending, True])
    ordered = df.sort_values(keys, ascending=orders, na_position="last", kind="stable")
    return ordered.iloc[(page - 1) * page_rows: page * page_rows]


CHART_POINTS = 2000  # trials drawn on a chart by default; more make every refresh of a big search slow


def chart_sample(df: pd.DataFrame, limit: int = CHART_POINTS) -> pd.DataFrame:
    """All rows when there are at most ``limit``; else every front, seed and running trial and a fixed
    sample of the others: the smallest values of a hash of the trial id, so a live page draws mostly
    the same trials from one refresh to the next."""
    if len(df) <= limit:
        return df
    keep = df["on_front"] | df["seed_name"].notna() | (df["status"] == TrialStatus.RUNNING.value)
    others = df.loc[~keep, "id"].astype("uint64")
    rank = (others * 2654435761) % 2**32
    chosen = rank.nsmallest(max(limit - int(keep.sum()), 0)).index
    return df[keep | df.index.isin(chosen)]
