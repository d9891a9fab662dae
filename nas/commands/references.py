"""``nas show-reference``: the seed papers' own models as measured beside searches (read-only).

Without ``--search`` it lists every stored reference measurement (each device kind and protocol);
with ``--search NAME`` only those comparable with that search's trials: measured on its device
kinds under its protocol (what its dashboard draws on the throughput axis).  ``--json`` prints one
JSON array of objects (``ReferenceMeasurement.to_json`` plus ``label``).
"""
from __future__ import annotations

import argparse
import contextlib
import json

from backbones.references import DEFAULT_REFERENCES, REFERENCE_RESOLUTION, reference_label
from nas.commands.results import require_search
from nas.formatting import fmt
from nas.references import references_apply, references_for_search, search_measure_settings
from nas.store import DEFAULT_URL, ReferenceMeasurement, open_store, reference_measurements


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "show-reference", help="show the seed papers' models measured beside searches",
        description=f"The seed papers' own models ({', '.join(map(reference_label, DEFAULT_REFERENCES))}), "
                    f"measured once per device kind with the same protocol as the trials of searches at "
                    f"{REFERENCE_RESOLUTION} px.")
    p.add_argument("--search", help="only those comparable with this search's trials (default: all stored)")
    p.add_argument("--db", default=DEFAULT_URL, help=f"SQLAlchemy URL or SQLite path (default {DEFAULT_URL})")
    p.add_argument("--json", action="store_true", help="print one JSON array of reference measurements")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    note = ""
    with contextlib.closing(open_store(args.db, create=False)) as store:
        if args.search is None:
            rows = reference_measurements(store, latest=False)
        else:
            require_search(store, args.search)
            search = store.get_search(args.search)
            rows = references_for_search(store, search)
            measure = search_measure_settings(search)
            if measure is not None and not references_apply(measure):
                note = (f"search {args.search!r} measures speed at {measure.target_res} px; reference models are "
                        f"measured beside searches at {REFERENCE_RESOLUTION} px only")
    if args.json:
        print(json.dumps([{"label": reference_label(r.model), **r.to_json()} for r in rows], indent=2))
        return 0
    if rows and args.search is not None:
        print(f"Reference models beside search {args.search!r} (its device kinds, its protocol): {len(rows)}")
    print(references_table(rows) if rows else note or "(no reference measurements: they are taken at the start of "
                                                       f"a search at {REFERENCE_RESOLUTION} px)")
    return 0


def references_table(rows: list[ReferenceMeasurement]) -> str:
    """Fixed-width table: model, speed, size, cost, device and the protocol it was measured under."""
    header = ["model", "timm name", "img/s", "lat_ms", "params_M", "GMACs", "device", "protocol", "measured"]
    table = [header] + [[
        reference_label(r.model), r.model, fmt(r.throughput, ".4g"), fmt(r.latency_ms, ".3g"),
        fmt(r.params, ".2f", 1e-6), fmt(r.gmacs, ".3g"), r.device_kind, _protocol(r.protocol),
        (r.measured_at or "-")[:19]] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)


def _protocol(protocol: dict) -> str:
    """``224px b1/b32 w10 r30 float32``: resolution, latency/throughput batch, warm-up, repeats, dtype."""
    if not protocol:
        return "?"
    get = protocol.get
    return (f"{get('img_size', '?')}px b{get('latency_batch', '?')}/b{get('throughput_batch', '?')} "
            f"w{get('warmup', '?')} r{get('repeats', '?')} {get('dtype', '?')}")
