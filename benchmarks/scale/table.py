"""A synthetic MixerBench table big enough for a 10,000-trial search, and its replay file.

Until the real MixerBench table covers that many architectures, the scale benchmark needs one
row per architecture a search can propose: no architecture is trained twice in a search, so a
10,000-trial search needs more than 10,000 rows (reuse across searches is off by construction:
every run writes its own store).  The space has four stages, each choosing ``sepconv`` or
``pooling``, a depth and a width; ``depths=(1, 2, 3), widths=(16, 32)`` gives 12^4 = 20,736
architectures.

Numbers are GPU-like device-seconds and a fixed function of the architecture (a stable hash adds
noise): more and wider sepconv blocks are more accurate, slower to measure and train, and slower
at inference.  About 2% of the rows failed (half before their measurement, half after one epoch),
as out-of-memory trials do.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

from nas.bench import BenchEntry, BenchTable, TabularEvaluator
from nas.search.tabular import write_replay
from nas.trial.measure_settings import MeasureSettings
from search_spaces import Architecture, SearchSpace

EPOCHS = 3
FAILED_SHARE = 0.02
FAILURE = "RuntimeError: CUDA out of memory (synthetic row)"


def scale_space(depths: tuple[int, ...] = (1, 2, 3), widths: tuple[int, ...] = (16, 32)) -> SearchSpace:
    stage = {"mixer": ["sepconv", "pooling"], "depth": list(depths), "width": list(widths)}
    return SearchSpace.from_dict({"name": "scale_synthetic", "target_res": 32, "proxy_res": 32,
                                  "stages": [stage] * 4})


def _unit(arch: Architecture, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) per architecture."""
    digest = hashlib.sha256(f"{arch.hash}/{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def work(arch: Architecture) -> float:
    """Relative compute of the architecture: blocks x width, sepconv twice as heavy as pooling."""
    return sum(d * w / 16 * (2.0 if m == "sepconv" else 1.0) for m, d, w in zip(arch.mixers, arch.depths, arch.dims))


def scale_entry(arch: Architecture) -> BenchEntry:
    c = work(arch)
    final = 0.40 + 0.35 * (1.0 - math.exp(-c / 12.0)) + 0.05 * _unit(arch, "acc")
    curve = tuple(final - 0.06 * (EPOCHS - e) for e in range(1, EPOCHS + 1))
    epoch_s = (20.0 + 4.0 * c,) * EPOCHS
    measure_s = 15.0 + 0.5 * c
    speed = dict(throughput=30000.0 / (1.0 + c) * (1.0 + 0.3 * _unit(arch, "thr")),
                 latency_ms=0.4 + 0.12 * c + 0.3 * _unit(arch, "lat"), params=20000 * int(1 + c), gmacs=0.002 * (1 + c))
    failure = _unit(arch, "fail")
    if failure < FAILED_SHARE / 2:  # failed while being built or measured
        return BenchEntry(arch=arch, val_accuracy=(), throughput=None, latency_ms=None, params=None, gmacs=None,
                          measure_s=measure_s, epoch_s=(), error=FAILURE)
    if failure < FAILED_SHARE:  # failed in its second epoch
        return BenchEntry(arch=arch, val_accuracy=curve[:1], measure_s=measure_s, epoch_s=epoch_s[:1], error=FAILURE,
                          **speed)
    return BenchEntry(arch=arch, val_accuracy=curve, measure_s=measure_s, epoch_s=epoch_s, **speed)


def scale_table(space: SearchSpace | None = None) -> BenchTable:
    space = space or scale_space()
    return BenchTable(space, (scale_entry(a) for a in space.enumerate()), EPOCHS,
                      provenance={"source": "benchmarks/scale/table.py (synthetic)", "device_kind": "cuda:simulated GPU",
                                  "recipe": {"epochs": EPOCHS}})


def build_replay(path: Path, measure: MeasureSettings, space: SearchSpace | None = None) -> BenchTable:
    """Write the replay file the trials of a simulated search answer from; returns the table."""
    table = scale_table(space)
    write_replay(TabularEvaluator(table, measure), path)
    return table
