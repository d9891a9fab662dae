"""A small synthetic tabular benchmark whose numbers are known: for the evaluator, simulator and benchmark tests.

16 architectures (two mixers in each of four stages).  Every number is a fixed function of the
architecture, so tests can compute the expected answer themselves.
"""
from __future__ import annotations

import hashlib

from nas.bench import BenchEntry, BenchTable
from search_spaces import Architecture, SearchSpace

EPOCHS = 3
MEASURE_S = 2.0


def synthetic_space(seeds: list[dict] | None = None) -> SearchSpace:
    stage = {"mixer": ["sepconv", "pooling"], "depth": [1], "width": [16]}
    return SearchSpace.from_dict({"name": "synthetic", "target_res": 32, "stages": [stage] * 4,
                                  "seeds": seeds or []})


def _unit(arch: Architecture, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) per architecture."""
    digest = hashlib.sha256(f"{arch.hash}/{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def synthetic_entry(arch: Architecture, curve: tuple[float, ...] | None = None) -> BenchEntry:
    """Faster with more pooling, more accurate with more sepconv, plus noise; epochs 1 s per pooling stage + 1."""
    convs = sum(m == "sepconv" for m in arch.mixers)
    final = 0.5 + 0.08 * convs + 0.05 * _unit(arch, "acc")
    curve = curve or tuple(final - 0.1 * (EPOCHS - e) for e in range(1, EPOCHS + 1))
    epoch_s = 1.0 + convs
    return BenchEntry(arch=arch, val_accuracy=tuple(curve), throughput=1000.0 / (1 + convs) * (1 + _unit(arch, "thr")),
                      latency_ms=1.0 + convs + _unit(arch, "lat"), params=1000 + 100 * convs, gmacs=0.01 * (1 + convs),
                      measure_s=MEASURE_S, epoch_s=(epoch_s,) * len(curve))


def synthetic_table(space: SearchSpace | None = None, curves: dict[Architecture, tuple[float, ...]] | None = None
                    ) -> BenchTable:
    space = space or synthetic_space()
    curves = curves or {}
    return BenchTable(space=space, entries=tuple(synthetic_entry(a, curves.get(a)) for a in space.enumerate()),
                      provenance={"source": "tests/bench_fixture.py", "device_kind": "cpu-test"})
