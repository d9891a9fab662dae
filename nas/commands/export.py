"""``nas export``: write a trial (or the best / every Pareto trial) as a timm model directory."""
from __future__ import annotations

import argparse
from pathlib import Path

from nas.commands.results import newest_search, require_search
from nas.errors import UsageError
from nas.front import best_trial, pareto_front
from nas.store import DEFAULT_URL, FEASIBLE_STATES, open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export a trial as a timm model (config.json + model.safetensors + README.md)",
        description="Export a searched architecture with its proxy-trained weights in timm's local-dir/Hub "
                    "layout. Load it with `import nas; timm.create_model('local-dir:DIR', pretrained=True)`.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("trial", nargs="?", type=int, help="trial id (see `nas trials`)")
    which.add_argument("--best", action="store_true", help="the feasible trial with the best proxy accuracy")
    which.add_argument("--pareto", action="store_true", help="every trial on the accuracy/throughput front "
                                                             "(one sub-directory per trial)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--search", help="search name for --best/--pareto (default: the newest search)")
    p.add_argument("--num-classes", type=int, help="replace the proxy classifier with a fresh N-class head")
    p.add_argument("--no-weights", action="store_true", help="export the architecture only")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out (only once the new export is "
                                                        "complete; never a directory holding the results)")
    p.add_argument("--db", default=DEFAULT_URL, help=f"SQLAlchemy URL or SQLite path (default {DEFAULT_URL})")
    p.set_defaults(func=run)

    v = subparsers.add_parser(
        "verify-export", help="load an exported directory through timm and run one forward pass",
        description="Check that DIR loads with timm.create_model('local-dir:DIR', pretrained=True).")
    v.add_argument("dir", help="directory written by `nas export`")
    v.add_argument("--no-weights", action="store_true",
                   help="accept a directory without model.safetensors (an architecture-only export)")
    v.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    import torch

    from nas.export import WEIGHTS_FILE, load_exported

    model = load_exported(args.dir, require_weights=not args.no_weights).eval()
    c, h, w = model.pretrained_cfg["input_size"]
    with torch.inference_mode():
        out = model(torch.zeros(1, c, h, w))
    params = sum(p.numel() for p in model.parameters())
    weights = "with weights" if (Path(args.dir) / WEIGHTS_FILE).is_file() else "architecture only, random weights"
    print(f"ok: {args.dir} loads as hybrid_metaformer ({weights}; {params:,} parameters, input {c}x{h}x{w}, "
          f"output {tuple(out.shape)})")
    return 0


def run(args: argparse.Namespace) -> int:
    from nas.export import check_num_classes, export_trials

    check_num_classes(args.num_classes)
    store = open_store(args.db, create=False)
    try:
        if args.trial is not None:
            targets = [(args.trial, "")]
        else:
            search = args.search or newest_search(store)
            require_search(store, search)
            scored = [t for t in store.trials(search=search, statuses=FEASIBLE_STATES) if t.scored]
            if not scored:
                raise UsageError(f"search {search!r} has no feasible trial with an accuracy yet")
            chosen = [best_trial(scored)] if args.best else pareto_front(scored)
            targets = [(t.id, "" if args.best else f"trial-{t.id}") for t in chosen]
        results = export_trials(store, targets, args.out, num_classes=args.num_classes,
                                with_weights=not args.no_weights, force=args.force)
    finally:
        store.close()
    for result in results:
        kind = "with weights" if result.with_weights else "architecture only"
        print(f"exported trial {result.trial_id} ({kind}, {result.num_classes} classes) to {result.out_dir}")
    if args.trial is None:
        print(f"load with: import nas, timm; timm.create_model('local-dir:{results[0].out_dir}', "
              f"pretrained={not args.no_weights})")
    return 0
