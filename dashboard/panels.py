"""The parts of the page, each a function that writes Streamlit elements for one search.

``app.py`` calls them inside one fragment so a running search refreshes them together.
"""
from __future__ import annotations

import json
import shlex
from typing import Any, Sequence

import pandas as pd
import streamlit as st

from nas.formatting import fmt
from nas.front import SearchStats
from backbones.references import reference_label
from nas.store import ReferenceMeasurement, SearchRecord, TrialRecord, TrialStatus
from nas.store.engine import display_url

from . import charts
from .data import fetch_trial
from .frames import (CHART_POINTS, TABLE_ORDERS, TABLE_PAGE_ROWS, arch_view, chart_sample, epochs_planned,
                     filter_trials, front_mixer_counts, hypervolume_frame, page_count, stage_column, table_page,
                     target_resolution)

CHART_KEY, TABLE_KEY, DETAIL_KEY = "pareto", "trial_table", "detail_trial"
TABLE_ORDER_KEY, TABLE_PAGE_KEY, CHART_ALL_KEY = "table_order", "table_page", "chart_all_points"
INCLUDE_STOPPED_KEY = "front_include_stopped"
_STATUS_ORDER = tuple(s.value for s in (TrialStatus.COMPLETED, TrialStatus.STOPPED, TrialStatus.RUNNING,
                                          TrialStatus.INFEASIBLE, TrialStatus.FAILED))
_TABLE_COLUMNS = {  # most telling first: the mixers and the two objectives
    "id": st.column_config.NumberColumn("Trial", format="%d"),
    "status": "Status",
    "mixers": st.column_config.TextColumn("Mixers per stage", width="medium"),
    "accuracy": st.column_config.NumberColumn("Accuracy (%)", format="%.2f"),
    "refined_accuracy": st.column_config.NumberColumn(
        "Refined accuracy (%)", format="%.2f", help="`nas refine`: accuracy when retrained at more epochs"),
    "refined_epochs": st.column_config.NumberColumn("Refined epochs", format="%d"),
    "throughput": st.column_config.NumberColumn("Throughput (img/s)", format="%.0f"),
    "on_front": st.column_config.CheckboxColumn("On front"),
    "seed_name": st.column_config.TextColumn("Seed design", width="small"),
    "latency_ms": st.column_config.NumberColumn("Latency (ms)", format="%.2f"),
    "params_m": st.column_config.NumberColumn("Params (M)", format="%.2f"),
    "gmacs": st.column_config.NumberColumn("GMACs", format="%.3f"),
    "depths": "Depths",
    "dims": "Widths",
    "epochs_done": st.column_config.NumberColumn("Epochs trained", format="%d"),
    "stopped_at_epoch": st.column_config.NumberColumn(
        "Stopped at epoch", format="%d", help="Early-stopped trials: the epoch their accuracy comes from"),
    "device_hours": st.column_config.NumberColumn("Device-h", format="%.3f"),
    "reused_from": st.column_config.NumberColumn("Reused from", format="%d"),
    "number": st.column_config.NumberColumn("#", format="%d"),
}


def hours_unit(search: SearchRecord) -> str:
    """Unit of device-hours for this search: the budget's own unit, or generic device-hours."""
    return search.budget_kind if search.budget_kind in ("gpu-h", "cpu-h") else "device-h"


def budget_metric(search: SearchRecord) -> tuple[str, str]:
    """(label with the unit, "charged / total") for the budget metric."""
    kind, charged, total = search.budget_kind, search.charged or 0.0, search.budget_total or 0
    if kind == "trials":
        return "Budget charged (trials)", f"{charged:g} / {total:g}"
    return f"Budget charged ({kind})", f"{charged:.2g} / {total:.3g}"


def axis_titles(search: SearchRecord, trials: list[TrialRecord]) -> tuple[str, str]:
    resolution = target_resolution(trials)
    at = f" at {resolution}×{resolution}" if resolution else ""
    dataset = search.setting("recipe", "dataset")
    on = f" on {dataset}" if dataset else ""
    return f"Measured throughput{at} (img/s, log scale)", f"Proxy accuracy{on} (%)"


def render_front_toggle(trials: list[TrialRecord]) -> bool:
    """The toggle that lets early-stopped trials onto the front; returns its state."""
    stopped = sum(t.status == TrialStatus.STOPPED for t in trials)
    return st.toggle(
        f"Include early-stopped trials in the front ({stopped} in this search)", key=INCLUDE_STOPPED_KEY,
        help="Off (default): the front, its hypervolume and the mixers on it come from trials that trained every "
             "epoch, so all accuracies are at the same fidelity. On: early-stopped trials count too, at the "
             "accuracy of the epochs they ran (a lower fidelity).")


