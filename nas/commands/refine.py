"""``nas refine``: retrain a search's front (and its best other trials) at more epochs and report how
well the proxy accuracy ranks them (Kendall's tau)."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys

from nas.commands.results import newest_search, require_search
from nas.store import DEFAULT_URL, open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "refine", help="retrain the front at more epochs and measure the proxy's fidelity",
        description="Retrain the search's current Pareto front (completed trials) and the --top most accurate other "
                    "completed trials with the search's recipe at --epochs epochs, on Ray Tune like nas search; "
                    "store each run linked to its trial, then print the proxy and refined accuracy of each and "
                    "Kendall's tau between them. Trials already refined at these epochs are not trained again.")
    p.add_argument("--top", type=int, required=True, metavar="K",
                   help="how many of the most accurate other completed trials to refine beside the front (>= 1)")
    p.add_argument("--epochs", type=int, required=True, metavar="N",
                   help="epochs of the refined runs; more than the search's proxy epochs")
    p.add_argument("--search", help="search name (default: the newest search)")
    p.add_argument("--db", default=DEFAULT_URL, help=f"SQLAlchemy URL or SQLite path (default {DEFAULT_URL})")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per refined run (default: as the search ran)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per refined run (default: as the search ran)")
    p.add_argument("--max-concurrent", type=int, help="runs at once (default: as many as the resources hold)")
    p.add_argument("--address", help="attach to a running Ray cluster, HOST:PORT of its head or auto "
                                     "(default: start a local Ray instance)")
    p.add_argument("--artifacts", help="directory for the refined weights (default: beside the SQLite DB); they go "
                                       "to ARTIFACTS/<search>/refined/")
    p.add_argument("--data-dir", help="where the dataset lives (default: as the search ran)")
    p.add_argument("--json", action="store_true", help="print one JSON object (no progress lines)")
    p.add_argument("--quiet", action="store_true", help="print only the table and the tau line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.refine import check_epochs, check_top
    from nas.search.refine import RefineRequest, prepare_refine, run_refine

    check_top(args.top)
    check_epochs(args.epochs)
    with contextlib.closing(open_store(args.db, create=False)) as store:
        name = args.search if args.search is not None else newest_search(store)
        require_search(store, name)
    request = RefineRequest(search=name, top=args.top, epochs=args.epochs, db=args.db,
                            cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                            max_concurrent=args.max_concurrent, address=args.address, artifacts=args.artifacts,
                            data_dir=args.data_dir)
    prepared = prepare_refine(request)
    report = run_refine(prepared, out=None if args.json or args.quiet else sys.stdout)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.format())
    return 0 if report.complete else 1
