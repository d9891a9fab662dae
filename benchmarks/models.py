"""Reference models, ours against the official code: forward and forward+backward throughput, side by side.

Run from the repository root::

    python -m benchmarks.models --official-dir /tmp/official_models [--models litv2_s,...]
                                [--devices cpu,cuda] [--batch-size 2] [--repeats 7] [--threads 1]

``--official-dir`` is a scratch directory of the official repositories (never part of this repository;
layout and the three edits the official code needs are in ``benchmarks/official_models.py``).  Without
it, only our models are timed.  Default models: the reference models measured beside searches
(``backbones.references.DEFAULT_REFERENCES``) that have official code elsewhere than timm.

Protocol, per model and device (CPU always, CUDA when present), batch ``--batch-size`` at 224x224:

1. Build ours (``timm.create_model``) and the official model, stochastic depth off on both; load the
   official weights into ours through our checkpoint converter (strict) and check both give the same
   logits in ``eval()`` (max difference <= ``--rtol`` x the largest logit).  A pair that disagrees is
   reported as ``mismatch`` and not timed.
2. forward (``eval()``, ``inference_mode``) and forward+backward (``train()``, ``out.backward(g)`` for a
   fixed ``g``, gradients set to None after every call), each: ``--warmup`` untimed calls of both, then
   ``--repeats`` rounds of one timed call of each, ours first in even rounds and official first in odd
   ones, so the slow phases of a shared machine hit both (interleaved).  CUDA calls are synchronised
   before the clock is read.
3. Clock: on CUDA, wall time around synchronised calls.  On a CPU with one intra-op thread (the
   default; autograd runs CPU backward on the calling thread too), the calling thread's CPU time
   (``time.thread_time``): on a shared machine wall time also counts the time the process waited for
   a core, which has nothing to do with either model; with more threads, wall time.
4. Throughput = batch / median seconds; ratio = official median time / our median time (> 1: ours
   faster).  Absolute numbers do not travel between machines; the ratios, measured side by side, do.

Prints a table and writes ``benchmarks/results/models.json``.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: its folder would shadow the top-level packages
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import math
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from typing import Callable

import timm
import torch
from torch import nn

import backbones  # noqa: F401  (registers our models with timm)
from backbones.references import DEFAULT_REFERENCES, reference_label
from benchmarks.official_models import OFFICIAL_MODELS, build_official, load_official_weights

DEFAULT_OUT = Path("benchmarks/results/models.json")
MODES = ("forward", "forward_backward")
IMG_SIZE = 224


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else [n for n in DEFAULT_REFERENCES if n in OFFICIAL_MODELS]
    unknown = [n for n in names if n not in timm.list_models(n)]
    if unknown:
        raise SystemExit(f"--models: unknown timm model(s) {unknown}")
    directory = Path(args.official_dir) if args.official_dir else None
    if directory is not None and not directory.is_dir():
        raise SystemExit(f"--official-dir: {directory} is not a directory")
    devices = _devices(args.devices)
    started = time.monotonic()
    results = []
    for device in devices:
        for name in names:
            entry = compare_model(name, directory, torch.device(device), args)
            results.append(entry)
            print(_row(entry), flush=True)
    report = {"environment": _environment(devices, args.threads),
              "settings": {"batch_size": args.batch_size, "img_size": IMG_SIZE, "repeats": args.repeats,
                           "warmup": args.warmup, "threads": args.threads, "rtol": args.rtol},
              "wall_s": round(time.monotonic() - started, 1), "results": results}
    print()
    print(table(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out} ({report['wall_s']:.0f} s)")
    return 1 if any(r["status"] not in ("ok", "ours only") for r in results) else 0


def compare_model(name: str, directory: Path | None, device: torch.device, args: argparse.Namespace) -> dict:
    """Build both, check they agree, time them interleaved; one result entry (never raises)."""
    entry: dict = {"model": name, "label": reference_label(name), "device": device.type, "batch": args.batch_size,
                   "official": OFFICIAL_MODELS[name].source if name in OFFICIAL_MODELS else None,
                   "status": "ok", "note": ""}
    try:
        torch.manual_seed(0)
        ours = timm.create_model(name).to(device)
        entry["params"] = sum(p.numel() for p in ours.parameters())
        official = None
        if directory is not None and name in OFFICIAL_MODELS:
            official = build_official(name, directory)
            load_official_weights(ours, official, name)
            official.to(device)
            entry["max_abs_diff"], agree = _agreement(ours, official, device, args.rtol)
            if not agree:
                entry["status"] = "mismatch"
                return entry
        else:
            entry["status"] = "ours only"
        x = torch.randn(args.batch_size, 3, IMG_SIZE, IMG_SIZE, generator=torch.Generator().manual_seed(1)).to(device)
        models = {"ours": ours, **({"official": official} if official is not None else {})}
        for mode in MODES:
            entry[mode] = _time_mode(models, mode, x, args)
    except Exception as exc:  # a model that cannot be built or run is one row, not the end of the run
        entry["status"], entry["note"] = "error", f"{type(exc).__name__}: {exc}"[:300]
    return entry


def _agreement(ours: nn.Module, official: nn.Module, device: torch.device, rtol: float) -> tuple[float, bool]:
    x = torch.randn(2, 3, IMG_SIZE, IMG_SIZE, generator=torch.Generator().manual_seed(0)).to(device)
    ours.eval(), official.eval()
    with torch.inference_mode():
        a, b = ours(x), official(x)
    diff = float((a - b).abs().max())
    return diff, diff <= rtol * max(float(b.abs().max()), 1e-6)


def _time_mode(models: dict[str, nn.Module], mode: str, x: torch.Tensor, args: argparse.Namespace) -> dict:
    calls = {side: _call(model, mode, x) for side, model in models.items()}
    clock = _clock(x.device, args.threads)
    for _ in range(args.warmup):
        for call in calls.values():
            call()
    seconds: dict[str, list[float]] = {side: [] for side in calls}
    order = list(calls)
    for r in range(args.repeats):
        for side in (order if r % 2 == 0 else order[::-1]):
            seconds[side].append(_timed(calls[side], x.device, clock))
    out: dict = {"clock": clock.__name__}
    for side, values in seconds.items():
        median = statistics.median(values)
        out[f"{side}_img_s"] = round(x.shape[0] / median, 3)
        out[f"{side}_ms"] = [round(v * 1e3, 2) for v in values]
    if "official" in seconds:
        out["ratio"] = round(statistics.median(seconds["official"]) / statistics.median(seconds["ours"]), 3)
    return out


def _call(model: nn.Module, mode: str, x: torch.Tensor) -> Callable[[], None]:
    if mode == "forward":
        def forward() -> None:
            model.eval()
            with torch.inference_mode():
                model(x)
        return forward
    grad = torch.randn(x.shape[0], 1000, generator=torch.Generator().manual_seed(2)).to(x.device)

    def forward_backward() -> None:
        model.train()
        model(x).backward(grad)
        for p in model.parameters():
            p.grad = None
    return forward_backward


def _clock(device: torch.device, threads: int) -> Callable[[], float]:
    """CPU time of this thread for single-threaded CPU runs (blind to waiting for a core), else wall time."""
    return time.thread_time if device.type == "cpu" and threads == 1 else time.perf_counter


def _timed(call: Callable[[], None], device: torch.device, clock: Callable[[], float]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


def _devices(spec: str) -> list[str]:
    if spec == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = spec.split(",")
    bad = [d for d in devices if d not in ("cpu", "cuda")]
    if bad:
        raise SystemExit(f"--devices: unknown {bad}; use cpu, cuda or auto")
    if "cuda" in devices and not torch.cuda.is_available():
        raise SystemExit("--devices cuda: CUDA is not available")
    return devices


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _row(r: dict) -> str:
    parts = [f"{r['model']:<18} {r['device']:<4} {r['status']:<9}"]
    for mode in MODES:
        m = r.get(mode) or {}
        parts.append(f"{mode}: ours {_fmt(m.get('ours_img_s'), '.2f')} img/s, official "
                     f"{_fmt(m.get('official_img_s'), '.2f')}, ratio {_fmt(m.get('ratio'), '.2f')}")
    return "  ".join(parts) + (f"  ({r['note']})" if r["note"] else "")


def table(results: list[dict]) -> str:
    """Markdown table of the results (the README's)."""
    lines = ["| model | device | params | forward img/s ours / official | ratio | fwd+bwd img/s ours / official "
             "| ratio |", "|---|---|---|---|---|---|---|"]
    for r in results:
        cells = [r["label"] + f" (`{r['model']}`)", r["device"], _fmt(r.get("params", math.nan) / 1e6, ".2f") + "M"]
        for mode in MODES:
            m = r.get(mode) or {}
            cells += [f"{_fmt(m.get('ours_img_s'), '.2f')} / {_fmt(m.get('official_img_s'), '.2f')}",
                      _fmt(m.get("ratio"), ".2f") if r["status"] == "ok" else r["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _environment(devices: list[str], threads: int) -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
            "timm": timm.__version__, "python": platform.python_version(), "cpu": platform.processor() or
            platform.machine(), "cpus_visible": os.cpu_count(), "threads": threads, "devices": devices,
            "cuda_device": torch.cuda.get_device_name(0) if "cuda" in devices else None}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official-dir", help="scratch directory of the official repositories (see "
                                          "benchmarks/official_models.py); without it only ours are timed")
    p.add_argument("--models", help="comma-separated timm names (default: the reference models with official code)")
    p.add_argument("--devices", default="auto", help="cpu, cuda, cpu,cuda or auto (CPU, plus CUDA when present)")
    p.add_argument("--batch-size", type=int, default=2, help="images per call (default 2: a shared CPU)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls of each side (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls of each side first (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--rtol", type=float, default=1e-4, help="logit agreement needed before timing (default 1e-4)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON output (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    for flag in ("batch_size", "repeats", "threads"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


if __name__ == "__main__":
    sys.exit(main())
