"""Store queries for the page, cached per database URL with a TTL short enough for a live search.

The dashboard only reads.  SQLite runs in WAL mode, so reads proceed while the search driver writes;
any database error surfaces as ``StoreError`` so the page can show one line instead of a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Mapping, Sequence, TypeVar

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from dashboard import DB_ENV
from nas.references import references_for_search
from nas.store import (
    DEFAULT_URL, ReferenceMeasurement, SearchRecord, Store, StoreError, TrialRecord, normalise_url, open_store,
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


@st.cache_data(ttl=REFRESH_SECONDS, show_spinner=False)
def fetch_trials(url: str, search: str) -> list[TrialRecord]:
    return _read(url, lambda store: store.trials(search=search))


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


def db_url_from_process() -> str:
    """The URL this Streamlit process was started for (``$NAS_DASHBOARD_DB``, or ``streamlit run app.py -- --db URL``)."""
    return resolve_db_url(sys.argv[1:], os.environ)
