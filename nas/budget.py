"""Search budgets: parsing ``--budget`` text and tracking what the trials have used.

A budget is device time (``64gpu-h``, ``90gpu-min``, ``2cpu-h``, ``30cpu-min``) or a trial count
(``40trials``).  Device time charged for a trial is its wall time times the devices it held
(GPUs for a gpu budget, CPUs for a cpu budget), so concurrency does not stretch a budget.
"""
from __future__ import annotations

import dataclasses
import math
import re

__all__ = ["Budget", "BudgetTracker", "parse_budget", "device_hours", "ACCEPTED_FORMS"]

ACCEPTED_FORMS = "<number>gpu-h, <number>gpu-min, <number>cpu-h, <number>cpu-min or <integer>trials " \
                 "(e.g. 64gpu-h, 1.5gpu-h, 90gpu-min, 30cpu-min, 40trials)"
_DEVICE_TIME = re.compile(r"(?P<amount>\d+(?:\.\d*)?|\.\d+)\s*(?P<kind>gpu|cpu)\s*-\s*(?P<unit>h|min)", re.I)
_TRIALS = re.compile(r"(?P<amount>\d+)\s*trials?", re.I)
_UNIT_HOURS = {"h": 1.0, "min": 1.0 / 60.0}


@dataclasses.dataclass(frozen=True)
class Budget:
    """``kind`` is gpu, cpu or trials; ``amount`` is device-hours (gpu/cpu) or a trial count."""

    kind: str
    amount: float
    text: str

    @property
    def unit(self) -> str:
        return "trials" if self.kind == "trials" else f"{self.kind}-h"


def parse_budget(text: str) -> Budget:
    """Parse a budget (case-insensitive, spaces allowed around the parts); ValueError on anything else."""
    if not isinstance(text, str):
        raise ValueError(f"budget {text!r} is not text; accepted forms: {ACCEPTED_FORMS}")
    stripped = text.strip()
    if match := _DEVICE_TIME.fullmatch(stripped):
        kind = match["kind"].lower()
        amount = float(match["amount"]) * _UNIT_HOURS[match["unit"].lower()]
    elif match := _TRIALS.fullmatch(stripped):
        kind, amount = "trials", int(match["amount"])
    else:
        raise ValueError(f"budget {text!r} is malformed; accepted forms: {ACCEPTED_FORMS}")
    if not math.isfinite(amount) or amount <= 0:
        raise ValueError(f"budget {text!r} must be a positive finite amount; accepted forms: {ACCEPTED_FORMS}")
    return Budget(kind, amount, stripped)


def device_hours(wall_s: float, devices: float) -> float:
    """Device time of one trial: wall seconds times devices held (fractional GPUs allowed)."""
    if not _finite_nonnegative(wall_s) or not _finite_nonnegative(devices):
        raise ValueError(f"device_hours needs finite, non-negative wall_s and devices, got {wall_s!r}, {devices!r}")
    return wall_s * devices / 3600.0


class BudgetTracker:
    """What finished trials have used, and whether another trial may start.

    Driver loop: start a trial while ``can_start(in_flight)``; when one ends (succeeded or
    failed), ``charge_trial(wall_s, devices)``; stop once ``can_start`` is False with nothing
    in flight.

    - trials budgets count a trial from the moment it starts: ``can_start`` reserves the
      in-flight ones, so never more than ``amount`` trials run; the charge lands at the end.
    - gpu/cpu budgets can only charge a trial once its time is known.  A new trial starts only
      if the mean cost of finished trials says it fits next to those in flight, so the search
      plans to stay within the budget; trials running longer than the mean (or the first
      batch, before any cost is known) can overshoot by at most what is in flight.
    """

    def __init__(self, budget: Budget):
        self.budget = budget
        self._charged = 0.0
        self._trials_charged = 0

    @property
    def charged(self) -> float:
        return self._charged

    @property
    def remaining(self) -> float:
        return max(self.budget.amount - self._charged, 0.0)

    @property
    def exhausted(self) -> bool:
        return self._charged >= self.budget.amount

    def charge(self, device_hours_or_trials: float) -> None:
        """Charge one finished trial's cost in the budget's unit (device-hours, or 1 for a trials budget)."""
        if not _finite_nonnegative(device_hours_or_trials):
            raise ValueError(f"charge must be a finite, non-negative amount, got {device_hours_or_trials!r}")
        self._charged += float(device_hours_or_trials)
        self._trials_charged += 1

    def charge_trial(self, wall_s: float, devices: float) -> float:
        """Charge one finished trial by the budget's kind; returns what was charged."""
        cost = 1.0 if self.budget.kind == "trials" else device_hours(wall_s, devices)
        self.charge(cost)
        return cost

    def can_start(self, in_flight: int) -> bool:
        if isinstance(in_flight, bool) or not isinstance(in_flight, int) or in_flight < 0:
            raise ValueError(f"in_flight must be a non-negative int, got {in_flight!r}")
        if self.budget.kind == "trials":
            return self._charged + in_flight < self.budget.amount
        if self.exhausted:
            return False
        if self._trials_charged == 0:
            return True
        mean_cost = self._charged / self._trials_charged
        return self._charged + (in_flight + 1) * mean_cost <= self.budget.amount * (1 + 1e-9)  # float slack

    def format(self) -> str:
        """E.g. ``0.12/0.17 cpu-h (71%)`` or ``12/40 trials (30%)``."""
        percent = 100.0 * self._charged / self.budget.amount
        if self.budget.kind == "trials":
            return f"{self._charged:.0f}/{self.budget.amount} trials ({percent:.0f}%)"
        return f"{self._charged:.2f}/{self.budget.amount:.2f} {self.budget.unit} ({percent:.0f}%)"


def _finite_nonnegative(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
