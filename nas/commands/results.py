"""``nas trials``, ``nas pareto``, ``nas show``: read the store (never create or change it).

``--json`` prints one JSON array of trial objects (the store's ``trial_to_dict``), also for
``show`` (an array with one object, plus its per-epoch metrics), so scripts parse one shape.
"""
from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any, Iterable, Iterator

from nas.errors import UsageError
from nas.store import DEFAULT_URL, TRIAL_STATES, Store, open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    trials = subparsers.add_parser("trials", help="list trials", description="List the trials in the store.")
    trials.add_argument("--search", help="only this search (default: all searches)")
    trials.add_argument("--status", choices=TRIAL_STATES, help="only trials with this status")
    _common(trials, run_trials)

    pareto = subparsers.add_parser(
        "pareto", help="list the accuracy/throughput Pareto front",
        description="Trials no other feasible trial beats on both proxy accuracy and measured throughput.")
    pareto.add_argument("--search", help="search name (default: the newest search)")
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
    from nas.pareto import pareto_front

    with _reading(args.db) as store:
        name = args.search if args.search is not None else newest_search(store)
        require_search(store, name)
        front = pareto_front(store.trials(search=name))
    if not args.json:
        print(f"Pareto front of search {name!r} (accuracy vs throughput): {len(front)} trial(s)")
    _print(front, args.json, with_search=False)
    return 0


def run_show(args: argparse.Namespace) -> int:
    with _reading(args.db) as store:
        trial = store.trial(args.trial)
    if trial is None:
        raise UsageError(f"no trial {args.trial} in {args.db}")
    if args.json:
        print(json.dumps([trial], indent=2))
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
        known = ", ".join(s["name"] for s in store.list_searches()) or "none"
        raise UsageError(f"no search named {name!r} (known: {known})")


def newest_search(store: Store) -> str:
    searches = store.list_searches()
    if not searches:
        raise UsageError("the store holds no search yet")
    return searches[-1]["name"]


def _print(rows: list[dict], as_json: bool, with_search: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print(trials_table(rows, with_search=with_search))


def _num(value: Any, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def trials_table(rows: Iterable[dict], with_search: bool = False) -> str:
    """Fixed-width table: id, status, accuracy, speed, size, cost and the architecture's label."""
    from search_spaces import Architecture

    header = ["id"] + (["search"] if with_search else []) + [
        "status", "acc", "img/s", "lat_ms", "params_M", "GMACs", "dev_h", "architecture"]
    table = [header]
    for t in rows:
        label = Architecture.from_dict(t["arch"]).label() if t.get("arch") else "?"
        if t.get("seed_name"):
            label = f"{label} ({t['seed_name']})"
        if t.get("reused_from") is not None:
            label = f"{label} [reuses {t['reused_from']}]"
        table.append([str(t["id"])] + ([t["search"] or "-"] if with_search else []) + [
            t["status"], _num(t["accuracy"], ".3f"), _num(t["throughput"], ".4g"), _num(t["latency_ms"], ".3g"),
            _num(t["params"], ".2f", 1e-6), _num(t["gmacs"], ".3g"), _num(t["device_hours"], ".4f"), label])
    if len(table) == 1:
        return "(no trials)"
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in table)


def describe_trial(t: dict) -> str:
    """Every stored field of one trial, then its learning curve."""
    from search_spaces import Architecture

    lines = [f"trial {t['id']} (#{t['number']} of search {t['search']!r}): {t['status']}",
             f"  architecture  {Architecture.from_dict(t['arch']).label()}"
             + (f" (seed {t['seed_name']})" if t.get("seed_name") else "")]
    fields = [
        ("accuracy", _num(t["accuracy"], ".4f")), ("throughput", f"{_num(t['throughput'], '.4g')} img/s "
                                                                 f"(IQR {_num(t['throughput_iqr'], '.3g')})"),
        ("latency", f"{_num(t['latency_ms'], '.4g')} ms (IQR {_num(t['latency_iqr_ms'], '.3g')})"),
        ("params", f"{_num(t['params'], '.3f', 1e-6)} M"), ("GMACs", _num(t["gmacs"], ".4g")),
        ("uncounted ops", ", ".join(t["uncounted_ops"] or []) or "-"), ("device", t["device_kind"] or "-"),
        ("device-hours", f"{_num(t['device_hours'], '.5f')} ({t['devices_held']:g} device(s) held)"),
        ("epochs done", str(t["epochs_done"])), ("weights", t["weights_path"] or "-"),
        ("reused from", str(t["reused_from"]) if t["reused_from"] is not None else "-"),
        ("error", t["error"] or "-"), ("started", t["started_at"] or "-"), ("finished", t["finished_at"] or "-"),
        ("arch JSON", json.dumps(t["arch"], sort_keys=True)), ("recipe", json.dumps(t["recipe"], sort_keys=True)),
        ("protocol", json.dumps(t["protocol"], sort_keys=True) if t["protocol"] else "-"),
    ]
    lines += [f"  {name:<13} {value}" for name, value in fields]
    epochs = t.get("epochs") or []
    if epochs:
        lines.append("  epoch  train_loss  val_loss  val_acc  lr        img/s")
        for e in epochs:
            lines.append(f"  {e['epoch']:<5}  {_num(e['train_loss'], '.4f'):<10}  {_num(e['val_loss'], '.4f'):<8}  "
                         f"{_num(e['val_accuracy'], '.4f'):<7}  {_num(e['lr'], '.2e'):<8}  "
                         f"{_num(e['images_per_s'], '.4g')}")
    return "\n".join(lines)
