"""A synthetic table over the real ``mixerbench`` space, for measuring strategies before (or beside)
the real MixerBench table: same space, seeds, format and epochs, made-up numbers.

Every number is a seeded function of the architecture:

- latency: 0.3 ms plus, per stage, the stage's weight x the mixer's cost (mixer costs drawn
  log-normally once per table), times 4 % log-normal measurement noise; additive over stages, as
  real stage times are;
- throughput: 1000 / (0.5 + sum of per-stage per-image costs), the per-image costs correlated with
  the latency costs but not equal (batching helps mixers differently), times 4 % noise;
- final accuracy: a logistic function of per-mixer qualities (weighted more in later stages,
  partly correlated with cost: slower mixers tend to be better), a bonus for equal neighbouring
  mixers and per-architecture noise, between 0.35 and 0.85; the earlier epochs lie below it by a
  random 6-9 points per epoch, so learning curves cross and early stopping can be wrong;
- device-seconds: 2 s measurement, epochs in proportion to 1 / throughput.

    python -m benchmarks.synthetic_mixerbench --out /tmp/synthetic_mixerbench.json [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

from nas.bench import BenchEntry, BenchTable
from search_spaces import get_space

EPOCHS = 4
STAGE_WEIGHTS = (0.4, 0.3, 0.5, 0.2)


def synthetic_table(seed: int = 0) -> BenchTable:
    space = get_space("mixerbench")
    rng = random.Random(seed)
    mixers = sorted({m for stage in space.stages for m in stage.mixers})
    latency_cost = {m: math.exp(rng.gauss(0, 0.6)) for m in mixers}
    image_cost = {m: latency_cost[m] * math.exp(rng.gauss(0, 0.3)) for m in mixers}
    quality = {m: rng.gauss(0, 1) + 0.5 * math.log(latency_cost[m]) for m in mixers}
    entries = []
    for arch in space.enumerate():
        noise = random.Random(f"{seed}/{arch.hash}")
        latency = 0.3 + sum(w * latency_cost[m] for w, m in zip(STAGE_WEIGHTS, arch.mixers))
        latency *= math.exp(noise.gauss(0, 0.04))
        throughput = 1000 / (0.5 + sum(w * image_cost[m] for w, m in zip(STAGE_WEIGHTS, arch.mixers)))
        throughput *= math.exp(noise.gauss(0, 0.04))
        score = sum((1.0 + 0.3 * i) * quality[m] for i, m in enumerate(arch.mixers))
        score += 0.6 * sum(a == b for a, b in zip(arch.mixers, arch.mixers[1:]))
        final = 0.35 + 0.5 / (1 + math.exp(-(score / 3 + noise.gauss(0, 0.35))))
        curve = [max(0.05, final - (EPOCHS - e) * (0.06 + 0.03 * noise.random())) for e in range(1, EPOCHS)]
        epoch_s = round(0.5 + 600 / throughput, 2)
        entries.append(BenchEntry(
            arch=arch, val_accuracy=tuple(round(a, 4) for a in (*curve, final)), throughput=round(throughput, 2),
            latency_ms=round(latency, 4), params=None, gmacs=None, measure_s=2.0, epoch_s=(epoch_s,) * EPOCHS))
    return BenchTable(space, entries, EPOCHS, provenance={
        "source": f"benchmarks/synthetic_mixerbench.py --seed {seed} (synthetic numbers, not measured)",
        "device_kind": "synthetic", "architectures": len(entries), "complete": True})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the mixerbench/1 JSON table")
    parser.add_argument("--seed", type=int, default=0, help="seed of the made-up numbers")
    args = parser.parse_args(argv)
    table = synthetic_table(args.seed)
    Path(args.out).write_text(json.dumps(table.to_dict()) + "\n")
    print(f"wrote {args.out}: {len(table)} rows, true front of {len(table.true_front())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
