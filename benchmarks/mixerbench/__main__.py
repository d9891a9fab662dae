"""``python -m benchmarks.mixerbench build|export``: build the MixerBench table, or write it from the store."""
from __future__ import annotations

import argparse
import sys

from nas.errors import UsageError
from nas.formatting import fmt, format_duration
from nas.store import StoreError, open_store
from nas.trial.measure_settings import CLOCKS

from benchmarks.mixerbench import DEFAULT_DB, DEFAULT_SEARCH, DEFAULT_TABLE
from benchmarks.mixerbench.build import BuildRequest, build
from benchmarks.mixerbench.table import build_table, rows_summary, write_table


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.mixerbench",
                                description="MixerBench: every architecture of the mixerbench space, trained and "
                                            "measured once (see benchmarks/mixerbench/__init__.py for the format)")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="evaluate the space through `nas search --strategy grid --no-asha`")
    e = sub.add_parser("export", help="write the table from the build's stored trials")
    for cmd in (b, e):
        cmd.add_argument("--db", default=DEFAULT_DB, help=f"store of the build (default {DEFAULT_DB})")
        cmd.add_argument("--name", default=DEFAULT_SEARCH, help=f"the build's search name (default {DEFAULT_SEARCH})")
        cmd.add_argument("--artifacts", help="weights and build_runs.json (default: beside the SQLite DB)")
    b.add_argument("--limit", type=int, help="train at most N architectures in all (default: the whole space)")
    b.add_argument("--resume", action="store_true", help="continue the build --name after an interruption or a --limit")
    b.add_argument("--dataset", help="proxy task (default: the proxy recipe's default, the demo's task)")
    b.add_argument("--epochs", type=int, help="proxy epochs (default: the recipe's)")
    b.add_argument("--subset", type=int, help="cap on training images (default: the recipe's)")
    b.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs (threads) per trial (default 1)")
    b.add_argument("--max-concurrent", type=int, default=2, help="trials at once (default 2)")
    b.add_argument("--clock", choices=CLOCKS, default="thread",
                   help="timer of the speed measurement (default thread: the measuring thread's CPU time, "
                        "which other jobs on the machine do not inflate; wall: perf_counter)")
    b.add_argument("--quiet", action="store_true", help="no progress lines, only the final summary")
    e.add_argument("--out", default=DEFAULT_TABLE, help=f"table file (default {DEFAULT_TABLE})")
    return p


def export(args: argparse.Namespace) -> int:
    store = open_store(args.db)
    try:
        artifacts = BuildRequest(db=args.db, name=args.name, artifacts=args.artifacts).artifacts_dir
        table = build_table(store, args.name, artifacts)
    finally:
        store.close()
    path = write_table(table, args.out)
    s = rows_summary(table)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB): {s['rows']} rows, {s['completed']} completed, "
          f"of {s['architectures']} architectures{'' if table['complete'] else ' (incomplete)'}")
    print(f"accuracy   min {fmt(s['accuracy_min'], '.4f')}  median {fmt(s['accuracy_median'], '.4f')}  "
          f"max {fmt(s['accuracy_max'], '.4f')}")
    print(f"throughput min {fmt(s['throughput_min'], '.4g')}  max {fmt(s['throughput_max'], '.4g')} img/s")
    print(f"trial      median {fmt(s['trial_s_median'], '.2f')} device-s, total {format_duration(s['trial_s_total'])}; "
          f"build wall time {format_duration(s['build_wall_s'] or 0)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "export":
            return export(args)
        return build(BuildRequest(db=args.db, name=args.name, limit=args.limit, resume=args.resume,
                                  dataset=args.dataset, epochs=args.epochs, subset=args.subset,
                                  cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent,
                                  clock=args.clock, artifacts=args.artifacts, quiet=args.quiet))
    except (UsageError, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
