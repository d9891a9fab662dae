"""Our mixers against their official modules, interleaved side by side (``benchmarks.mixers --official-dir``).

Protocol, per mixer and standard configuration (C=96@56², 192@28², 384@14², 576@7², batch 8):

1. Build ours (default hyperparameters, ``input_size=(H, W)``) and the official module with the same
   hyperparameters (``benchmarks/official_mixers.py``), copy our weights into it and check both compute
   the same function: output and input gradient agree to ``--rtol`` of their largest magnitude.  A pair
   that disagrees where it should agree is reported as ``mismatch`` and not timed.
2. forward (``eval()``, ``no_grad``) and forward+backward (``train()``, ``out.backward(g)``, gradients
   dropped after every call), each timed the same way: warm-up calls of both, then ``--repeats``
   samples of each taken alternately (ours first in even rounds, official first in odd ones), so slow
   phases of a shared machine hit both.  A sample is the mean of ``k`` back-to-back calls, ``k`` chosen
   once per pair so the faster module's sample lasts about ``--min-sample-ms`` (the same ``k`` for both).
3. Ratio = official median / our median (> 1: ours faster); the geometric mean runs over every ratio
   (forward and forward+backward of every timed pair).

Ratios are what count: both sides see the same machine state, absolute times do not travel.
``--clock wall`` (default) times wall-clock.  On a machine shared with other jobs, wall-clock time
with 2 threads mostly measures the other jobs (a parallel region waits for its slowest thread);
``--clock thread --threads 1`` times the CPU seconds of the calling thread instead, which the other
jobs barely move (they still share caches and memory bandwidth).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

import mixers
from benchmarks.official_mixers import OFFICIAL_MIXERS, build_official, copy_weights

DEFAULT_OUT = Path("benchmarks/results/mixers-vs-official.json")
MODES = ("forward", "forward_backward")


def run(args: argparse.Namespace, device: torch.device, shapes: tuple[tuple[int, int], ...],
        environment: dict) -> int:
    """Compare every requested mixer that has official code; print the table, write (or update) the JSON."""
    directory = Path(args.official_dir)
    if not directory.is_dir():
        raise SystemExit(f"--official-dir: {directory} is not a directory")
    names = args.mixers.split(",") if args.mixers else list(mixers.MIXER_NAMES)
    results = []
    for name in names:
        if name not in OFFICIAL_MIXERS:
            entry = {"mixer": name, "status": "skipped", "note": "no official implementation exists"}
            results.append(entry)
            print(f"{name:>15}  skipped: {entry['note']}", flush=True)
            continue
        for dim, size in shapes:
            entry = compare_pair(name, dim, size, directory, device, args)
            results.append(entry)
            print(_row(entry), flush=True)
    out = Path(args.out) if args.out else DEFAULT_OUT
    if args.update and out.exists():
        results = _merged(json.loads(out.read_text())["results"], results)
    summary = _summary(results)
    print()
    print(_table(results))
    if summary["timings"]:
        print(f"\ngeometric mean of official/ours over {summary['timings']} timings: {summary['geomean']:.2f} "
              f"(forward {summary['geomean_forward']:.2f}, forward+backward "
              f"{summary['geomean_forward_backward']:.2f}); lowest {summary['lowest']['ratio']:.2f} "
              f"({summary['lowest']['where']})")
    report = {
        "environment": environment,
        "settings": {"batch_size": args.batch_size, "repeats": args.repeats, "warmup": args.warmup,
                     "min_sample_ms": args.min_sample_ms, "rtol": args.rtol, "clock": args.clock,
                     "threads": torch.get_num_threads(), "protocol": __doc__.strip()},
        "summary": summary,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if any(r["status"] in ("error", "mismatch") for r in results) else 0


def compare_pair(name: str, dim: int, size: int, directory: Path, device: torch.device,
                 args: argparse.Namespace) -> dict:
    entry: dict = {"mixer": name, "dim": dim, "size": size, "batch": args.batch_size,
                   "official": OFFICIAL_MIXERS[name].source, "status": "ok", "note": ""}
    try:
        ours = mixers.create_mixer(name, dim, input_size=(size, size)).to(device)
        official, entry["note"] = build_official(name, directory, dim, size)
        official = official.to(device)
        copy_weights(ours, official)
    except FileNotFoundError as e:
        entry.update(status="skipped", note=str(e))
        return entry
    except Exception as e:  # an official module that cannot run this configuration
        entry.update(status="error", note=f"{type(e).__name__}: {e}")
        return entry
    x = torch.randn(args.batch_size, size, size, dim, device=device)
    grad_out = torch.randn_like(x)
    spec = OFFICIAL_MIXERS[name]
    try:
        entry["max_rel_diff"] = _max_rel_diff(ours, official, x, grad_out)
    except RuntimeError as e:  # e.g. an official module that cannot run backward in float32
        entry.update(status="error", note=f"official module failed: {str(e).splitlines()[0]}")
        return entry
    if spec.exact(size) and entry["max_rel_diff"] > args.rtol:
        entry.update(status="mismatch", note=f"outputs differ by {entry['max_rel_diff']:.2e} of their scale")
        return entry
    load_before = os.getloadavg()[0]
    for mode in MODES:
        entry[mode] = _time_interleaved(_call(ours, x, grad_out, mode), _call(official, x, grad_out, mode),
                                        device, args)
    # The machine's 1-minute load average around the timings: above the thread count, other jobs competed.
    entry["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return entry


def _max_rel_diff(ours: nn.Module, official: nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> float:
    """Largest difference of outputs and input gradients, relative to the largest official value."""
    diffs = []
    outputs = []
    for module in (ours, official):
        module.eval()
        xg = x.clone().requires_grad_(True)
        out = module(xg)
        out.backward(grad_out)
        outputs.append((out.detach(), xg.grad))
    for a, b in zip(*outputs):
        diffs.append(((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item())
    return max(diffs)


def _call(module: nn.Module, x: torch.Tensor, grad_out: torch.Tensor, mode: str) -> Callable[[], None]:
    if mode == "forward":
        def forward() -> None:
            module.eval()
            with torch.no_grad():
                module(x)
        return forward
    x_grad = x.clone().requires_grad_(True)

    def forward_backward() -> None:
        module.train()
        module(x_grad).backward(grad_out)
        module.zero_grad(set_to_none=True)
        x_grad.grad = None
    return forward_backward


def _time_interleaved(ours: Callable[[], None], official: Callable[[], None], device: torch.device,
                      args: argparse.Namespace) -> dict:
    for _ in range(args.warmup):
        ours()
        official()
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    single = min(_sample(ours, 1, device, clock), _sample(official, 1, device, clock))
    calls = max(1, math.ceil(args.min_sample_ms / max(single, 1e-3)))
    samples: dict[str, list[float]] = {"ours": [], "official": []}
    for round_ in range(args.repeats):
        order = (("ours", ours), ("official", official))
        for key, fn in (order if round_ % 2 == 0 else order[::-1]):
            samples[key].append(_sample(fn, calls, device, clock))
    result = {"calls_per_sample": calls}
    for key, times in samples.items():
        q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
        result[f"{key}_ms"] = median
        result[f"{key}_iqr_ms"] = q3 - q1
    result["ratio"] = result["official_ms"] / result["ours_ms"]
    return result


def _sample(fn: Callable[[], None], calls: int, device: torch.device, clock: Callable[[], float]) -> float:
    """Mean milliseconds per call over ``calls`` back-to-back calls."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = clock()
    for _ in range(calls):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (clock() - t0) * 1e3 / calls


