"""Accuracy-vs-throughput Pareto front and its hypervolume (both objectives maximised).

Hypervolume is measured in (log10 throughput, accuracy) space against a fixed reference point
(``ref_throughput`` img/s, accuracy 0), so values from different moments of a search (or different
searches on the same device) are comparable.  Log throughput because throughputs of candidate
architectures span orders of magnitude.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

from .store import FEASIBLE_STATES


def _usable(t: dict) -> bool:
    return (t.get("status") in FEASIBLE_STATES and t.get("accuracy") is not None
            and t.get("throughput") is not None and t["throughput"] > 0)


def pareto_front(trials: Iterable[dict]) -> list[dict]:
    """Non-dominated feasible trials (maximise accuracy and throughput), sorted by throughput.

    Reused rows that copy another trial's result count once (the first occurrence).
    """
    seen, pts = set(), []
    for t in trials:
        if not _usable(t):
            continue
        key = (t.get("arch_hash"), t.get("recipe_hash"), t["accuracy"], t["throughput"])
        if key in seen:
            continue
        seen.add(key)
        pts.append(t)
    pts.sort(key=lambda t: (-t["throughput"], -t["accuracy"]))
    front, best_acc = [], -math.inf
    for t in pts:
        if t["accuracy"] > best_acc:
            front.append(t)
            best_acc = t["accuracy"]
    return sorted(front, key=lambda t: t["throughput"])


def hypervolume(trials: Iterable[dict], ref_throughput: float = 1.0, ref_accuracy: float = 0.0) -> float:
    """Area dominated by the front in (log10 throughput, accuracy) space above the reference point."""
    front = [t for t in pareto_front(trials) if t["throughput"] > ref_throughput and t["accuracy"] > ref_accuracy]
    xs = [math.log10(t["throughput"]) for t in front]
    ys = [t["accuracy"] for t in front]
    # The front rises in throughput and falls in accuracy, so the strip between the previous point's
    # throughput and this one's is covered up to this point's accuracy.
    area, left = 0.0, math.log10(ref_throughput)
    for x, y in zip(xs, ys):
        area += (x - left) * (y - ref_accuracy)
        left = x
    return area


def hypervolume_history(trials: Sequence[dict], ref_throughput: float = 1.0) -> list[tuple[float, float]]:
    """(cumulative device-hours, hypervolume) after each finished trial, in finishing order."""
    done = sorted((t for t in trials if t.get("finished_at")), key=lambda t: t["finished_at"])
    out, hours = [], 0.0
    for i, t in enumerate(done):
        hours += float(t.get("device_hours") or 0.0)
        out.append((hours, hypervolume(done[: i + 1], ref_throughput)))
    return out
