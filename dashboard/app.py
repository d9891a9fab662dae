"""mixer-nas dashboard: ``nas dashboard --db URL`` (or ``NAS_DASHBOARD_DB=URL streamlit run dashboard/app.py``).

The sidebar picks the search; everything below the title is one fragment, which re-runs every
``REFRESH_SECONDS`` while that search is running, so a live search updates without a page reload.
"""
from __future__ import annotations

import streamlit as st

from dashboard import panels
from dashboard.data import (REFRESH_SECONDS, db_url_from_process, fetch_references, fetch_refinements, fetch_searches,
                            fetch_trial_snapshot, trials_frame_of)
from dashboard.refinements import render_fidelity, with_refinements
from dashboard.frames import stage_count
from nas.front import summarise
from nas.references import search_device_kinds
from nas.store import StoreError
from nas.store.engine import display_url

st.set_page_config(page_title="mixer-nas dashboard", page_icon=":material/insights:", layout="wide")
st.title("mixer-nas · accuracy vs throughput")

db_url = db_url_from_process()
st.sidebar.caption(f"Database: `{display_url(db_url)}`")
try:
    searches = fetch_searches(db_url)
except StoreError as exc:
    st.error(f"Cannot open the results database: {exc}")
    st.info("Start the dashboard on a database a search has written: `nas dashboard --db sqlite:///nas.db`.")
    st.stop()
if not searches:
    st.info("This database holds no searches yet. Start one with "
            "`nas search --space hybrid_metaformer_tiny --budget 10cpu-min --db ...`, then reload this page.")
    st.stop()

names = [s.name for s in searches]
requested = st.query_params.get("search")  # ?search=NAME links straight to one search
search_name = st.sidebar.selectbox(
    "Search", names, index=names.index(requested) if requested in names else len(names) - 1, key="search",
    on_change=panels.forget_selection_and_filters)
st.query_params["search"] = search_name
started_running = next(s for s in searches if s.name == search_name).running
if started_running:
    st.sidebar.caption(f"Search is running: the page refreshes every {REFRESH_SECONDS} s.")


@st.fragment(run_every=REFRESH_SECONDS if started_running else None)
def search_view() -> None:
    try:
        search = next((s for s in fetch_searches(db_url) if s.name == search_name), None)
        version, trials = fetch_trial_snapshot(db_url, search_name)
        references = fetch_references(db_url, search_name, tuple(sorted(search_device_kinds(search, trials)))) \
            if search is not None else []
        refined = fetch_refinements(db_url, search_name)
    except StoreError as exc:
        st.warning(f"Cannot read the database right now ({exc}); retrying on the next refresh.")
        return
    if search is None:
        st.warning(f"Search {search_name!r} is no longer in the database.")
        return
    if search.running != started_running:
        st.rerun()  # the search started or stopped: rebuild the page with (or without) live refresh
    st.header(f"Search {search_name}")
    include_stopped = panels.render_front_toggle(trials)
    df = with_refinements(trials_frame_of(db_url, search_name, version, include_stopped, trials), refined)
    panels.render_summary(search, summarise(trials, include_stopped))
    render_fidelity(refined, trials, search.setting("recipe", "epochs"))
    if df.empty:
        st.info("No trials recorded yet." + (" Waiting for the first result…" if started_running else ""))
        return
    drawn = panels.render_chart_sampling(df)
    chart_pick = panels.render_pareto(df, search, trials, include_stopped, references, drawn=drawn)
    detail_slot = st.container()
    st.subheader("Trials")
    table_pick = panels.render_table(df, search_name, stage_count(trials))
    chosen = panels.choose_detail(chart_pick, table_pick, set(df["id"]))
    with detail_slot:
        if chosen is None:
            st.caption("Select a point on the chart or a row in the table to open a trial.")
        else:
            panels.render_detail(db_url, chosen)
    panels.render_progress(df, search, trials, include_stopped, drawn=drawn)


search_view()
