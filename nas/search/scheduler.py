"""The early-stopping scheduler a search runs with: one definition for the Tune run and the simulator.

ASHA (asynchronous successive halving) ranks trials by validation accuracy at rungs of 1, 3, 9 ...
epochs and stops those below the top third of their rung; without ASHA every feasible trial
trains for all its epochs (Tune's FIFO scheduler).
"""
from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

__all__ = ["create_scheduler"]

GRACE_EPOCHS = 1
REDUCTION_FACTOR = 3


def create_scheduler(asha: bool, max_epochs: int) -> TrialScheduler:
    """A fresh scheduler (they keep per-trial state): ASHA over ``epoch``/``val_accuracy``, or FIFO."""
    if not asha:
        return FIFOScheduler()
    return ASHAScheduler(time_attr="epoch", metric="val_accuracy", mode="max", max_t=max_epochs,
                         grace_period=GRACE_EPOCHS, reduction_factor=REDUCTION_FACTOR)
