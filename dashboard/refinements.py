"""The refined accuracy (``nas refine``: a trial retrained at more epochs) beside the proxy accuracy:
two table columns, a second marker on the Pareto chart joined to its trial's point, and Kendall's
tau between the two fidelities in the summary.

A trial refined at several epoch counts shows its refinement at the most epochs; the summary gives
one tau per epoch count.  Only completed refinements count.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from nas.rank_agreement import RankAgreement
from nas.refine import proxy_vs_refined
from nas.store import RefinementRecord, TrialRecord

REFINED_ACCURACY, REFINED_EPOCHS = "refined_accuracy", "refined_epochs"
REFINED_COLOR = "#db2777"
REFINED_LABEL = "refined accuracy (nas refine, more epochs)"
_HOVER = ("<b>Trial %{customdata[0]}</b> retrained at %{customdata[1]} epochs<br>"
          "refined accuracy: %{y:.2f} % (proxy %{customdata[2]:.2f} %)<br>"
          "throughput: %{x:,.0f} img/s<extra>refined</extra>")


def latest_by_trial(records: Sequence[RefinementRecord]) -> dict[int, RefinementRecord]:
    """Each trial's completed refinement at the most epochs."""
    chosen: dict[int, RefinementRecord] = {}
    for r in records:
        if r.completed and (r.trial_id not in chosen or r.epochs > chosen[r.trial_id].epochs):
            chosen[r.trial_id] = r
    return chosen


def with_refinements(df: pd.DataFrame, records: Sequence[RefinementRecord]) -> pd.DataFrame:
    """``df`` (a trial frame) with its refined accuracy (%) and epochs filled in; a new frame, since the
    trial frame is shared between refreshes."""
    latest = latest_by_trial(records)
    if not latest or df.empty:
        return df
    ids = df["id"]
    return df.assign(**{
        REFINED_ACCURACY: ids.map(lambda i: latest[i].accuracy * 100 if i in latest else math.nan).astype(float),
        REFINED_EPOCHS: ids.map(lambda i: latest[i].epochs if i in latest else None).astype("Int64")})


def add_refined_markers(fig: go.Figure, df: pd.DataFrame, subplot: dict) -> None:
    """A marker at each refined trial's refined accuracy, above or below its proxy point at the same
    throughput, joined to it by a thin line; ``customdata[0]`` is the trial id, so a click opens it."""
    if REFINED_ACCURACY not in df:
        return
    rows = df[df[REFINED_ACCURACY].notna() & df["accuracy"].notna() & (df["throughput"] > 0)]
    if rows.empty:
        return
    xs: list[float | None] = []
    ys: list[float | None] = []
    for x, proxy, refined in zip(rows["throughput"], rows["accuracy"], rows[REFINED_ACCURACY]):
        xs += [float(x), float(x), None]
        ys += [float(proxy), float(refined), None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False, legendgroup="refined",
                             line={"color": REFINED_COLOR, "width": 1, "dash": "dot"}, meta={"role": "refined-link"}),
                  **subplot)
    custom = [[int(i), int(e), float(a)] for i, e, a in zip(rows["id"], rows[REFINED_EPOCHS], rows["accuracy"])]
    fig.add_trace(go.Scatter(  # plain lists: a handful of points, read back as they are by the tests
        x=[float(x) for x in rows["throughput"]], y=[float(y) for y in rows[REFINED_ACCURACY]], mode="markers",
        name=REFINED_LABEL, legendgroup="refined", legendrank=720, meta={"role": "refined"},
        marker={"symbol": "triangle-up", "size": 11, "color": REFINED_COLOR,
                "line": {"width": 0.5, "color": "#ffffff"}},
        customdata=custom, hovertemplate=_HOVER), **subplot)


def agreements(records: Sequence[RefinementRecord],
               trials: Sequence[TrialRecord]) -> dict[int, tuple[RankAgreement | None, int]]:
    """Per refined epoch count (most epochs first): Kendall's tau between proxy and refined accuracy (None
    where undefined) and the number of trials it is over."""
    proxy = {t.id: t.accuracy for t in trials}
    pairs: dict[int, list[tuple[float | None, float | None]]] = {}
    for r in records:
        if r.completed and r.trial_id in proxy:
            pairs.setdefault(r.epochs, []).append((proxy[r.trial_id], r.accuracy))
    return {epochs: proxy_vs_refined(pairs[epochs]) for epochs in sorted(pairs, reverse=True)}


def render_fidelity(records: Sequence[RefinementRecord], trials: Sequence[TrialRecord],
                    proxy_epochs: int | None) -> None:
    """One metric per refined epoch count: Kendall's tau of the proxy's ranking against the longer runs."""
    found = agreements(records, trials)
    if not found:
        return
    cols = st.columns(min(len(found), 4) + 1)
    proxy = f"{proxy_epochs}-epoch proxy" if proxy_epochs else "proxy"
    for col, (epochs, (a, pairs)) in zip(cols, list(found.items())[:4]):
        col.metric(f"Kendall tau, proxy vs {epochs} epochs", f"{a.tau:.3f}" if a is not None else "–",
                   help=f"Rank agreement of the {proxy} accuracy with the accuracy after {epochs} epochs over the "
                        f"{pairs} trial(s) `nas refine` retrained (1: same order, 0: unrelated, -1: reversed)"
                        + (f"; p = {a.p_value:.2g}" if a is not None else "; undefined under two trials with "
                           "different accuracies"))
    cols[-1].caption("Refined trials are marked ▲ on the chart, joined to their proxy point, and have a "
                     "refined accuracy in the table (`nas refine --top K --epochs N`).")
