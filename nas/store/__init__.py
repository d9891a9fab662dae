"""Results store: SQLAlchemy models and the ``Store`` repository used by the driver, CLI, dashboard and export."""
from .engine import DEFAULT_URL, StoreError, make_engine, normalise_url
from .models import (
    COMPLETED, EPOCH_METRICS, FAILED, FEASIBLE_STATES, INFEASIBLE, RUNNING, SCHEMA_VERSION, STOPPED, TRIAL_STATES,
    EpochMetric, MeasurementProtocol, Search, Trial,
)
from .repository import Store, open_store, trial_to_dict

__all__ = [
    "DEFAULT_URL", "StoreError", "make_engine", "normalise_url", "Store", "open_store", "trial_to_dict",
    "Search", "Trial", "EpochMetric", "MeasurementProtocol", "SCHEMA_VERSION", "TRIAL_STATES",
    "FEASIBLE_STATES", "EPOCH_METRICS", "RUNNING", "COMPLETED", "STOPPED", "INFEASIBLE", "FAILED",
]
