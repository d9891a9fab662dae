"""How well one fidelity ranks architectures like another: Kendall's tau between two accuracy lists.

Used wherever two measurements of the same architectures are compared (a cheap proxy against a
longer run, an early epoch against the last one).  Tau-b, so tied accuracies (rounded, or equal
on a small validation set) neither count as agreement nor as disagreement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from scipy.stats import kendalltau

__all__ = ["RankAgreement", "kendall_tau"]


@dataclass(frozen=True)
class RankAgreement:
    tau: float  # -1 (reversed ranking) .. 1 (same ranking)
    p_value: float  # two-sided, null hypothesis tau = 0
    pairs: int  # architectures compared

    def to_json(self) -> dict[str, Any]:
        return {"tau": round(self.tau, 4), "p_value": float(f"{self.p_value:.3g}"), "pairs": self.pairs}


def kendall_tau(xs: Sequence[float], ys: Sequence[float]) -> RankAgreement | None:
    """Kendall's tau-b of paired values; None where it is undefined (under two pairs, or one side constant)."""
    if len(xs) != len(ys):
        raise ValueError(f"kendall_tau needs paired values, got {len(xs)} and {len(ys)}")
    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    result = kendalltau(xs, ys)
    tau, p_value = float(result.statistic), float(result.pvalue)
    if not math.isfinite(tau):
        return None
    return RankAgreement(tau=tau, p_value=p_value if math.isfinite(p_value) else 1.0, pairs=len(xs))
