"""``nas trials``, ``nas pareto``, ``nas show``: read the store (never create or change it).

``--json`` prints one JSON array of trial objects (``TrialRecord.to_json``), also for
``show`` (an array with one object, plus its per-epoch metrics), so scripts parse one shape.
"""
from __future__ import annotations

import argparse
import contextlib
import json
from typing import Iterator

from nas.errors import UsageError
from nas.front import pareto_front
from nas.store import DEFAULT_URL, TRIAL_STATES, Store, TrialRecord, open_store
from nas.store.engine import display_url
from nas.tables import describe_trial, trials_table


def register(subparsers: argparse._SubParsersAction) -> None:
    trials = subparsers.add_parser("trials", help="list trials", description="List the trials in the store.")
    trials.add_argument("--search", help="only this search (default: all searches)")
    trials.add_argument("--status", choices=TRIAL_STATES, help="only trials with this status")
    _common(trials, run_trials)

    pareto = subparsers.add_parser(
        "pareto", help="list the accuracy/throughput Pareto front",
        description="Trials no other trial beats on both proxy accuracy and measured throughput, among the trials "
                    "that trained every epoch (completed); early-stopped trials only with --include-stopped.")
    pareto.add_argument("--search", help="search name (default: the newest search)")
    pareto.add_argument("--include-stopped", action="store_true",
                        help="let early-stopped trials on the front too, at the accuracy of the epochs they ran "
                             "(a lower fidelity than the completed trials')")
    _common(pareto, run_pareto)

    show = subparsers.add_parser("show", help="show one trial", description="Show one trial with its epochs.")
    show.add_argument("trial", type=int, help="trial id (see `nas trials`)")
    _common(show, run_show)


def _common(parser: argparse.ArgumentParser, func) -> None:
    parser.add_argument("--db", default=DEFAULT_URL, help=f"SQLAlchemy URL or SQLite path (default {DEFAULT_URL})")
    parser.add_argument("--json", action="store_true", help="print one JSON array of trial objects")
    parser.set_defaults(func=func)


def run_trials(args: argparse.Namespace) -> int:
    with _reading(args.db) as store:
        if args.search is not None:
            require_search(store, args.search)
        rows = store.trials(search=args.search, statuses=[args.status] if args.status else None)
    _print(rows, args.json, with_search=args.search is None)
    return 0


def run_pareto(args: argparse.Namespace) -> int:
    with _reading(args.db) as store:
        name = args.search if args.search is not None else newest_search(store)
        require_search(store, name)
        front = pareto_front(store.trials(search=name), include_stopped=args.include_stopped)
    if not args.json:
        which = "completed and early-stopped trials" if args.include_stopped else "completed trials"
        print(f"Pareto front of search {name!r} (accuracy vs throughput, {which}): {len(front)} trial(s)")
    _print(front, args.json, with_search=False)
    return 0


def run_show(args: argparse.Namespace) -> int:
    with _reading(args.db) as store:
        trial = store.trial(args.trial)
    if trial is None:
        raise UsageError(f"no trial {args.trial} in {display_url(args.db)}")
    if args.json:
        print(json.dumps([trial.to_json()], indent=2))
    else:
        print(describe_trial(trial))
    return 0


@contextlib.contextmanager
def _reading(url: str) -> Iterator[Store]:
    """An existing store; a missing SQLite file is an error, never created."""
    store = open_store(url, create=False)
    try:
        yield store
    finally:
        store.close()


def require_search(store: Store, name: str) -> None:
    if store.get_search(name) is None:
        known = ", ".join(s.name for s in store.list_searches()) or "none"
        raise UsageError(f"no search named {name!r} (known: {known})")


def newest_search(store: Store) -> str:
    searches = store.list_searches()
    if not searches:
        raise UsageError("the store holds no search yet")
    return searches[-1].name


def _print(rows: list[TrialRecord], as_json: bool, with_search: bool) -> None:
    if as_json:
        print(json.dumps([t.to_json() for t in rows], indent=2))
    else:
        print(trials_table(rows, with_search=with_search))
