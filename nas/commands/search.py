"""``nas search``: run (or resume) a hardware-aware architecture search on Ray Tune."""
from __future__ import annotations

import argparse
import shlex
import sys

from nas.search.settings import EarlyStopping
from nas.store import DEFAULT_URL
from nas.store.engine import display_url
from nas.trial.measure_settings import CLOCKS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search", help="search architectures: proxy-train and measure candidates on Ray Tune",
        description="Explore architectures that mix token mixers per stage: the space's hand-designed seeds first, "
                    "then the strategy's proposals; each candidate is measured on the device it runs on and trained "
                    "briefly on a proxy task, and everything is recorded in the SQL store. Trials that an earlier "
                    "search already ran with the same recipe on the same device kind are reused, not re-run.")
    what = p.add_argument_group("what to search")
    what.add_argument("--space", help="search space name (hybrid_metaformer, hybrid_metaformer_tiny, mixerbench) "
                                      "or a .yaml/.json file")
    what.add_argument("--budget", help="device time or trial count: 64gpu-h, 90gpu-min, 10cpu-min, 40trials")
    what.add_argument("--strategy", help="multi-objective (accuracy and the --objective speed): mo-evolution "
                                         "(regularised evolution, Pareto-rank tournament), nsga2 or motpe (Optuna's "
                                         "NSGA-II / multi-objective TPE); accuracy only: evolution (default), random, "
                                         "grid (every architecture once), nni-tpe or nni-evolution (no speed limits)")
    what.add_argument("--objective", metavar="{throughput,latency}",
                      help="the speed objective searched beside validation accuracy: throughput (default: maximise "
                           "img/s at --throughput-batch) or latency (minimise batch-1 ms); multi-objective "
                           "strategies and mo-asha rank trials by it. --max-latency-ms / --min-throughput stay hard "
                           "limits either way")
    what.add_argument("--seed", type=int, help="seed of the strategy and of proxy training (default 0)")
    what.add_argument("--early-stopping", choices=[e.value for e in EarlyStopping],
                      help="stop weak trials at 1, 3, 9 ... epochs: mo-asha (default) keeps the top third of each "
                           "rung ranked by accuracy and measured speed (non-dominated sorting), so fast models are "
                           "not stopped for being slightly less accurate; asha ranks by accuracy alone; none trains "
                           "every trial for all epochs")
    what.add_argument("--asha", dest="early_stopping", action="store_const", const=EarlyStopping.ASHA.value,
                      help="same as --early-stopping asha")
    what.add_argument("--no-asha", dest="early_stopping", action="store_const", const=EarlyStopping.NONE.value,
                      help="same as --early-stopping none")

    proxy = p.add_argument_group("proxy task")
    proxy.add_argument("--dataset", help="glyphs[:OPTIONS] (default; generated offline: read the digit mirrored "
                                         "from a marker, e.g. glyphs:grid=3,objects=5,size=8-10,noise=0.1,n=5000; "
                                         "see README), digits (offline), cifar10, cifar100 or folder:PATH "
                                         "(PATH/train/<class>/*, PATH/val/<class>/*)")
    proxy.add_argument("--data-dir", help="where cifar10/cifar100 live (default ~/.cache/mixer-nas/data)")
    proxy.add_argument("--download", action="store_true", help="download the dataset once before the search")
    proxy.add_argument("--epochs", type=int, help="proxy epochs per trial (default 4)")
    proxy.add_argument("--proxy-res", type=int, help="proxy training resolution (default: the space's proxy_res)")
    proxy.add_argument("--batch-size", type=int, help="proxy batch size (default 64)")
    proxy.add_argument("--subset", type=int, help="cap on training images per trial (default: all)")
    proxy.add_argument("--lr", type=float, help="peak AdamW learning rate (default 2e-3)")

    speed = p.add_argument_group("speed measurement and constraints")
    speed.add_argument("--target-res", type=int, help="resolution speed is measured at (default: the space's "
                                                      "target_res)")
    speed.add_argument("--max-latency-ms", type=float, help="batch-1 latency limit; slower candidates are infeasible")
    speed.add_argument("--min-throughput", type=float, help="throughput floor in img/s; slower ones are infeasible")
    speed.add_argument("--throughput-batch", type=int, help="batch size of the throughput measurement "
                                                            "(default 32 on CPU, 256 on GPU)")
    speed.add_argument("--warmup", type=int, help="untimed passes before timing (default 10 on CPU, 50 on GPU)")
    speed.add_argument("--repeats", type=int, help="timed passes, reported as median and IQR "
                                                   "(default 30 on CPU, 100 on GPU)")
    speed.add_argument("--clock", choices=CLOCKS, help="CPU timer of the timed passes: wall (default) or thread "
                                                       "(CPU time of the measuring thread, 1 thread per trial; "
                                                       "not inflated by other jobs on a shared machine)")

    where = p.add_argument_group("resources")
    where.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed (0.5 packs two "
                                                            "trials on a GPU; default 1 for GPU budgets, else 0)")
    where.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default 1)")
    where.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the resources hold)")
    where.add_argument("--address", help="attach to a running Ray cluster, HOST:PORT of its head or auto "
                                         "(default: start a local Ray instance)")

    store = p.add_argument_group("results")
    store.add_argument("--db", default=DEFAULT_URL, help=f"SQLAlchemy URL or SQLite path (default {DEFAULT_URL})")
    store.add_argument("--name", help="name of the new search (default: <space>-<strategy>-<time>)")
    store.add_argument("--resume", metavar="NAME", help="continue search NAME after an interruption, with its "
                                                        "stored settings; --budget may raise its budget")
    store.add_argument("--artifacts", help="directory for trained weights (default: beside the SQLite DB, "
                                           "e.g. nas_artifacts/)")
    store.add_argument("--max-consecutive-failures", type=int, metavar="N",
                       help="stop the search (resumable) after N trials in a row fail with the same error, "
                            "e.g. unreadable images (default 5; 0 never stops)")
    speed.add_argument("--no-references", dest="references", action="store_false",
                       help="do not measure the seed papers' own models (LITv2-S, DilateFormer-T, ...) on the "
                            "search's device first; they are measured once per device kind, and only for "
                            "searches at 224 px (see nas show-reference)")
    store.add_argument("--quiet", action="store_true", help="print only the final summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.search import SearchRequest, format_summary, prepare_search, run_search

    prepared = prepare_search(SearchRequest.from_args(args))
    db_flag = "" if args.db == DEFAULT_URL else f" --db {shlex.quote(display_url(args.db))}"  # never a password
    resume_hint = f"nas search --resume {prepared.name}{db_flag}"
    try:
        summary = run_search(prepared, out=None if args.quiet else sys.stdout)
    except KeyboardInterrupt:  # a second Ctrl+C/SIGTERM, or one outside the Tune run: still recorded
        print(f"search {prepared.name!r} interrupted; continue with: {resume_hint}", file=sys.stderr)
        return 130
    print(format_summary(summary, resume_hint=resume_hint))
    return 0 if summary.status == "finished" else 1
