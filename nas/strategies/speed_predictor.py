"""Predict a candidate's latency and throughput before it is proposed, from the trials measured so far.

A per-stage lookup table, as HAT and OFA use for latency: every stage contributes one term per
(stage, mixer, depth, width) cell, plus shared per-stage mixer, depth and width terms so that a
cell not measured yet still gets an estimate from its neighbours.  The terms are fitted by ridge
least squares on log10 latency and on log10 of the time per image (1 / throughput), refitted
whenever a new measurement arrives.  Logs because stage costs multiply with width and depth and
the limits are ratios.

The error estimate is the leave-one-out RMS error of the fit (closed form for ridge), floored;
``SpeedPrediction.beyond`` subtracts ``tolerance`` such errors before calling a candidate
outside a limit, so only candidates predicted *far* outside are skipped.

A refit costs the same at 10 or 10,000 measurements: the normal equations are kept as running
sums (``observe`` adds one row's outer product), so solving them is one small system of the
feature count.  The leave-one-out error needs every row's residual, so it is computed only for a
prediction that asks for it (``with_errors``), once per fit; a strategy skipping at tolerance 0
never does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from nas.objectives import SpeedLimits
from search_spaces import Architecture, SearchSpace

__all__ = ["SpeedPrediction", "SpeedPredictor"]

_THREADPOOLS = ThreadpoolController()  # found once: finding the BLAS libraries costs ~10 ms a refit
MIN_LOG_ERROR = 0.02  # log10 units: about 5 %, measurement noise alone is about this large


@dataclass(frozen=True)
class SpeedPrediction:
    latency_ms: float
    throughput: float
    latency_log_error: float  # leave-one-out RMS error of log10 latency
    throughput_log_error: float

    def beyond(self, limits: SpeedLimits, tolerance: float) -> float:
        """How far (log10) the prediction lies outside ``limits`` after allowing ``tolerance``
        errors on each side; 0 when it might be inside.  Tolerance 0 needs no errors (a prediction
        made without them has NaN errors)."""
        total = 0.0
        if limits.max_latency_ms is not None:
            gap = math.log10(self.latency_ms / limits.max_latency_ms)
            total += max(0.0, gap - (tolerance * self.latency_log_error if tolerance else 0.0))
        if limits.min_throughput is not None:
            gap = math.log10(limits.min_throughput / self.throughput)
            total += max(0.0, gap - (tolerance * self.throughput_log_error if tolerance else 0.0))
        return total


class SpeedPredictor:
    """Lookup-table speed model of one space, fitted from ``observe``d measurements."""

    def __init__(self, space: SearchSpace, min_trials: int = 8, ridge: float = 0.1, cell_scale: float = 0.3):
        if min_trials < 2:
            raise ValueError(f"min_trials must be >= 2, got {min_trials}")
        self.space = space
        self.min_trials = min_trials
        self.ridge = ridge
        self.cell_scale = cell_scale
        self._columns: dict[tuple, int] = {}
        for i, stage in enumerate(space.stages):
            keys = [(i, "mixer", m) for m in stage.mixers] + [(i, "depth", d) for d in stage.depths]
            keys += [(i, "width", w) for w in stage.widths]
            keys += [(i, "cell", m, d, w) for m in stage.mixers for d in stage.depths for w in stage.widths]
            for key in keys:
                self._columns.setdefault(key, len(self._columns))
        # The observed, one row each, appended in place (for the leave-one-out errors):
        self._index: dict[Architecture, int] = {}  # arch -> row
        self._x = np.zeros((64, len(self._columns)))  # features
        self._y = np.zeros((64, 2))  # (log10 latency, log10 s/img)
        # Running sums of the normal equations: x'x, x'y, x and y over the rows.
        self._xx = np.zeros((len(self._columns), len(self._columns)))
        self._xy = np.zeros((len(self._columns), 2))
        self._x_sum = np.zeros(len(self._columns))
        self._y_sum = np.zeros(2)
        self._fit: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # weights, intercept, inverse Gram
        self._errors: np.ndarray | None = None  # leave-one-out errors of the current fit

    def __len__(self) -> int:
        return len(self._index)

    def observe(self, arch: Architecture, latency_ms: float, throughput: float) -> None:
        """Add (or replace) a measurement; the model is refitted at the next prediction."""
        if not (latency_ms > 0 and throughput > 0 and math.isfinite(latency_ms) and math.isfinite(throughput)):
            raise ValueError(f"measurements must be positive and finite, got {latency_ms!r} ms, {throughput!r} img/s")
        row = self._index.get(arch)
        if row is None:
            row = self._index[arch] = len(self._index)
            if row == len(self._x):
                self._x = np.concatenate([self._x, np.zeros_like(self._x)])
                self._y = np.concatenate([self._y, np.zeros_like(self._y)])
            x = self._x[row] = self.features(arch)
            self._xx += np.outer(x, x)
            self._x_sum += x
        else:  # a new measurement of a known row replaces its old one in the sums
            self._xy -= np.outer(self._x[row], self._y[row])
            self._y_sum -= self._y[row]
        self._y[row] = (math.log10(latency_ms), -math.log10(throughput))
        self._xy += np.outer(self._x[row], self._y[row])
        self._y_sum += self._y[row]
        self._fit = self._errors = None

    def features(self, arch: Architecture) -> np.ndarray:
        x = np.zeros(len(self._columns))
        for i, (mixer, depth, width) in enumerate(zip(arch.mixers, arch.depths, arch.dims)):
            keys = ((i, "mixer", mixer), (i, "depth", depth), (i, "width", width), (i, "cell", mixer, depth, width))
            for key in keys:
                column = self._columns.get(key)
                if column is not None:
                    x[column] = self.cell_scale if key[1] == "cell" else 1.0
        return x

    def predict(self, arch: Architecture, *, with_errors: bool = True) -> SpeedPrediction | None:
        """The predicted speed of ``arch``; None until ``min_trials`` measurements are in.  Without
        ``with_errors`` the leave-one-out errors (which cost a pass over every row) are NaN."""
        if len(self._index) < self.min_trials:
            return None
        if self._fit is None:
            self._fit = self._solve()
        weights, intercept, _ = self._fit
        log_latency, log_seconds = self.features(arch) @ weights + intercept
        errors = self._leave_one_out_errors() if with_errors else (math.nan, math.nan)
        return SpeedPrediction(latency_ms=10.0 ** log_latency, throughput=10.0 ** -log_seconds,
                               latency_log_error=float(errors[0]), throughput_log_error=float(errors[1]))

    def _solve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centred ridge (the intercept is not shrunk) from the running sums."""
        n = len(self._index)
        x_mean, y_mean = self._x_sum / n, self._y_sum / n
        gram = self._xx - n * np.outer(x_mean, x_mean) + self.ridge * np.eye(len(x_mean))
        with _THREADPOOLS.limit(limits=1, user_api="blas"):  # a small system: BLAS threads only contend with trials
            gram_inverse = np.linalg.inv(gram)
        weights = gram_inverse @ (self._xy - n * np.outer(x_mean, y_mean))
        return weights, y_mean - x_mean @ weights, gram_inverse

    def _leave_one_out_errors(self) -> np.ndarray:
        """Leave-one-out RMS error of each target under the current fit (closed form), floored."""
        if self._errors is None:
            weights, intercept, gram_inverse = self._fit
            n = len(self._index)
            x, y = self._x[:n], self._y[:n]
            xc = x - self._x_sum / n
            leverage = np.einsum("ij,ij->i", xc @ gram_inverse, xc) + 1.0 / n  # one matrix product
            residuals = (y - x @ weights - intercept) / np.maximum(1.0 - leverage, 1e-6)[:, None]
            self._errors = np.maximum(np.sqrt((residuals ** 2).mean(axis=0)), MIN_LOG_ERROR)
        return self._errors
