"""Forward and forward+backward latency and peak memory of every registered token mixer.

Run from the repository root::

    python -m benchmarks.mixers [--device cpu|cuda|auto] [--quick] [--out results.json]

Two suites, NHWC input ``(batch, H, W, C)``, each mixer built with ``input_size=(H, W)`` (so the
fixed-size DynaMixer runs too) and default hyperparameters:

- ``standard``: the MetaFormer-M stage shapes C=96@56², 192@28², 384@14², 576@7².
- ``sweep``: C=96 at 14² ... 112²; a least-squares fit of log(time) against log(N = H*W) gives
  how cost grows with resolution (slope ~1 linear, ~2 quadratic).  Fixed per-call overheads
  flatten the slope at small sizes, so read it as a lower bound.

Method:
- Time: ``--warmup`` untimed calls, then ``--repeats`` timed calls (fewer of both once a case
  runs past ``--max-case-seconds``; at least 1 warm-up and 3 timed calls); median and
  interquartile range.  CUDA calls are
  timed with CUDA events around the call and a synchronize; CPU calls with ``perf_counter``.
- forward runs in ``eval()`` under ``no_grad``; forward+backward runs in ``train()`` with an
  input that requires grad and ``out.backward(g)`` for a fixed random ``g``; gradients are
  dropped (set to None) after every call, so their allocation is part of each measurement.
- Peak memory, measured on one extra call: the most bytes held by tensors allocated during the
  call at any moment, on top of what was live before it (parameters, input).  CUDA:
  ``torch.cuda.max_memory_allocated() - memory_allocated()`` after ``reset_peak_memory_stats()``.
  CPU: tracemalloc and RSS do not see torch's allocator faithfully (glibc keeps freed blocks),
  so the call runs under ``torch.profiler`` with ``profile_memory=True`` and we take the maximum
  running sum of its allocation/free events (same meaning as the CUDA number; library
  workspaces allocated outside torch's allocator are not included).

With ``--official-dir DIR`` it instead compares every mixer that has official code against the
official module (interleaved, median of 9, 2 threads by default; official time / ours, forward and
forward+backward per standard configuration; JSON ``benchmarks/results/mixers-vs-official.json``).
``DIR`` is a scratch directory of official classes (never part of this repository); its layout and the
protocol are described in ``benchmarks/official_mixers.py`` and ``benchmarks/mixers_vs_official.py``.
``--shapes 384x14,576x7 --update`` re-measures some configurations and merges them into the JSON.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: its folder would shadow the top-level `mixers` package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import contextlib
import json
import math
import os
import platform
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

import timm
import torch

import mixers

STANDARD_SHAPES: tuple[tuple[int, int], ...] = ((96, 56), (192, 28), (384, 14), (576, 7))
SWEEP_DIM = 96
SWEEP_SIZES: tuple[int, ...] = (14, 28, 42, 56, 84, 112)
QUICK_SWEEP_SIZES: tuple[int, ...] = (14, 28, 56)


@dataclass
class Case:
    suite: str
    mixer: str
    dim: int
    size: int
    batch: int


@dataclass
class Result:
    case: Case
    status: str = "ok"  # ok | skipped | error
    reason: str = ""
    params: int = 0
    forward_ms: dict = field(default_factory=dict)
    forward_backward_ms: dict = field(default_factory=dict)
    forward_peak_mib: float | None = None
    forward_backward_peak_mib: float | None = None


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    device = _resolve_device(args.device)
    comparing = bool(args.official_dir)
    if args.threads or comparing:
        torch.set_num_threads(args.threads or 2)
    if args.repeats is None:
        args.repeats = 9 if comparing else 20
    if args.warmup is None:
        args.warmup = 2 if comparing else 5
    if args.quick:
        args.repeats, args.warmup, args.batch_size = 3, min(args.warmup, 1), 2
    names = args.mixers.split(",") if args.mixers else list(mixers.MIXER_NAMES)
    unknown = [n for n in names if n not in mixers.MIXER_NAMES]
    if unknown:
        raise SystemExit(f"--mixers: unknown {unknown}; registered: {', '.join(mixers.MIXER_NAMES)}")
    memory = _PeakMemory(device)
    if comparing:
        from benchmarks import mixers_vs_official

        return mixers_vs_official.run(args, device, args.shapes or STANDARD_SHAPES, _environment(device, memory))
    cases = [Case("standard", m, c, s, args.batch_size) for m in names for c, s in STANDARD_SHAPES]
    sweep = QUICK_SWEEP_SIZES if args.quick else SWEEP_SIZES
    cases += [Case("sweep", m, SWEEP_DIM, s, args.batch_size) for m in names for s in sweep]

    results = []
    for case in cases:
        result = _run_case(case, device, args, memory)
        results.append(result)
        print(_row(result), flush=True)
    scaling = {name: _scaling(name, results) for name in names}
    print()
    print(_table(results))
    print()
    for name, fit in scaling.items():
        print(f"{name:>15}: {_describe_scaling(fit)}")

    out = Path(args.out or f"benchmarks/results/mixers-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "environment": _environment(device, memory),
        "settings": {"repeats": args.repeats, "warmup": args.warmup, "batch_size": args.batch_size,
                     "quick": args.quick, "max_case_seconds": args.max_case_seconds},
        "results": [_result_dict(r) for r in results],
        "scaling": scaling,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 1 if any(r.status == "error" for r in results) else 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed calls per case (default 20; with --official-dir: samples per side, default 9)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls before timing (default 5; with --official-dir 2 per side)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads (default: torch's choice; 2 with --official-dir)")
    p.add_argument("--quick", action="store_true",
                   help="sanity run: batch 2, 3 repeats, 1 warm-up, sweep 14/28/56 only")
    p.add_argument("--mixers", default="", help="comma-separated subset of the registry (default: all)")
    p.add_argument("--max-case-seconds", type=float, default=30.0,
                   help="cut warm-up and repeats of a case after this long (keeps 1 warm-up, 3 timed calls)")
    p.add_argument("--out", default="", help="JSON path (default benchmarks/results/mixers-<device>.json, "
                   "or mixers-vs-official.json with --official-dir)")
    official = p.add_argument_group("comparison with the official modules")
    official.add_argument("--official-dir", default="",
                          help="scratch directory of official mixer classes: compare against them instead "
                               "(see benchmarks/official_mixers.py)")
    official.add_argument("--shapes", type=_shapes, default=None,
                          help="configurations as CxS, comma-separated (default: the standard four)")
    official.add_argument("--update", action="store_true",
                          help="merge into the existing JSON, replacing only the re-measured configurations")
    official.add_argument("--min-sample-ms", type=float, default=20.0,
                          help="back-to-back calls per sample so that one sample lasts about this long")
    official.add_argument("--clock", choices=("wall", "thread"), default="wall",
                          help="wall-clock time, or CPU time of the calling thread (needs --threads 1 and "
                               "a CPU device; robust on a machine shared with other jobs)")
    official.add_argument("--rtol", type=float, default=1e-4,
                          help="largest output/gradient difference (relative) for 'same function'")
    args = p.parse_args(argv)
    if ((args.repeats is not None and args.repeats < 3) or (args.warmup is not None and args.warmup < 0)
            or args.batch_size < 1 or args.threads < 0 or args.min_sample_ms < 0):
        p.error("need --repeats >= 3, --warmup >= 0, --batch-size >= 1, --threads >= 0, --min-sample-ms >= 0")
    if (args.shapes or args.update or args.clock != "wall") and not args.official_dir:
        p.error("--shapes, --update and --clock go with --official-dir")
    if args.clock == "thread" and (args.threads != 1 or args.device == "cuda"):
        p.error("--clock thread times one CPU thread: use it with --threads 1 on the CPU")
    return args


def _shapes(text: str) -> tuple[tuple[int, int], ...]:
    try:
        shapes = tuple((int(c), int(s)) for c, s in (item.split("x") for item in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CxS[,CxS...] such as 384x14, got {text!r}") from None
    if not shapes or any(c < 1 or s < 1 for c, s in shapes):
        raise argparse.ArgumentTypeError(f"channels and sizes must be positive, got {text!r}")
    return shapes


def _resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    return torch.device(choice)


def _run_case(case: Case, device: torch.device, args: argparse.Namespace, memory: "_PeakMemory") -> Result:
    result = Result(case)
    try:
        mixer = mixers.create_mixer(case.mixer, case.dim, input_size=(case.size, case.size)).to(device)
    except ValueError as e:
        result.status, result.reason = "skipped", str(e)
        return result
    except ImportError as e:  # registered but its module is missing or broken
        result.status, result.reason = "error", f"{type(e).__name__}: {e}"
        return result
    result.params = sum(p.numel() for p in mixer.parameters())
    x = torch.randn(case.batch, case.size, case.size, case.dim, device=device)
    x_grad = x.clone().requires_grad_(True)
    grad_out = torch.randn_like(x)

    def forward() -> None:
        with torch.no_grad():
            mixer(x)

    def forward_backward() -> None:
        mixer(x_grad).backward(grad_out)
        mixer.zero_grad(set_to_none=True)
        x_grad.grad = None

    try:
        mixer.eval()
        result.forward_ms = _time(forward, device, args)
        result.forward_peak_mib = memory.peak_mib(forward)
        mixer.train()
        result.forward_backward_ms = _time(forward_backward, device, args)
        result.forward_backward_peak_mib = memory.peak_mib(forward_backward)
    except torch.OutOfMemoryError as e:
        result.status, result.reason = "skipped", f"out of memory: {str(e).splitlines()[0]}"
    except Exception as e:  # one broken mixer must not end the whole benchmark
        result.status, result.reason = "error", f"{type(e).__name__}: {e}"
    finally:
        del mixer, x, x_grad, grad_out
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def _time(fn: Callable[[], None], device: torch.device, args: argparse.Namespace) -> dict:
    budget_end = time.perf_counter() + args.max_case_seconds
    for i in range(args.warmup):
        if i and time.perf_counter() > budget_end:
            break
        fn()
    times: list[float] = []
    while len(times) < args.repeats and (len(times) < 3 or time.perf_counter() < budget_end):
        times.append(_time_once(fn, device))
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return {"median": median, "iqr": q3 - q1, "q1": q1, "q3": q3, "n": len(times)}


def _time_once(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


class _PeakMemory:
    """Peak bytes allocated by one call on top of what was live before it (see module docstring)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.method = ("torch.cuda.max_memory_allocated - memory_allocated" if device.type == "cuda" else
                       "torch.profiler (profile_memory) allocation events: max running sum")

    def peak_mib(self, fn: Callable[[], None]) -> float | None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
            fn()
            torch.cuda.synchronize(self.device)
            return (torch.cuda.max_memory_allocated(self.device) - before) / 2**20
        with _quiet_stderr(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                     profile_memory=True) as prof:
            fn()
        events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
        live = peak = 0
        for _, nbytes in events:  # allocations are positive, frees negative
            live += nbytes
            peak = max(peak, live)
        return peak / 2**20


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the profiler's C++ start/stop log lines (written straight to file descriptor 2)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _scaling(name: str, results: list[Result]) -> dict:
    """Log-log slope of median time vs N = H*W over the sweep (None with fewer than 2 points)."""
    points = [r for r in results if r.case.suite == "sweep" and r.case.mixer == name and r.status == "ok"]
    fit = {"sizes": [r.case.size for r in points]}
    for key in ("forward_ms", "forward_backward_ms"):
        xs = [math.log(r.case.size ** 2) for r in points]
        ys = [math.log(getattr(r, key)["median"]) for r in points]
        fit[f"slope_{key[:-3]}"] = _slope(xs, ys) if len(points) >= 2 else None
    return fit