def render_summary(search: SearchRecord, summary: SearchStats) -> None:
    cols = st.columns(5)
    cols[0].metric(*budget_metric(search))
    cols[1].metric("Trials", summary.trials)
    cols[2].metric("Best accuracy",
                   f"{summary.best_accuracy * 100:.2f} %" if summary.best_accuracy is not None else "–",
                   help=f"trial {summary.best_trial}" if summary.best_trial is not None else None)
    cols[3].metric("Pareto front", f"{summary.front_size} trial{'' if summary.front_size == 1 else 's'}")
    cols[4].metric("Hypervolume", f"{summary.hypervolume:.3f}",
                   help="Area the front dominates in (log₁₀ img/s × accuracy) above (1 img/s, 0 %); "
                        "higher is better.")
    statuses = " · ".join(f"{summary.by_status[s]} {s}" for s in _STATUS_ORDER if summary.by_status.get(s))
    facts = [f"space **{search.space}**", f"device **{search.device_kind or 'unknown'}**",
             f"strategy **{search.setting('strategy') or '?'}**", f"search **{search.status}**"]
    st.caption(" · ".join(facts) + (f"  \nTrials by status: {statuses}" if statuses else ""))


def render_chart_sampling(df: pd.DataFrame) -> pd.DataFrame:
    """The trials the charts draw: all of them, or for a big search a sample (``chart_sample``) unless
    the user asks for all."""
    if len(df) <= CHART_POINTS:
        return df
    if st.checkbox(f"Plot all {len(df):,} trials (slower)", key=CHART_ALL_KEY):
        return df
    sample = chart_sample(df, CHART_POINTS)
    st.caption(f"The charts draw {len(sample):,} of the {len(df):,} trials: every trial on the front, every hand "
               f"design and running trial, and a fixed sample of the others; the table lists them all.")
    return sample


def render_pareto(df: pd.DataFrame, search: SearchRecord, trials: list[TrialRecord],
                  include_stopped: bool = False, references: Sequence[ReferenceMeasurement] = (),
                  drawn: pd.DataFrame | None = None) -> int | None:
    """The Pareto chart of ``drawn`` (default: every trial of ``df``) with the seed papers'
    ``references`` as throughput lines; returns the trial id of a selected point, if any."""
    x_title, y_title = axis_titles(search, trials)
    fig = charts.pareto_figure(df if drawn is None else drawn, throughput_title=x_title, accuracy_title=y_title,
                               min_throughput=search.setting("measure", "min_throughput"),
                               revision=search.name, references=references)
    event = st.plotly_chart(fig, key=CHART_KEY, on_select="rerun", selection_mode=("points",), width="stretch",
                            config={"displaylogo": False})
    on_chart, in_strip = charts.plotted(df)
    unplotted = df[~(on_chart | in_strip)]
    notes = [f"No speed measurement ({status}): trial(s) {', '.join(map(str, ids))}"
             for status, ids in unplotted.groupby("status")["id"]]
    front_of = "completed and early-stopped trials" if include_stopped else \
        "trials that trained every epoch (early-stopped ones, diamonds, show the accuracy of the epoch they reached)"
    st.caption("Each point is one trial: throughput measured on the search device at the target resolution, "
               f"accuracy after the proxy training. The dotted staircase joins the non-dominated {front_of}. "
               "Trials without an accuracy (over a limit, failed, or still training) sit in the strip below. "
               "Click a point to open the trial." + "".join(f"  \n{note} (not plotted)." for note in notes)
               + (f"  \n{reference_note(references)}" if references else ""))
    return chart_selection(event)


def reference_note(references: Sequence[ReferenceMeasurement]) -> str:
    """What the vertical reference lines are, and why they are lines, not points."""
    names = ", ".join(reference_label(r.model) for r in sorted(references, key=lambda r: r.throughput))
    return (f"Dash-dot lines: the seed papers' own models ({names}) measured on this device with the trials' "
            "protocol. Their ImageNet accuracy is not comparable with proxy accuracy, so only their throughput is "
            "drawn (`nas show-reference --search NAME` lists them).")


