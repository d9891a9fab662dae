"""``python -m benchmarks.proxy_fidelity``: Kendall tau between the proxy and a longer run on MixerBench."""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import torch

from nas.bench import BenchTable, load_table
from nas.errors import UsageError
from nas.formatting import format_duration
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe

from benchmarks.mixerbench.runs import code_revision
from benchmarks.proxy_fidelity import CACHE_SUFFIX, DEFAULT_JSON, DEFAULT_TABLE
from benchmarks.proxy_fidelity.long_runs import RunCache, long_recipe, measure_settings, run_long, table_recipe
from benchmarks.proxy_fidelity.report import (FidelityRow, Taus, fidelity_rows, format_taus, rung_taus,
                                              selection_taus, table_info, taus_json)
from benchmarks.proxy_fidelity.selection import Selection, select_architectures


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.proxy_fidelity",
                                description="Kendall tau between MixerBench's proxy accuracy and a longer run's "
                                            "(see benchmarks/proxy_fidelity/__init__.py)")
    p.add_argument("--table", default=DEFAULT_TABLE, help=f"MixerBench table (default {DEFAULT_TABLE})")
    p.add_argument("--architectures", type=int, default=60, help="architectures retrained: the true front plus "
                                                                   "random others (default 60)")
    p.add_argument("--factor", type=int, default=4, help="long run = the table's recipe at FACTOR x epochs (default 4)")
    p.add_argument("--workers", type=int, default=2, help="long runs at once, one thread each (default 2)")
    p.add_argument("--seed", type=int, default=0, help="draws the random architectures (default 0)")
    p.add_argument("--json", default=DEFAULT_JSON, help=f"result file (default {DEFAULT_JSON}); finished long runs "
                                                        f"are cached beside it in <stem>{CACHE_SUFFIX}")
    p.add_argument("--limit", type=int, help="train at most N long runs not cached yet, then report (default: all)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the long runs train (default cpu, "
                                                                          "like the table's CPU build)")
    return p


def cache_path(json_path: Path) -> Path:
    return json_path.with_name(json_path.stem + CACHE_SUFFIX)


def run(args: argparse.Namespace) -> int:
    if args.factor < 2:
        raise UsageError(f"--factor must be >= 2 (the long run trains FACTOR x the proxy's epochs), got {args.factor}")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device here")
    table_path, json_path = Path(args.table), Path(args.json)
    table = load_table(table_path)
    selection = select_architectures(table, args.architectures, args.seed)
    recipe, long = table_recipe(table), long_recipe(table, args.factor)
    measure = measure_settings(table)
    cache = RunCache(cache_path(json_path))
    if table.provenance.get("complete") is False:
        print(f"warning: {table_path} is incomplete ({len(table)} of {table.provenance.get('architectures')} "
              f"architectures): its true front is that of the rows built so far")
    if cache.unreadable:
        print(f"warning: {cache.path}: skipped {cache.unreadable} unreadable line(s) (those runs train again)")
    print(f"{len(selection.entries)} architectures ({len(selection.front)} on the true front, "
          f"{len(selection.others)} drawn with seed {args.seed}); {recipe.epochs} proxy epochs -> {long.epochs} "
          f"long epochs on {recipe.dataset}; cache {cache.path}", flush=True)
    started = time.perf_counter()
    trained = run_long(selection.entries, long, measure, cache, workers=args.workers, device=args.device,
                       limit=args.limit)
    wall_s = time.perf_counter() - started
    runs = {e.arch.hash: found for e in selection.entries if (found := cache.get(e.arch.hash, long.hash))}
    rows = fidelity_rows(selection, runs)
    taus, all_rows = selection_taus(rows, long.epochs), rung_taus(table.completed)
    completed = sum(r.long is not None and r.long.completed(long.epochs) for r in rows)
    report = _report(args, table_path, table, selection, rows, recipe, long, measure, taus, all_rows)
    report["long_runs"] = {"completed": completed, "failed": len(runs) - completed,
                           "pending": len(rows) - len(runs), "trained_now": trained, "wall_s": round(wall_s, 1),
                           "cache": str(cache.path), "device_kinds": sorted({r.device_kind for r in runs.values()})}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    print(format_taus(f"Kendall tau-b, {len(rows)} architectures ({completed} long runs completed, "
                      f"{len(rows) - len(runs)} pending):", taus))
    print(format_taus(f"over all {len(table.completed)} completed table rows:", all_rows))
    print(f"trained {trained} long runs in {format_duration(wall_s)}; wrote {json_path}")
    return 0


def _report(args: argparse.Namespace, table_path: Path, table: BenchTable, selection: Selection,
            rows: list[FidelityRow], recipe: ProxyRecipe, long: ProxyRecipe, measure: MeasureSettings, taus: Taus,
            all_rows: Taus) -> dict[str, Any]:
    return {
        "architectures": len(rows), **taus_json(taus),
        "table_kendall_tau": {"rows": len(table.completed), **taus_json(all_rows)},
        "recipe": recipe.to_dict(), "long_recipe": long.to_dict(), "factor": args.factor,
        "measure": measure.to_dict(), "table": table_info(table_path, table),
        "selection": {"seed": args.seed, "front": len(selection.front), "random": len(selection.others),
                      "rule": "the table's true front (thinned evenly along it when larger than the count), "
                              "then completed rows off the front drawn with random.Random(seed)"},
        "compared": "proxy = the table's per-epoch validation accuracy, long = the long run's; proxy_vs_long "
                    "compares final epochs, recorded_vs_long the best epoch of each (what a search records), "
                    "rung1_vs_proxy the first early-stopping rung (epoch 1) with the proxy's final epoch",
        "device": args.device, "workers": args.workers, "threads_per_run": 1, "torch": torch.__version__,
        "code_revision": code_revision(),
        "rows": [r.to_json(long.epochs) for r in rows],
    }


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except (UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: finished long runs are cached in {cache_path(Path(args.json))}; rerun to continue",
              file=sys.stderr)
        return 130
    except BrokenProcessPool as exc:
        print(f"error: a long-run worker died ({exc}); finished runs are cached in {cache_path(Path(args.json))}, "
              f"rerun to continue", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