def _slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _describe_scaling(fit: dict) -> str:
    slope = fit["slope_forward"]
    if slope is None:
        return "not enough sweep points"
    kind = ("sub-linear: overhead-dominated at these sizes" if slope < 0.7 else "~linear" if slope < 1.3
            else "between linear and quadratic" if slope < 1.7 else "~quadratic or worse")
    return (f"time ~ N^{slope:.2f} forward, N^{fit['slope_forward_backward']:.2f} forward+backward "
            f"({kind} in N = H*W, sizes {fit['sizes']})")


def _fmt_ms(stats: dict) -> str:
    return f"{stats['median']:9.2f} ±{stats['iqr']:7.2f}" if stats else " " * 18


def _fmt_mib(value: float | None) -> str:
    return f"{value:9.1f}" if value is not None else " " * 9


def _row(r: Result) -> str:
    c = r.case
    head = f"{c.suite:>8} {c.mixer:>15} {c.dim:>4} {c.size:>4}²"
    if r.status != "ok":
        return f"{head}  {r.status}: {r.reason}"
    return (f"{head} {_fmt_ms(r.forward_ms)} {_fmt_ms(r.forward_backward_ms)} "
            f"{_fmt_mib(r.forward_peak_mib)} {_fmt_mib(r.forward_backward_peak_mib)} {r.params / 1e3:9.1f}")


def _table(results: list[Result]) -> str:
    header = (f"{'suite':>8} {'mixer':>15} {'C':>4} {'HxW':>5} {'fwd ms (med ± IQR)':>18} "
              f"{'fwd+bwd ms (med ± IQR)':>18} {'fwd MiB':>9} {'f+b MiB':>9} {'params k':>9}")
    return "\n".join([header, "-" * len(header), *(_row(r) for r in results)])


def _environment(device: torch.device, memory: _PeakMemory) -> dict:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        name = found.group(1).strip() if found else platform.processor() or platform.machine()
    return {
        "device": device.type, "device_name": name, "torch": torch.__version__, "timm": timm.__version__,
        "python": platform.python_version(), "threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "memory_method": memory.method, "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _result_dict(r: Result) -> dict:
    d = asdict(r)
    d.update(d.pop("case"))
    return d


if __name__ == "__main__":
    raise SystemExit(main())
