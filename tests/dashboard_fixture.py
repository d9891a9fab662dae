"""A realistic results database built through the Store API, for the dashboard tests.

Two searches: ``hybrid-demo`` (finished, with a latency limit) holds completed, early-stopped,
infeasible and failed trials plus the seed papers' hand designs; ``tight-latency`` (still running)
holds a result reused from the first search and a trial that is training right now.
"""
from __future__ import annotations

import random
from pathlib import Path

from nas.store import Measurement, Store, TrialStatus, open_store

DEVICE = "cpu:AMD EPYC 7B13 (2 threads)"
PROTOCOL = {"warmup": 10, "repeats": 30, "latency_batch": 1, "throughput_batch": 64, "threads": 2,
            "device": "cpu", "dtype": "float32", "resolution": 64, "torch": "2.14.1"}
RECIPE = {"dataset": "digits", "epochs": 4, "resolution": 64, "batch_size": 64, "lr": 0.002}
DEPTHS, DIMS = [2, 2, 4, 2], [32, 64, 128, 192]
MAX_LATENCY_MS = 12.0

# (seed name or None, mixers per stage, outcome)
HYBRID_DEMO = [
    ("CAFormer-like", ["sepconv", "sepconv", "mhsa", "mhsa"], TrialStatus.COMPLETED),
    ("CDFFormer-like", ["sepconv", "sepconv", "dynamic_filter", "dynamic_filter"], TrialStatus.COMPLETED),
    ("DilateFormer-like", ["msda", "msda", "mhsa", "mhsa"], TrialStatus.INFEASIBLE),
    (None, ["pooling", "pooling", "hilo", "mhsa"], TrialStatus.COMPLETED),
    (None, ["sepconv", "dma", "dma", "mhsa"], TrialStatus.COMPLETED),
    (None, ["pooling", "pooling", "pooling", "pooling"], TrialStatus.COMPLETED),
    (None, ["dynamic_filter", "dynamic_filter", "hilo", "hilo"], TrialStatus.STOPPED),
    (None, ["dynamixer", "dynamixer", "mhsa", "mhsa"], TrialStatus.INFEASIBLE),
    (None, ["sepconv", "hilo", "hilo", "mhsa"], TrialStatus.COMPLETED),
    (None, ["msda", "sepconv", "dma", "dynamic_filter"], TrialStatus.FAILED),
    (None, ["pooling", "sepconv", "sepconv", "hilo"], TrialStatus.COMPLETED),
    (None, ["dma", "dma", "dynamic_filter", "mhsa"], TrialStatus.STOPPED),
    (None, ["sepconv", "sepconv", "sepconv", "sepconv"], TrialStatus.COMPLETED),
    (None, ["pooling", "dynamic_filter", "hilo", "mhsa"], TrialStatus.FAILED),
]

# Rough per-mixer cost (ms of batch-1 latency per stage) and accuracy contribution.
_COST = {"pooling": 0.4, "sepconv": 0.8, "dynamic_filter": 1.6, "hilo": 1.9, "dma": 2.2, "mhsa": 2.6,
         "msda": 4.5, "dynamixer": 3.4}
_SKILL = {"pooling": 0.006, "sepconv": 0.012, "dynamic_filter": 0.016, "hilo": 0.017, "dma": 0.018,
          "mhsa": 0.02, "msda": 0.02, "dynamixer": 0.019}


