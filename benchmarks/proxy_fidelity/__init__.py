"""Proxy fidelity on MixerBench: does the cheap proxy rank architectures like a 4x longer run does?

An offline benchmark of the proxy *recipe*, not a search: no Ray, no store.  It picks
``--architectures`` completed rows of a MixerBench table (the table's true front, thinned evenly
along it when it is larger than that, plus seeded random other completed rows), trains each again
with the table's recipe at ``--factor`` x its epochs (the *long* run: same dataset, resolution,
subset, optimiser, warm-up and seed; only the cosine schedule is stretched) through the normal
trial runner ``nas.trial.runner.run_trial`` (the table's measurement settings without speed
limits, one thread per run, ``--workers`` runs at once in a process pool), and reports Kendall's
tau-b (``nas.rank_agreement.kendall_tau``):

- ``proxy_vs_long``: the table's final-epoch accuracy against the long run's final-epoch accuracy;
- ``recorded_vs_long``: the accuracy a search ranks by (best epoch) in both;
- ``rung1_vs_proxy``: accuracy after epoch 1 (the first early-stopping rung) against the final one;
- ``epoch_K_vs_proxy`` (K below the last epoch) and ``epoch_K_vs_long``: which rung would be
  informative, against the proxy's and against the long run's ranking;

and the rung taus again over every completed table row (``table_kendall_tau``)::

    python -m benchmarks.proxy_fidelity [--table benchmarks/mixerbench/mixerbench.json] [--architectures 60]
        [--factor 4] [--workers 2] [--seed 0] [--json benchmarks/results/proxy_fidelity.json] [--limit N]

Resumable: every finished long run is appended to ``<json stem>.runs.jsonl`` beside the JSON,
keyed by architecture hash and long-recipe hash, and is not trained again; ``--limit N`` trains
at most N new runs this time (the JSON then says how many are pending).  A long run that raised
is cached as failed (the runs are seeded, so it would fail again) and left out of the taus;
delete its line to retry it.  Refused with one line and exit status 2: a missing or invalid
table, ``--architectures`` under 2 or above the table's completed rows (the message says how
many there are), ``--factor`` under 2, ``--workers`` or ``--limit`` under 1.
"""
from __future__ import annotations

from benchmarks.mixerbench import DEFAULT_TABLE

DEFAULT_JSON = "benchmarks/results/proxy_fidelity.json"
CACHE_SUFFIX = ".runs.jsonl"

__all__ = ["CACHE_SUFFIX", "DEFAULT_JSON", "DEFAULT_TABLE"]
