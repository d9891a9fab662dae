"""The early-stopping scheduler a search runs with: one definition for the Tune run and the simulator.

Rungs at 1, 3, 9 ... epochs (``GRACE_EPOCHS`` x ``REDUCTION_FACTOR``^k, below the last epoch):
a trial reaching a rung continues only when it is in the top third of the trials recorded there.
``mo-asha`` ranks them by accuracy and measured speed (``nas.search.mo_asha``), ``asha`` by
validation accuracy alone (Ray Tune's ``ASHAScheduler``); ``none`` trains every feasible trial
for all its epochs (Tune's FIFO scheduler).
"""
from __future__ import annotations

from typing import Iterable

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from nas.objectives import SpeedObjective
from nas.search.mo_asha import MOASHAScheduler
from nas.search.settings import EarlyStopping
from nas.store.records import TrialRecord

__all__ = ["GRACE_EPOCHS", "REDUCTION_FACTOR", "create_scheduler", "restore_rungs"]

GRACE_EPOCHS = 1
REDUCTION_FACTOR = 3


def create_scheduler(early_stopping: EarlyStopping | str, max_epochs: int,
                     objective: SpeedObjective | str = SpeedObjective.THROUGHPUT) -> TrialScheduler:
    """A fresh scheduler (they keep per-trial state) over ``epoch``/``val_accuracy``; ``objective``
    is the speed MO-ASHA ranks by (ASHA and none ignore it)."""
    choice = EarlyStopping.parse(early_stopping)
    if choice is EarlyStopping.NONE:
        return FIFOScheduler()
    if choice is EarlyStopping.ASHA:
        return ASHAScheduler(time_attr="epoch", metric="val_accuracy", mode="max", max_t=max_epochs,
                             grace_period=GRACE_EPOCHS, reduction_factor=REDUCTION_FACTOR)
    return MOASHAScheduler(max_t=max_epochs, grace_period=GRACE_EPOCHS, reduction_factor=REDUCTION_FACTOR,
                           objective=SpeedObjective(objective), time_attr="epoch", metric="val_accuracy")


def restore_rungs(scheduler: TrialScheduler, trials: Iterable[TrialRecord]) -> int:
    """On resume: refill MO-ASHA's rungs from the search's stored trials (with their epochs); returns
    how many trials were restored.  Ray's ASHA keeps its rungs private, so they restart empty (the
    first trials of a resumed run continue as in a new search); FIFO has none."""
    if isinstance(scheduler, MOASHAScheduler):
        return scheduler.restore(trials)
    return 0
