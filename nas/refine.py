"""Proxy fidelity on the user's own search: which trials ``nas refine`` retrains, and how well the
proxy's ranking survives longer training (Ray-free; ``nas.search.refine`` runs the retraining).

A refinement retrains a trial with its search's recipe and more epochs (a fresh run whose
schedule spans the new epochs, not a continuation).  The trials chosen are the search's current
front (``nas.front.pareto_front``: completed trials, as ``nas pareto`` and the dashboard draw it)
and the ``top`` most accurate other completed trials, one per architecture.  Agreement between the
two fidelities is Kendall's tau-b (``nas.rank_agreement``) between the proxy accuracy and the
refined accuracy over the trials that have both.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from nas.errors import UsageError
from nas.formatting import fmt
from nas.front import pareto_front
from nas.rank_agreement import RankAgreement, kendall_tau
from nas.store import RefinementRecord, TrialRecord, TrialStatus
from nas.tables import arch_label
from nas.trial.recipe import ProxyRecipe

__all__ = ["Candidate", "RefineReport", "check_epochs", "check_top", "proxy_vs_refined", "refine_report",
           "refined_recipe", "select_candidates"]


def check_top(top: int) -> int:
    """``--top``: how many trials beside the front; at least one."""
    if top < 1:
        raise UsageError(f"--top must be >= 1 (the best other completed trials refined beside the front), got {top}")
    return top


def check_epochs(epochs: int) -> int:
    """``--epochs``: at least one (whether it is above the proxy's is ``refined_recipe``'s question)."""
    if epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {epochs}")
    return epochs


def refined_recipe(recipe: ProxyRecipe, epochs: int) -> ProxyRecipe:
    """The search's recipe at ``epochs``: a higher fidelity, so more epochs than the proxy trained."""
    check_epochs(epochs)
    if epochs <= recipe.epochs:
        raise UsageError(f"--epochs {epochs} is not above the search's proxy epochs ({recipe.epochs}): a refinement "
                         f"retrains at a higher fidelity; use --epochs {recipe.epochs + 1} or more")
    return dataclasses.replace(recipe, epochs=epochs)


@dataclass(frozen=True)
class Candidate:
    """A trial to refine, and why: on the front, or among the best other completed trials."""

    trial: TrialRecord
    on_front: bool


def select_candidates(trials: Sequence[TrialRecord], top: int) -> list[Candidate]:
    """The current front (by throughput), then the ``top`` most accurate other completed trials (ties: the
    older trial); an architecture already chosen (a reused copy of a front trial, say) is not taken twice,
    and a trial whose stored architecture cannot be read (corrupt JSON) cannot be retrained."""
    front = [t for t in pareto_front(trials) if isinstance(t.arch, dict)]
    chosen = [Candidate(t, on_front=True) for t in front]
    seen = {t.arch_hash for t in front}
    others = sorted((t for t in trials if t.status == TrialStatus.COMPLETED and t.scored
                     and math.isfinite(t.accuracy) and isinstance(t.arch, dict)), key=lambda t: (-t.accuracy, t.id))
    for trial in others:
        if len(chosen) - len(front) >= top:
            break
        if trial.arch_hash in seen:
            continue
        seen.add(trial.arch_hash)
        chosen.append(Candidate(trial, on_front=False))
    return chosen


def proxy_vs_refined(pairs: Iterable[tuple[float | None, float | None]]) -> tuple[RankAgreement | None, int]:
    """Kendall's tau of (proxy accuracy, refined accuracy) pairs with both values, and how many there are."""
    both = [(p, r) for p, r in pairs if p is not None and r is not None and math.isfinite(p) and math.isfinite(r)]
    return kendall_tau([p for p, _ in both], [r for _, r in both]), len(both)


@dataclass(frozen=True)
class RefinedRow:
    """One refined trial as ``nas refine`` reports it."""

    trial: int
    architecture: str
    on_front: bool
    proxy_accuracy: float | None
    refined_accuracy: float | None  # None unless the refinement completed
    status: str  # of the refinement: completed, failed, ... ("not run" when none is stored)
    reused: bool  # a stored refinement was reused, nothing was trained
    refinement: int | None = None
    device_hours: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class RefineReport:
    search: str
    proxy_epochs: int
    epochs: int
    rows: tuple[RefinedRow, ...]
    agreement: RankAgreement | None  # None where tau is undefined (under two pairs, or no difference)
    pairs: int  # trials with both accuracies

    @property
    def complete(self) -> bool:
        """Every chosen trial has a refined accuracy."""
        return all(row.refined_accuracy is not None for row in self.rows)

    def tau_line(self) -> str:
        a = self.agreement
        value = f"{a.tau:.3f} (p = {a.p_value:.2g})" if a is not None else \
            "n/a (needs two trials with different accuracies)"
        return (f"Kendall tau between proxy ({self.proxy_epochs} epochs) and refined ({self.epochs} epochs) accuracy "
                f"over {self.pairs} trial(s): {value}")

    def format(self) -> str:
        """The table (trial, architecture, proxy and refined accuracy) and the tau line."""
        header = ["trial", "proxy_acc", "refined_acc", "refinement", "architecture"]
        table = [header]
        for row in self.rows:
            state = ("reused" if row.reused else str(row.status)) + (", front" if row.on_front else "")
            table.append([str(row.trial), fmt(row.proxy_accuracy, ".3f"), fmt(row.refined_accuracy, ".3f"), state,
                          row.architecture + (f"  [{row.error}]" if row.error else "")])
        widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in table]
        return "\n".join([*lines, self.tau_line()])

    def to_json(self) -> dict[str, Any]:
        return {"search": self.search, "proxy_epochs": self.proxy_epochs, "epochs": self.epochs,
                "kendall_tau": self.agreement.tau if self.agreement else None,
                "p_value": self.agreement.p_value if self.agreement else None, "pairs": self.pairs,
                "trials": [dataclasses.asdict(row) for row in self.rows]}


def refine_report(search: str, proxy_epochs: int, epochs: int, candidates: Sequence[Candidate],
                  refined: Mapping[int, RefinementRecord], reused: Iterable[int] = ()) -> RefineReport:
    """The report of ``candidates`` given their refinements (trial id -> record; ``reused``: trial ids whose
    stored refinement was reused)."""
    reused = set(reused)
    rows = []
    for c in candidates:
        r = refined.get(c.trial.id)
        rows.append(RefinedRow(
            trial=c.trial.id, architecture=arch_label(c.trial), on_front=c.on_front, proxy_accuracy=c.trial.accuracy,
            refined_accuracy=r.accuracy if r is not None and r.completed else None,
            status=str(r.status) if r is not None else "not run", reused=c.trial.id in reused,
            refinement=r.id if r is not None else None, device_hours=r.device_hours if r is not None else 0.0,
            error=r.error if r is not None else None))
    agreement, pairs = proxy_vs_refined((row.proxy_accuracy, row.refined_accuracy) for row in rows)
    return RefineReport(search, proxy_epochs, epochs, tuple(rows), agreement, pairs)
