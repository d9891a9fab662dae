"""Search spaces over per-stage token mixers, depths and widths of ``hybrid_metaformer``.

``get_space(name_or_path)`` returns a ``SearchSpace``; its points are ``Architecture`` objects
whose ``to_dict()`` are the backbone's timm kwargs.  See ``search_spaces.space`` for the format.

The names below load on first use (PEP 562): ``Architecture`` and ``search_spaces.canonical``
need no torch, so a process that only keys results by architecture (a tabular-simulation trial)
stays light; ``SearchSpace`` and ``get_space`` bring in torch and the backbones.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Architecture": "search_spaces.architecture", "SearchSpace": "search_spaces.space",
            "SPACE_NAMES": "search_spaces.registry", "get_space": "search_spaces.registry"}

__all__ = ["Architecture", "SearchSpace", "SPACE_NAMES", "get_space"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'search_spaces' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
