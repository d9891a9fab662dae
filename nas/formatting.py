"""How numbers and durations are written in tables, progress lines and reports (one convention)."""
from __future__ import annotations

import math
from typing import Any

MISSING = "-"


def fmt(value: Any, spec: str, scale: float = 1.0, unit: str = "") -> str:
    """``format(value * scale, spec) + unit``, or ``-`` for a missing or non-finite number."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return MISSING
    if isinstance(value, float) and not math.isfinite(value):
        return MISSING
    return format(value * scale if scale != 1.0 else value, spec) + unit


def format_duration(seconds: float) -> str:
    """``H:MM:SS``."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