def chart_selection(event: Any) -> int | None:
    """Trial id of the first selected point (``customdata[0]``); works on the dict AppTest returns too."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    for point in points:
        custom = point.get("customdata")
        if custom:
            return int(custom[0])
    return None


def render_filters(df: pd.DataFrame, n_stages: int) -> pd.DataFrame:
    with st.expander("Filter trials", expanded=False):
        cols = st.columns(max(n_stages, 1) + 1)
        statuses = cols[0].multiselect("Status", [s for s in _STATUS_ORDER if s in set(df["status"])],
                                       key="filter_status", placeholder="any")
        stage_mixers = {}
        for stage in range(1, n_stages + 1):
            options = sorted(df[stage_column(stage)].dropna().unique())
            stage_mixers[stage] = cols[stage].multiselect(f"Stage {stage} mixer", options,
                                                          key=f"filter_stage_{stage}", placeholder="any")
        low_col, high_col, acc_col = st.columns([1, 1, 2])
        thr_low = low_col.number_input("Throughput ≥ (img/s)", min_value=0.0, value=None, key="filter_thr_min")
        thr_high = high_col.number_input("Throughput ≤ (img/s)", min_value=0.0, value=None, key="filter_thr_max")
        acc = acc_col.slider("Accuracy (%)", 0.0, 100.0, (0.0, 100.0), step=0.5, key="filter_accuracy",
                             help="Narrowing this hides trials that have no accuracy.")
    return filter_trials(df, statuses=statuses, stage_mixers=stage_mixers,
                         accuracy_range=None if acc == (0.0, 100.0) else acc,
                         throughput_range=None if thr_low is None and thr_high is None else (thr_low, thr_high))


def render_table(df: pd.DataFrame, search_name: str, n_stages: int) -> int | None:
    """Filters, one page of the trial table and the CSV of every filtered trial; returns the trial
    id of a selected row, if any.  Only the page travels to the browser (a big search has
    thousands of trials); the CSV is built when its button is clicked."""
    shown = render_filters(df, n_stages)
    pages = page_count(len(shown))
    order, page = TABLE_ORDERS[0], 1
    if pages > 1:
        order_col, page_col = st.columns([3, 1])
        order = order_col.selectbox("Order", TABLE_ORDERS, key=TABLE_ORDER_KEY, on_change=_first_page)
        page = min(int(page_col.number_input("Page", min_value=1, value=1, step=1, key=TABLE_PAGE_KEY)), pages)
    rows_on_page = table_page(shown, order, page)
    where = (f", {TABLE_PAGE_ROWS} per page: page {page} of {pages}, {order.lower()}" if pages > 1 else "")
    st.caption(f"{len(shown)} of {len(df)} trials shown{where}. Select a row to open the trial.")
    event = st.dataframe(rows_on_page[list(_TABLE_COLUMNS)].fillna({"seed_name": ""}), key=TABLE_KEY,
                         on_select="rerun", selection_mode="single-row", hide_index=True,
                         column_config=_TABLE_COLUMNS, width="stretch")
    st.download_button("Download these trials as CSV", lambda: shown.to_csv(index=False),
                       file_name=f"{search_name}-trials.csv", mime="text/csv", on_click="ignore")
    rows = ((event or {}).get("selection") or {}).get("rows") or []
    return int(rows_on_page.iloc[rows[0]]["id"]) if rows and rows[0] < len(rows_on_page) else None


def _first_page() -> None:
    st.session_state[TABLE_PAGE_KEY] = 1


def choose_detail(chart_pick: int | None, table_pick: int | None, known_ids: set[int]) -> int | None:
    """The trial to open: the most recent new pick from the chart or the table, kept across refreshes.

    A live refresh changes the figure, which clears the chart's selection; the open trial stays
    until another pick or the Close button.
    """
    state = st.session_state
    if chart_pick is not None and chart_pick != state.get("_last_chart_pick"):
        state[DETAIL_KEY] = chart_pick
    elif table_pick is not None and table_pick != state.get("_last_table_pick"):
        state[DETAIL_KEY] = table_pick
    state["_last_chart_pick"], state["_last_table_pick"] = chart_pick, table_pick
    chosen = state.get(DETAIL_KEY)
    return chosen if chosen in known_ids else None


def forget_selection_and_filters() -> None:
    """On a switch of search: picks and filters of the previous search mean nothing in the new one."""
    for key in list(st.session_state):
        if key in (CHART_KEY, TABLE_KEY, DETAIL_KEY, TABLE_ORDER_KEY, TABLE_PAGE_KEY, "_last_chart_pick",
                   "_last_table_pick") or \
                str(key).startswith("filter_"):
            del st.session_state[key]


def _close_detail() -> None:
    st.session_state[DETAIL_KEY] = None


def export_command(trial_id: int, url: str) -> str:
    return (f"nas export {trial_id} --out {shlex.quote(f'exported/trial-{trial_id}')} "
            f"--db {shlex.quote(display_url(url))}")  # a password is never shown on the page


def render_detail(url: str, trial_id: int) -> None:
    trial = fetch_trial(url, trial_id)
    if trial is None:
        st.warning(f"Trial {trial_id} is no longer in the database.")
        return
    arch = arch_view(trial.arch)
    with st.container(border=True):
        head, close = st.columns([6, 1])
        head.subheader(f"Trial {trial.id} · #{trial.number} of {trial.search} · "
                       f"{trial.status}")
        close.button("Close", key="close_detail", on_click=_close_detail)
        notes = []
        if trial.seed_name:
            notes.append(f"Hand design from the seed papers: **{trial.seed_name}**.")
        if trial.reused_from:
            notes.append(f"Result reused from trial {trial.reused_from} (same architecture, recipe and device; "
                         "charged nothing).")
        if trial.status == TrialStatus.STOPPED:
            notes.append(charts.stopped_note(trial.epochs_done or 0, epochs_planned(trial)).capitalize() + ".")
        if notes:
            st.markdown(" ".join(notes))
        if arch.readable:
            st.markdown(charts.stage_diagram_html(arch), unsafe_allow_html=True)
        else:
            st.warning("The architecture stored for this trial could not be read (corrupt JSON in the database).")
        accuracy = trial.accuracy
        cols = st.columns(6)
        params = trial.params
        cols[0].metric("Proxy accuracy (%)", fmt(accuracy * 100 if accuracy is not None else None, ".2f"))
        cols[1].metric("Throughput (img/s)", fmt(trial.throughput, ",.0f"))
        cols[2].metric("Latency (ms)", fmt(trial.latency_ms, ".2f"),
                       help=f"batch 1, median; IQR {fmt(trial.latency_iqr_ms, '.2f', unit=' ms')}")
        cols[3].metric("Params (M)", fmt(params / 1e6 if params else None, ".2f"))
        cols[4].metric("GMACs", fmt(trial.gmacs, ".3f"))
        cols[5].metric("Epochs · device-h",
                       f"{trial.epochs_done or 0} · {fmt(trial.device_hours, '.3f')}")
        if trial.uncounted_ops:
            st.caption("GMACs leave out ops the counter does not know: " + ", ".join(map(str, trial.uncounted_ops)))
        if trial.error:
            st.error(trial.error, icon=":material/error:")
        curve, protocol, raw = st.tabs(["Learning curve", "Measurement protocol", "Architecture"])
        with curve:
            if trial.epochs:
                st.plotly_chart(charts.learning_curve_figure(trial.epochs), width="stretch",
                                key=f"curve_{trial_id}")
            else:
                st.info("No epochs recorded for this trial.")
        with protocol:
            if isinstance(trial.protocol, dict):
                st.caption(f"Measured on {trial.device_kind or 'unknown device'}.")
                st.table(pd.DataFrame({"setting": list(trial.protocol),
                                       "value": [json.dumps(v) if not isinstance(v, str) else v
                                                 for v in trial.protocol.values()]}))
            else:
                st.info("No measurement protocol recorded (the trial was never measured).")
        with raw:
            st.json(trial.arch if trial.arch is not None else {}, expanded=True)
        if trial.feasible:
            st.markdown("Export this model as a timm model directory:")
            st.code(export_command(trial.id, url), language="bash")
        else:
            st.caption(f"No export: a {trial.status} trial has no trained weights.")


def render_progress(df: pd.DataFrame, search: SearchRecord, trials: list[TrialRecord],
                    include_stopped: bool = False, drawn: pd.DataFrame | None = None) -> None:
    _, y_title = axis_titles(search, trials)
    left, right = st.columns(2)
    with left:
        st.subheader("Hypervolume vs device-hours")
        hv = hypervolume_frame(trials, include_stopped)
        if len(hv):
            st.plotly_chart(charts.hypervolume_figure(hv, hours_unit=hours_unit(search)), width="stretch",
                            key="hypervolume")
        else:
            st.info("No finished trials yet.")
    with right:
        st.subheader("Accuracy vs batch-1 latency")
        limit = search.setting("measure", "max_latency_ms")
        st.plotly_chart(charts.latency_figure(df if drawn is None else drawn, max_latency_ms=limit,
                                              accuracy_title=y_title), width="stretch", key="latency")
        infeasible = int((df["status"] == TrialStatus.INFEASIBLE.value).sum())
        st.caption(("The latency limit applies to batch-1 latency, which does not convert exactly into batch "
                    "throughput, so it is drawn here rather than on the Pareto chart. " if limit else
                    "No latency limit was set for this search. ")
                   + (f"{infeasible} infeasible trial(s) were measured over a limit and not trained." if infeasible
                      else ""))
    st.subheader("Mixers on the Pareto front, by stage")
    counts = front_mixer_counts(trials, include_stopped)
    if counts.empty:
        st.info("No feasible trials on the front yet.")
    else:
        st.plotly_chart(charts.front_mixer_figure(counts), width="stretch", key="front_mixers")
