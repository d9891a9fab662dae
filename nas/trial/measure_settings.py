"""How a trial's speed is measured and which speed limits make it infeasible: one typed value.

The settings decide what a stored latency/throughput means, so they are part of a search's
identity: a measurement is reused only under the same resolution and batch sizes
(``same_protocol``), and a resumed search keeps them.  Defaults differ by device: CPU trials use
a short protocol (a 2-core machine must still run a search in minutes); GPU trials use the
protocol GPU papers report (>= 50 warm-up and >= 100 timed passes, throughput at batch 256).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from nas.formatting import fmt

__all__ = ["CLOCKS", "MeasureSettings"]

CLOCKS = ("wall", "thread")
THREAD_TIMER = "thread_time"  # the protocol's ``timer`` of a measurement taken with clock="thread"


@dataclass(frozen=True)
class MeasureSettings:
    target_res: int = 224  # resolution speed is measured at (the proxy trains at its own resolution)
    latency_batch: int = 1
    throughput_batch: int = 32
    warmup: int = 10
    repeats: int = 30
    max_latency_ms: float | None = None  # hard limits: a candidate over them is infeasible, never trained
    min_throughput: float | None = None
    # CPU clock of the timed passes: "wall" (perf_counter), or "thread" (the calling thread's CPU time:
    # with one intra-op thread torch computes in that thread, so the time a shared, loaded machine spends
    # running other processes is not counted; for tabular builds beside other jobs).
    clock: str = "wall"

    def __post_init__(self) -> None:
        for name in ("target_res", "latency_batch", "throughput_batch", "repeats"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"measurement setting {name} must be a positive integer, got {value!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"measurement clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if not _is_int(self.warmup) or self.warmup < 0:
            raise ValueError(f"measurement setting warmup must be an integer >= 0, got {self.warmup!r}")
        for name, flag in (("max_latency_ms", "--max-latency-ms"), ("min_throughput", "--min-throughput")):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{flag} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{flag} must be > 0, got {value:g}")
            object.__setattr__(self, name, float(value))

    @classmethod
    def defaults_for(cls, on_gpu: bool, **given: Any) -> "MeasureSettings":
        """The device's default protocol, overridden by the settings given (None = not given)."""
        protocol = (dict(throughput_batch=256, warmup=50, repeats=100) if on_gpu
                    else dict(throughput_batch=32, warmup=10, repeats=30))
        return cls(**{**protocol, **{k: v for k, v in given.items() if v is not None}})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MeasureSettings":
        """Build from a (possibly partial) dict; unknown keys are an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"measure: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**data)

    def violation(self, latency_ms: float | None, throughput: float | None) -> str | None:
        """The speed limit a measurement breaks (a missing measurement breaks any limit); None if none."""
        if self.max_latency_ms is not None and (latency_ms is None or latency_ms > self.max_latency_ms):
            return f"latency {fmt(latency_ms, '.3g')} ms > max_latency_ms {self.max_latency_ms:g}"
        if self.min_throughput is not None and (throughput is None or throughput < self.min_throughput):
            return f"throughput {fmt(throughput, '.4g')} img/s < min_throughput {self.min_throughput:g}"
        return None

    def same_protocol(self, protocol: Mapping[str, Any] | None) -> bool:
        """Whether a stored measurement was taken at this resolution, these batch sizes and with this clock."""
        if not protocol:
            return False
        return (protocol.get("img_size") == self.target_res and protocol.get("latency_batch") == self.latency_batch
                and protocol.get("throughput_batch") == self.throughput_batch
                and (protocol.get("timer") == THREAD_TIMER) == (self.clock == "thread"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
