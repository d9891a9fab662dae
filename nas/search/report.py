"""What a search prints: one progress line per event, and the end-of-search report (no Ray here)."""
from __future__ import annotations

from dataclasses import dataclass, field
from nas.front import SearchStats, pareto_front, summarise
from nas.formatting import fmt, format_duration
from nas.store.records import SearchStatus, TrialRecord, TrialStatus
from nas.tables import trials_table


@dataclass(frozen=True)
class SearchSummary:
    """How one run of a search ended."""

    name: str
    status: SearchStatus
    charged: str
    wall_s: float  # of this run, Ray start-up included
    slots: int  # trials that could run at once
    trial_s: float  # wall time of this run's trials, summed
    trials: list[TrialRecord] = field(default_factory=list)
    stop_reason: str | None = None  # why the run stopped before its budget or space was used up

    @property
    def utilisation(self) -> float:
        """Share of the slots' time (over the run's wall time) spent inside trials."""
        return self.trial_s / (self.wall_s * self.slots) if self.wall_s > 0 and self.slots else 0.0

    @property
    def front(self) -> list[TrialRecord]:
        return pareto_front(self.trials)


def format_progress(stats: SearchStats, elapsed_s: float, budget: str, event: str) -> str:
    """One line: time, the event, budget used, trial counts, best accuracy, Pareto size."""
    reused = f", {stats.reused} reused" if stats.reused else ""
    return (f"[{format_duration(elapsed_s)}] {event} | budget {budget} | "
            f"trials: {stats.done} done, {stats.count(TrialStatus.RUNNING)} running, "
            f"{stats.count(TrialStatus.INFEASIBLE)} infeasible, {stats.count(TrialStatus.FAILED)} failed{reused} | "
            f"best acc {fmt(stats.best_accuracy, '.3f')} | front {stats.front_size}")


def format_summary(summary: SearchSummary, resume_hint: str) -> str:
    """End-of-search report: status, budget charged, trial counts and the Pareto front."""
    stats = summarise(summary.trials)
    front = summary.front
    lines = [
        f"search {summary.name!r} {summary.status} after {format_duration(summary.wall_s)}: charged {summary.charged}; "
        f"trials ran {summary.utilisation:.0%} of the time of {summary.slots} slot(s)",
        f"trials: {stats.done} done, {stats.count(TrialStatus.INFEASIBLE)} infeasible, "
        f"{stats.count(TrialStatus.FAILED)} failed, {stats.reused} reused; best accuracy "
        f"{fmt(stats.best_accuracy, '.3f')}",
        f"Pareto front (accuracy vs throughput), {len(front)} trial(s):",
        trials_table(front),
    ]
    if summary.stop_reason:
        lines.append(f"stopped early: {summary.stop_reason}")
    if summary.status != SearchStatus.FINISHED:
        lines.append(f"continue with: {resume_hint}")
    return "\n".join(lines)
