"""Budget parsing and accounting."""
from __future__ import annotations

import pytest

from nas.budget import Budget, BudgetTracker, device_hours, parse_budget


@pytest.mark.parametrize("text, kind, amount", [
    ("64gpu-h", "gpu", 64.0),
    ("90gpu-min", "gpu", 1.5),
    ("2cpu-h", "cpu", 2.0),
    ("30cpu-min", "cpu", 0.5),
    ("40trials", "trials", 40),
    ("1trial", "trials", 1),
    ("1.5gpu-h", "gpu", 1.5),
    (".5cpu-h", "cpu", 0.5),
    ("64GPU-H", "gpu", 64.0),
    ("  10 cpu-min ", "cpu", 10 / 60),
    ("10 CPU - MIN", "cpu", 10 / 60),
    ("40 Trials", "trials", 40),
])
def test_accepted_budgets(text, kind, amount):
    budget = parse_budget(text)
    assert budget.kind == kind
    assert budget.amount == pytest.approx(amount)
    assert budget.text == text.strip()
    assert isinstance(budget.amount, int) == (kind == "trials")


@pytest.mark.parametrize("text, problem", [
    ("", "is malformed"),
    ("64", "is malformed"),
    ("gpu-h", "is malformed"),
    ("64gpu", "is malformed"),
    ("64gpuh", "is malformed"),
    ("64 gpu-hours", "is malformed"),
    ("64tpu-h", "is malformed"),
    ("-1gpu-h", "is malformed"),
    ("1.5trials", "is malformed"),
    ("1e3gpu-h", "is malformed"),
    ("infgpu-h", "is malformed"),
    ("nancpu-h", "is malformed"),
    ("2 gpu-h 3 cpu-h", "is malformed"),
    ("0gpu-h", "must be a positive finite amount"),
    ("0.0cpu-min", "must be a positive finite amount"),
    ("0trials", "must be a positive finite amount"),
    ("1" * 400 + "gpu-h", "must be a positive finite amount"),
])
def test_rejected_budgets_name_the_value_and_the_accepted_forms(text, problem):
    with pytest.raises(ValueError) as excinfo:
        parse_budget(text)
    message = str(excinfo.value)
    assert f"budget {text!r} {problem}" in message
    assert "accepted forms: <number>gpu-h, <number>gpu-min, <number>cpu-h, <number>cpu-min or <integer>trials" \
        in message


def test_non_text_budget_is_rejected():
    with pytest.raises(ValueError, match="budget None is not text"):
        parse_budget(None)


def test_device_hours_is_wall_time_times_devices():
    assert device_hours(3600, 1) == 1.0
    assert device_hours(900, 4) == 1.0
    assert device_hours(1800, 0.5) == 0.25  # fractional GPU
    for bad in ((-1, 1), (1, -1), (float("nan"), 1), (1, float("inf"))):
        with pytest.raises(ValueError, match="finite, non-negative"):
            device_hours(*bad)


def test_trials_budget_counts_in_flight_trials_so_it_never_overshoots():
    tracker = BudgetTracker(parse_budget("3trials"))
    assert tracker.can_start(0) and tracker.can_start(2)
    assert not tracker.can_start(3)  # three running already use the whole budget
    assert tracker.charge_trial(wall_s=500.0, devices=2) == 1.0
    assert not tracker.can_start(2) and tracker.can_start(1)
    tracker.charge_trial(10.0, 1)
    tracker.charge_trial(10.0, 1)
    assert tracker.charged == 3 and tracker.remaining == 0 and tracker.exhausted
    assert not tracker.can_start(0)
    assert tracker.format() == "3/3 trials (100%)"


def test_device_budget_charges_device_time_and_stops_when_spent():
    tracker = BudgetTracker(parse_budget("10cpu-min"))
    assert tracker.can_start(4)  # no cost known yet: only the budget itself limits
    assert tracker.charge_trial(wall_s=60.0, devices=2) == pytest.approx(2 / 60)  # 2 CPU-minutes
    assert tracker.format() == "0.03/0.17 cpu-h (20%)"
    # mean cost 2 CPU-min: 2 + (3 in flight + 1) * 2 = 10 fits, one more in flight does not
    assert tracker.can_start(3) and not tracker.can_start(4)
    for _ in range(3):
        tracker.charge_trial(60.0, 2)
    assert tracker.charged == pytest.approx(8 / 60) and not tracker.exhausted
    assert tracker.can_start(0) and not tracker.can_start(1)
    tracker.charge(3 / 60)  # a long trial overshoots: bounded by what was in flight
    assert tracker.exhausted and tracker.remaining == 0.0 and not tracker.can_start(0)
    assert tracker.format() == "0.18/0.17 cpu-h (110%)"


def test_gpu_budget_format_and_remaining():
    tracker = BudgetTracker(Budget("gpu", 64.0, "64gpu-h"))
    tracker.charge(device_hours(3 * 3600, 4))
    assert tracker.remaining == 52.0 and not tracker.exhausted
    assert tracker.format() == "12.00/64.00 gpu-h (19%)"


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1", True])
def test_charge_rejects_bad_amounts(bad):
    with pytest.raises(ValueError, match="charge must be a finite, non-negative amount"):
        BudgetTracker(parse_budget("1gpu-h")).charge(bad)


@pytest.mark.parametrize("bad", [-1, 1.0, True])
def test_can_start_needs_a_count(bad):
    with pytest.raises(ValueError, match="in_flight must be a non-negative int"):
        BudgetTracker(parse_budget("1gpu-h")).can_start(bad)