def _merged(previous: list[dict], new: list[dict]) -> list[dict]:
    """Previous results with the re-measured (mixer, dim, size, batch) entries replaced, in a stable order."""
    def key(r: dict) -> tuple:
        return r["mixer"], r.get("dim"), r.get("size"), r.get("batch")
    fresh = {key(r): r for r in new}
    merged = [fresh.pop(key(r), r) for r in previous]
    return merged + list(fresh.values())


def _summary(results: list[dict]) -> dict:
    ratios = {mode: [(r[mode]["ratio"], f"{r['mixer']} {r['dim']}@{r['size']}² {mode}")
                     for r in results if mode in r] for mode in MODES}
    every = ratios["forward"] + ratios["forward_backward"]

    def geomean(values: list[tuple[float, str]]) -> float | None:
        return math.exp(statistics.fmean(math.log(v) for v, _ in values)) if values else None
    lowest = min(every, default=(None, "none"))
    return {"timings": len(every), "geomean": geomean(every), "geomean_forward": geomean(ratios["forward"]),
            "geomean_forward_backward": geomean(ratios["forward_backward"]),
            "lowest": {"ratio": lowest[0], "where": lowest[1]}}


def _fmt_mode(entry: dict, mode: str) -> str:
    t = entry.get(mode)
    if not t:
        return " " * 27
    return f"{t['ours_ms']:8.2f} {t['official_ms']:8.2f} {t['ratio']:7.2f}x"


def _row(entry: dict) -> str:
    config = f"{entry['dim']:>4}@{entry['size']:<3}" if "dim" in entry else " " * 8
    head = f"{entry['mixer']:>15} {config}"
    if entry["status"] != "ok":
        return f"{head}  {entry['status']}: {entry['note']}"
    note = f"  ({entry['note']})" if entry["note"] else ""
    return f"{head} {_fmt_mode(entry, 'forward')}  {_fmt_mode(entry, 'forward_backward')}{note}"


def _table(results: list[dict]) -> str:
    header = (f"{'mixer':>15} {'config':<8} {'fwd ours':>8} {'official':>8} {'ratio':>8}  "
              f"{'f+b ours':>8} {'official':>8} {'ratio':>8}   (ms per call; ratio = official / ours)")
    return "\n".join([header, "-" * len(header), *(_row(r) for r in results)])
