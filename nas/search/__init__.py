"""The search: a request validated into settings, a Ray session, one Tune run, and the store writer.

``prepare_search`` checks a ``SearchRequest`` without side effects; ``run_search`` runs it on Ray
Tune (``run``: the Tune experiment; ``searcher``: strategies as a Tune searcher; ``recorder``:
store rows and budget charges; ``callback``: Tune events to the recorder; ``trainable`` and
``device_lock``: the trial process; ``tabular``: trials answered from a tabular benchmark;
``report``: what is printed, free of Ray; ``refine`` and ``refine_recorder``: ``nas refine``, the
same trial path over a fixed list of trials retrained at more epochs).

The names below load on first use (PEP 562), so a trial process, which imports only
``nas.search.trainable``, does not load the driver (store, datasets, strategies).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"PreparedSearch": "nas.search.prepare", "prepare_search": "nas.search.prepare",
            "SearchSummary": "nas.search.report", "format_summary": "nas.search.report",
            "run_search": "nas.search.run", "SearchRequest": "nas.search.settings",
            "SearchSettings": "nas.search.settings"}

__all__ = ["PreparedSearch", "SearchRequest", "SearchSettings", "SearchSummary", "format_summary",
           "prepare_search", "run_search"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nas.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
