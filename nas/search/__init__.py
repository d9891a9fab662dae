"""The search: a request validated into settings, a Ray session, one Tune run, and the store writer.

``prepare_search`` checks a ``SearchRequest`` without side effects; ``run_search`` runs it on Ray
Tune (``run``: the Tune experiment; ``searcher``: strategies as a Tune searcher; ``recorder``:
store rows and budget charges; ``callback``: Tune events to the recorder; ``trainable`` and
``device_lock``: the trial process; ``report``: what is printed, free of Ray).
"""
from nas.search.prepare import PreparedSearch, prepare_search
from nas.search.report import SearchSummary, format_summary
from nas.search.run import run_search
from nas.search.settings import SearchRequest, SearchSettings

__all__ = ["PreparedSearch", "SearchRequest", "SearchSettings", "SearchSummary", "format_summary",
           "prepare_search", "run_search"]

