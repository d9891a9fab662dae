"""Tabular benchmarks: a table of recorded trials, an evaluator that answers trials from it, and a
simulator that replays whole searches on it in seconds (``benchmarks.search_quality``).

``table`` and ``evaluator`` are Ray-free and cheap to import; ``simulator`` drives Ray Tune's
scheduler objects (no Ray runtime) and is imported on its own: ``from nas.bench.simulator import ...``.
"""
from nas.bench.evaluator import TabularEvaluator, TabularStep
from nas.bench.table import BenchEntry, BenchTable, load_table

__all__ = ["BenchEntry", "BenchTable", "TabularEvaluator", "TabularStep", "load_table"]
