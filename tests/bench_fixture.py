"""A small synthetic tabular benchmark whose numbers are known, for the evaluator, simulator and
benchmark tests: 16 architectures (sepconv or pooling in each of four stages, one depth and width).

More sepconv stages: more accurate, slower, longer epochs.  Every number is a fixed function of
the architecture, so a test can compute the expected answer itself.
"""
from __future__ import annotations

import hashlib

from nas.bench import BenchEntry, BenchTable
from search_spaces import Architecture, SearchSpace

EPOCHS = 3
MEASURE_S = 2.0


def synthetic_space(seeds: list[list[str]] = ()) -> SearchSpace:
    stage = {"mixer": ["sepconv", "pooling"], "depth": [1], "width": [16]}
    return SearchSpace.from_dict({
        "name": "synthetic", "target_res": 32, "stages": [stage] * 4,
        "seeds": [{"name": f"seed{i}", "mixers": mixers, "depths": [1] * 4, "dims": [16] * 4}
                  for i, mixers in enumerate(seeds)]})


def unit(arch: Architecture, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) per architecture."""
    digest = hashlib.sha256(f"{arch.hash}/{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def convs(arch: Architecture) -> int:
    return sum(m == "sepconv" for m in arch.mixers)


def epoch_seconds(arch: Architecture) -> float:
    return 1.0 + convs(arch)


def synthetic_entry(arch: Architecture, curve: tuple[float, ...] | None = None, error: str | None = None
                    ) -> BenchEntry:
    final = 0.5 + 0.08 * convs(arch) + 0.05 * unit(arch, "acc")
    curve = tuple(curve) if curve is not None else tuple(final - 0.1 * (EPOCHS - e) for e in range(1, EPOCHS + 1))
    return BenchEntry(arch=arch, val_accuracy=curve, throughput=1000.0 / (1 + convs(arch)) * (1 + unit(arch, "thr")),
                      latency_ms=1.0 + convs(arch) + unit(arch, "lat"), params=1000 + 100 * convs(arch),
                      gmacs=0.01 * (1 + convs(arch)), measure_s=MEASURE_S,
                      epoch_s=(epoch_seconds(arch),) * len(curve), error=error)


def synthetic_table(space: SearchSpace | None = None, curves: dict[Architecture, tuple[float, ...]] | None = None,
                    failed: dict[Architecture, int] | None = None) -> BenchTable:
    """Every member of ``space``; ``curves`` overrides accuracy curves, ``failed`` maps rows that failed to the
    epochs they finished."""
    space = space or synthetic_space()
    curves, failed = curves or {}, failed or {}
    entries = []
    for arch in space.enumerate():
        if arch in failed:
            entry = synthetic_entry(arch, (0.3,) * failed[arch], error="RuntimeError: synthetic failure")
        else:
            entry = synthetic_entry(arch, curves.get(arch))
        entries.append(entry)
    return BenchTable(space, entries, EPOCHS, provenance={"source": "tests/bench_fixture.py",
                                                          "device_kind": "cpu:test x1", "recipe": {"epochs": EPOCHS}})