def _arch(mixers: list[str]) -> dict:
    return {"mixers": mixers, "depths": DEPTHS, "dims": DIMS,
            "mixer_kwargs": [{"num_heads": d // 32} if m in ("mhsa", "hilo", "dma") else {}
                             for m, d in zip(mixers, DIMS)]}


def _run_trial(store: Store, search_id: int, seed: str | None, mixers: list[str], outcome: str,
               rng: random.Random) -> int:
    """Record one trial the way the driver does: start, measure, train epoch by epoch, finish."""
    arch = _arch(mixers)
    tid = store.start_trial(search_id, arch=arch, recipe=RECIPE, seed_name=seed, devices_held=2.0,
                            model_args={"arch": arch, "num_classes": 10}, device_kind=DEVICE)
    if outcome == TrialStatus.FAILED and mixers[0] == "pooling":  # failed while building: nothing measured
        store.finish_trial(tid, TrialStatus.FAILED, device_hours=0.001,
                           error="ValueError: hilo: window_size 4 does not divide the 8x8 token grid")
        return tid
    latency = 1.2 + sum(_COST[m] for m in mixers) * rng.uniform(0.9, 1.1)
    store.record_measurement(tid, Measurement(params=int(sum(_COST[m] for m in mixers) * 410_000), gmacs=round(latency * 0.021, 4), uncounted_ops=["aten::fft_rfft2"] if "dynamic_filter" in mixers else [], latency_ms=round(latency, 3), latency_iqr_ms=round(latency * 0.04, 3), throughput=round(64_000 / (latency * 6.5), 1), throughput_iqr=3.0, protocol=PROTOCOL, device_kind=DEVICE))
    if outcome == TrialStatus.INFEASIBLE:
        store.finish_trial(tid, TrialStatus.INFEASIBLE, device_hours=0.002,
                           error=f"batch-1 latency {latency:.1f} ms > limit {MAX_LATENCY_MS} ms")
        return tid
    final = min(0.991, 0.86 + sum(_SKILL[m] for m in mixers) + rng.uniform(-0.01, 0.01))
    epochs = 2 if outcome == TrialStatus.STOPPED else RECIPE["epochs"]
    if outcome == TrialStatus.FAILED:
        epochs = 1
    for epoch in range(1, epochs + 1):
        acc = final - (RECIPE["epochs"] - epoch) * 0.035
        store.record_epoch(tid, epoch, dict(train_loss=1.6 / epoch, val_loss=1.4 / epoch + 0.05, val_accuracy=acc, lr=0.002 * (1 - (epoch - 1) / RECIPE["epochs"]), images_per_s=900.0, elapsed_s=30.0), best_accuracy=acc)
    if outcome == TrialStatus.FAILED:
        store.finish_trial(tid, TrialStatus.FAILED, device_hours=0.01, error="RuntimeError: loss is NaN at epoch 2")
    else:
        store.finish_trial(tid, outcome, device_hours=round(0.012 * epochs * rng.uniform(0.8, 1.2), 4),
                           weights_path=f"/runs/{tid}/model.safetensors")
    return tid


def build_fixture_db(path: Path) -> str:
    """Write the two-search fixture at ``path``; returns its SQLAlchemy URL."""
    url = f"sqlite:///{path}"
    store = open_store(url, create=True)
    rng = random.Random(7)
    measure = {"latency_batch": 1, "throughput_batch": 64, "warmup": 10, "repeats": 30, "target_res": 64,
               "max_latency_ms": MAX_LATENCY_MS, "min_throughput": None}
    config = {"strategy": "random", "recipe": RECIPE, "measure": measure}
    demo = store.create_search("hybrid-demo", space="hybrid_metaformer_tiny", space_description={"stages": 4},
                               config=config, budget_kind="cpu-h", budget_total=2.0, budget_text="2cpu-h",
                               device_kind=DEVICE)
    ids = [_run_trial(store, demo.id, seed, mixers, outcome, rng) for seed, mixers, outcome in HYBRID_DEMO]
    store.update_search("hybrid-demo", status="finished", charged=store.charged(demo.id))

    tight = store.create_search("tight-latency", space="hybrid_metaformer_tiny", space_description={"stages": 4},
                                config={**config,
                                        "measure": {**measure, "max_latency_ms": 8.0, "min_throughput": 1000.0}},
                                budget_kind="trials", budget_total=10, budget_text="10trials", device_kind=DEVICE)
    store.record_reuse(tight.id, ids[5])
    _run_trial(store, tight.id, None, ["pooling", "sepconv", "sepconv", "sepconv"], TrialStatus.COMPLETED, rng)
    running = store.start_trial(tight.id, arch=_arch(["sepconv", "pooling", "hilo", "hilo"]), recipe=RECIPE,
                                devices_held=2.0, device_kind=DEVICE)
    store.record_measurement(running, Measurement(params=2_000_000, gmacs=0.12, latency_ms=6.1, latency_iqr_ms=0.2, throughput=1510.0, protocol=PROTOCOL, device_kind=DEVICE))
    store.update_search("tight-latency", charged=2)
    store.close()
    return url
