"""Store queries for the page, cached per database URL with a TTL short enough for a live search.

A search's trials are read incrementally and shared, not copied, between the pages of the process
(``dashboard.trial_cache``); the trial table's frame is built once per version of them.

The dashboard only reads.  SQLite runs in WAL mode, so reads proceed while the search driver writes;
any database error surfaces as ``StoreError`` so the page can show one line instead of a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, Mapping, Sequence, TypeVar

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

import pandas as pd

from dashboard import DB_ENV
from dashboard.frames import trials_frame
from dashboard.trial_cache import TrialCache
from nas.references import references_for_search
from nas.store import (
    DEFAULT_URL, ReferenceMeasurement, RefinementRecord, SearchRecord, Store, StoreError, TrialRecord, normalise_url,
    open_store, refinements,
)
from nas.store.engine import display_url, error_line
REFRESH_SECONDS = 2  # live-refresh period of a running search; also the query cache TTL

T = TypeVar("T")


def resolve_db_url(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """``--db`` from the script arguments, else ``$NAS_DASHBOARD_DB`` (how ``nas dashboard`` passes it, out of
    sight of ``ps``), else the CLI default."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    known, _ = parser.parse_known_args(list(argv))
    return normalise_url(known.db or environ.get(DB_ENV) or DEFAULT_URL)


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    """One read-only Store (engine + pool) per URL and process; an open failure is not cached."""
    return open_store(url)


def _read(url: str, query: Callable[[Store], T]) -> T:
    try:
        return query(_store(url))
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read {display_url(url)}: {error_line(exc)}") from None


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def fetch_searches(url: str) -> list[SearchRecord]:
    return _read(url, lambda store: store.list_searches())


@st.cache_resource(show_spinner=False)
def _trial_cache(url: str, search: str) -> TrialCache:
    return TrialCache(search)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def _refresh_token(url: str, search: str) -> float:
    """A value that changes once per ``REFRESH_SECONDS`` (and when the data caches are cleared)."""
    return time.monotonic()


def fetch_trial_snapshot(url: str, search: str) -> tuple[int, list[TrialRecord]]:
    """(version, trials in id order), at most ``REFRESH_SECONDS`` old; the list is shared: do not change it."""
    token = _refresh_token(url, search)
    return _read(url, lambda store: _trial_cache(url, search).read(store, token))


def fetch_trials(url: str, search: str) -> list[TrialRecord]:
    return fetch_trial_snapshot(url, search)[1]


@st.cache_resource(show_spinner=False)
def _frame_rows(url: str, search: str) -> dict:
    return {}


@st.cache_resource(show_spinner=False, max_entries=8)
def trials_frame_of(url: str, search: str, version: int, include_stopped: bool,
                    _trials: list[TrialRecord]) -> pd.DataFrame:
    """``trials_frame`` of one version of a search's trials, rebuilding only the rows of trials that
    changed since an earlier version (shared: do not change it in place)."""
    return trials_frame(_trials, include_stopped, row_cache=_frame_rows(url, search))


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def fetch_trial(url: str, trial_id: int) -> TrialRecord | None:
    """One trial with its learning curve (``epochs``)."""
    return _read(url, lambda store: store.trial(trial_id))


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def fetch_references(url: str, search: str, device_kinds: tuple[str, ...]) -> list[ReferenceMeasurement]:
    """The seed papers' models measured beside this search: on ``device_kinds`` (its trials'), under its protocol."""
    def query(store: Store) -> list[ReferenceMeasurement]:
        record = store.get_search(search)
        return references_for_search(store, record, device_kinds) if record is not None else []
    return _read(url, query)


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def fetch_refinements(url: str, search: str) -> list[RefinementRecord]:
    """The search's trials retrained at more epochs (``nas refine``)."""
    return _read(url, lambda store: refinements(store, search=search))


def db_url_from_process() -> str:
    """The URL this Streamlit process was started for (``$NAS_DASHBOARD_DB``, or ``streamlit run app.py -- --db URL``)."""
    return resolve_db_url(sys.argv[1:], os.environ)
