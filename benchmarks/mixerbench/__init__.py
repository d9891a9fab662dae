"""MixerBench: a tabular benchmark of the ``mixerbench`` space (every architecture trained and measured once).

Like NAS-Bench-201 / HW-NAS-Bench, but for token-mixer choices: the ``mixerbench`` space
(``search_spaces/mixerbench.yaml``) fixes depths [1, 1, 2, 1] and widths [16, 32, 64, 64] and
picks one mixer per stage from ``hybrid_metaformer_tiny``'s choices: 7 x 7 x 6 x 6 = 1,764
architectures.  ``build`` evaluates all of them with the normal trial runner - it *is*
``nas search --space mixerbench --strategy grid --no-asha --budget <N>trials``, run in-process
through the store, so results already stored for the same recipe and device kind are reused and
an interrupted build continues with ``--resume`` - and ``export`` turns the stored trials into the
committed table ``benchmarks/mixerbench/mixerbench.json``::

    python -m benchmarks.mixerbench build [--db sqlite:///benchmarks/mixerbench.db] [--limit N] [--resume]
    python -m benchmarks.mixerbench export [--db ...] [--out benchmarks/mixerbench/mixerbench.json]

Table format ``mixerbench/1`` (read by ``nas.bench.table.load_table``), one JSON object with one
header field per line and one row per line::

    {
     "format": "mixerbench/1",
     "space": {...},            # SearchSpace.describe() of the built space (rebuild: SearchSpace.from_dict)
     "architectures": 1764,     # members of the space; "complete": every one has a row
     "complete": true,
     "recipe": {...},           # ProxyRecipe.to_dict() every row was trained with (dataset, epochs, ...)
     "measure": {...},          # MeasureSettings.to_dict(): target_res, batch sizes, warm-up, repeats
     "protocol": {...},         # the measurement protocol the trials recorded (threads, dtype, timer ...)
     "device_kind": "cpu:<model> x1",   # where speeds and times were measured (the store's reuse key)
     "torch": "2.x.y",          # torch version the trials ran under
     "code_revision": "<git sha>",      # `git rev-parse HEAD` when the build (first run) started
     "build_date": "YYYY-MM-DD",        # when the last row finished (UTC)
     "build": {"search": "mixerbench", "cpus_per_trial": 1, "max_concurrent": 2,
               "wall_s": ..., "trained": ..., "reused": ..., "runs": [...]},   # how it was built
     "rows": [
      {"mixers": ["sepconv", "sepconv", "mhsa", "mhsa"], "arch_hash": "0123456789abcdef",
       "status": "completed", "val_accuracy": [0.41, 0.55, 0.61, 0.63], "accuracy": 0.63,
       "throughput": 1234.0, "throughput_iqr": 12.3, "latency_ms": 1.234, "latency_iqr_ms": 0.012,
       "params": 123456, "gmacs": 0.00512, "measure_s": 1.87, "epoch_s": [1.21, 1.19, 1.2, 1.22]},
      ...
     ]
    }

Row fields:

- ``mixers``: one mixer per stage; the architecture is the space's member with these mixers (the
  one depth, width and per-mixer ``mixer_kwargs`` of each stage in ``space``):
  ``nas.bench.table.row_architecture(space, mixers)``.
  ``arch_hash`` is its ``Architecture.hash`` (the store's key).  Rows are in the grid order
  (stage 1's mixer varying slowest, in the order the space lists them).
- ``status``: ``completed`` (trained every epoch of the recipe), or ``failed`` (the trial raised;
  ``error`` says why, ``val_accuracy`` holds the epochs it finished) - a simulator answers those
  as failed trials.  Architectures not built yet have no row (``complete`` is false).
- ``val_accuracy``: validation accuracy (0..1) after each epoch, epoch 1 first; ``accuracy`` is
  what the trial recorded: the best of them (what ``nas search`` ranks and the front uses).
- ``throughput`` (img/s at ``measure.throughput_batch``), ``latency_ms`` (batch 1): medians of
  the timed passes at ``measure.target_res``, with their inter-quartile ranges; ``params`` and
  ``gmacs`` (multiply-adds of one image) are counted at ``measure.target_res``.
- ``epoch_s``: device-seconds of each epoch (training, validation and reporting it);
  ``measure_s``: the trial's other device-seconds (worker start-up, data, building, counting and
  timing the model).  ``measure_s + sum(epoch_s)`` is what the search charged for the trial
  (wall time x the 1 CPU it held), so a simulator charges ``measure_s + sum(epoch_s[:k])`` for a
  trial stopped after ``k`` epochs.

Floats are rounded (accuracies to 4 decimals, speeds and MACs to 4 significant digits, seconds
to 10 ms); the table is a few hundred KB.
"""
from __future__ import annotations

SPACE = "mixerbench"
DEFAULT_DB = "sqlite:///benchmarks/mixerbench.db"
DEFAULT_SEARCH = "mixerbench"
DEFAULT_TABLE = "benchmarks/mixerbench/mixerbench.json"
