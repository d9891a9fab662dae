"""Cost of a candidate: parameters and MACs (counted) plus latency and throughput (measured).

Measurement protocol (every setting is recorded in ``SpeedResult.protocol`` because results
are only comparable under the same protocol): eval mode under ``torch.inference_mode()``,
``warmup`` untimed forward passes, then ``repeats`` individually timed passes, reported as
median and inter-quartile range.  On CUDA each pass is timed with CUDA events (synchronised
once after the loop), runs under bf16 autocast and channels_last, with cuDNN autotuning on;
on CPU with ``time.perf_counter``, or with ``clock="thread"`` the measuring thread's CPU time
(``time.thread_time``; one intra-op thread only, so every op runs in that thread), which a loaded
machine does not inflate by running other processes in between.
"""
from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from backbones.flops import FlopProfile, profile
from nas.device import device_kind
from nas.trial.measure_settings import THREAD_TIMER, MeasureSettings
from nas.trial.train import amp_context, resolve_speed_settings

__all__ = ["SpeedResult", "measure_speed", "profile_model"]


@dataclass
class SpeedResult:
    latency_ms: float  # median wall time of one forward pass at ``latency_batch``
    latency_iqr_ms: float
    throughput: float  # median images/s at ``throughput_batch``
    throughput_iqr: float
    protocol: dict[str, Any]


def profile_model(model: nn.Module, img_size: int) -> FlopProfile:
    """Parameters, GMACs and ops without a MAC count for one image of ``img_size``."""
    return profile(model, img_size)


def measure_speed(model: nn.Module, device: torch.device | str, settings: MeasureSettings, *,
                  dtype: torch.dtype | None = None, channels_last: bool | None = None) -> SpeedResult:
    """Latency and throughput under ``settings`` (resolution, batch sizes, warm-up, repeats; see module docstring).

    ``dtype``: autocast dtype; default bf16 on CUDA, none (fp32) on CPU; ``torch.float32`` turns it off.
    """
    img_size, latency_batch, throughput_batch = settings.target_res, settings.latency_batch, settings.throughput_batch
    warmup, repeats = settings.warmup, settings.repeats
    device = torch.device(device)
    if settings.clock == "thread" and (device.type != "cpu" or torch.get_num_threads() != 1):
        raise ValueError(f"the thread clock times one CPU thread: it needs device cpu and 1 torch thread, got "
                         f"{device.type} with {torch.get_num_threads()} threads")
    clock = time.thread_time if settings.clock == "thread" else time.perf_counter
    channels_last, amp_dtype = resolve_speed_settings(device, channels_last, dtype)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    in_chans = getattr(model, "pretrained_cfg", {}).get("input_size", (3,))[0]
    was_training = model.training
    model.to(device=device, memory_format=memory_format).eval()
    generator = torch.Generator().manual_seed(0)

    def inputs(batch: int) -> torch.Tensor:
        x = torch.randn(batch, in_chans, img_size, img_size, generator=generator)
        return x.to(device).contiguous(memory_format=memory_format)

    try:
        with _cudnn_benchmark(device.type == "cuda"), torch.inference_mode(), amp_context(device, amp_dtype):
            run_latency = functools.partial(model, inputs(latency_batch))
            run_throughput = functools.partial(model, inputs(throughput_batch))
            latency_s = _time_repeats(run_latency, device, warmup, repeats, clock)
            throughput_s = _time_repeats(run_throughput, device, warmup, repeats, clock)
            cudnn_benchmark = torch.backends.cudnn.benchmark
    finally:
        model.train(was_training)

    latency_ms = latency_s * 1e3
    images_per_s = throughput_batch / throughput_s
    protocol = {
        "warmup": warmup,
        "repeats": repeats,
        "latency_batch": latency_batch,
        "throughput_batch": throughput_batch,
        "img_size": img_size,
        "threads": torch.get_num_threads(),
        "device": device_kind(device),
        "dtype": str(amp_dtype or torch.float32).removeprefix("torch."),
        "channels_last": channels_last,
        "torch": torch.__version__,
        "cudnn_benchmark": cudnn_benchmark,
        "timer": "cuda_event" if device.type == "cuda" else
                 THREAD_TIMER if settings.clock == "thread" else "perf_counter",
        "statistic": "median",
    }
    return SpeedResult(latency_ms=_median(latency_ms), latency_iqr_ms=_iqr(latency_ms),
                       throughput=_median(images_per_s), throughput_iqr=_iqr(images_per_s), protocol=protocol)


def _time_repeats(run: Callable[[], Any], device: torch.device, warmup: int, repeats: int,
                  clock: Callable[[], float] = time.perf_counter) -> np.ndarray:
    """Seconds of each of ``repeats`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.synchronize()
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(repeats)]
            for start, end in events:
                start.record()
                run()
                end.record()
            torch.cuda.synchronize()
        return np.array([start.elapsed_time(end) / 1e3 for start, end in events])
    seconds = np.empty(repeats)
    for i in range(repeats):
        start = clock()
        run()
        seconds[i] = clock() - start
    return seconds


@contextlib.contextmanager
def _cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """Fixed shapes: let cuDNN pick its fastest kernels during measurement, then restore the setting."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled or previous
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _median(values: np.ndarray) -> float:
    return float(np.median(values))


def _iqr(values: np.ndarray) -> float:
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)
