"""Kendall taus between fidelities, the result JSON and the printed table."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from nas.bench import BenchEntry, BenchTable
from nas.formatting import fmt
from nas.rank_agreement import RankAgreement, kendall_tau
from nas.search.scheduler import GRACE_EPOCHS

from benchmarks.proxy_fidelity.long_runs import LongRun
from benchmarks.proxy_fidelity.selection import Selection

__all__ = ["FidelityRow", "Taus", "fidelity_rows", "format_taus", "rung_taus", "selection_taus", "table_info",
           "taus_json"]

Taus = dict[str, RankAgreement | None]


@dataclass(frozen=True)
class FidelityRow:
    entry: BenchEntry  # the table's row: the proxy's per-epoch accuracy
    on_front: bool
    long: LongRun | None  # None: not trained yet

    def to_json(self, long_epochs: int) -> dict[str, Any]:
        e = self.entry
        row = {"arch_hash": e.arch.hash, "mixers": list(e.arch.mixers), "on_front": self.on_front,
               "proxy": list(e.val_accuracy), "proxy_recorded": e.accuracy, "throughput": e.throughput,
               "long": list(self.long.val_accuracy) if self.long else None,
               "long_device_s": round(sum(self.long.epoch_s), 2) if self.long else None}
        if self.long and not self.long.completed(long_epochs):
            row["error"] = self.long.error or f"{len(self.long.val_accuracy)} of {long_epochs} epochs"
        return row


def fidelity_rows(selection: Selection, runs: Mapping[str, LongRun]) -> list[FidelityRow]:
    """The selected rows, front first, each with its long run (by architecture hash) if there is one."""
    return [FidelityRow(e, i < len(selection.front), runs.get(e.arch.hash)) for i, e in enumerate(selection.entries)]


def rung_taus(entries: Iterable[BenchEntry]) -> Taus:
    """Accuracy after the first early-stopping rung, and after every epoch K before the last, against the
    final epoch's: how early the proxy's own ranking settles."""
    entries = list(entries)
    final = [e.val_accuracy[-1] for e in entries]
    epochs = min(len(e.val_accuracy) for e in entries)
    taus: Taus = {f"rung{GRACE_EPOCHS}_vs_proxy": kendall_tau([e.val_accuracy[GRACE_EPOCHS - 1] for e in entries],
                                                              final)}
    for k in range(1, epochs):
        taus[f"epoch_{k}_vs_proxy"] = kendall_tau([e.val_accuracy[k - 1] for e in entries], final)
    return taus


def selection_taus(rows: list[FidelityRow], long_epochs: int) -> Taus:
    """Proxy against long run (final epoch, and best epoch = what a search records), over the rows whose long
    run completed; the rung taus over every selected row; every proxy epoch against the long run."""
    trained = [r for r in rows if r.long is not None and r.long.completed(long_epochs)]
    long_final = [r.long.val_accuracy[-1] for r in trained]
    taus: Taus = {
        "proxy_vs_long": kendall_tau([r.entry.val_accuracy[-1] for r in trained], long_final),
        "recorded_vs_long": kendall_tau([r.entry.accuracy for r in trained],
                                        [max(r.long.val_accuracy) for r in trained]),
        **rung_taus(r.entry for r in rows)}
    epochs = min(len(r.entry.val_accuracy) for r in rows)
    for k in range(1, epochs + 1):
        taus[f"epoch_{k}_vs_long"] = kendall_tau([r.entry.val_accuracy[k - 1] for r in trained], long_final)
    return taus


def taus_json(taus: Taus) -> dict[str, dict[str, Any]]:
    """``{"kendall_tau": {key: tau}, "p_value": {...}, "pairs": {...}}`` (null where tau is undefined)."""
    out: dict[str, dict[str, Any]] = {"kendall_tau": {}, "p_value": {}, "pairs": {}}
    for key, agreement in taus.items():
        j = agreement.to_json() if agreement else {"tau": None, "p_value": None, "pairs": None}
        out["kendall_tau"][key], out["p_value"][key], out["pairs"][key] = j["tau"], j["p_value"], j["pairs"]
    return out


def table_info(path: Path, table: BenchTable) -> dict[str, Any]:
    """Where the proxy numbers came from (the table's provenance) and what the selection drew from."""
    p = table.provenance
    return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "code_revision": p.get("code_revision"), "complete": p.get("complete"),
            "architectures": p.get("architectures"), "rows": len(table), "completed_rows": len(table.completed),
            "true_front_size": len(table.true_front()), "device_kind": p.get("device_kind"),
            "torch": p.get("torch"), "build_date": p.get("build_date")}


def format_taus(title: str, taus: Taus) -> str:
    lines = [title, f"  {'comparison':<22} {'tau':>7} {'p':>9} {'pairs':>6}"]
    for key, a in taus.items():
        lines.append(f"  {key:<22} {fmt(a and a.tau, '.3f'):>7} {fmt(a and a.p_value, '.2g'):>9} "
                     f"{fmt(a and a.pairs, 'd'):>6}")
    return "\n".join(lines)
