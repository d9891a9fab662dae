"""Results store: SQLAlchemy models, the ``Store`` repository and the typed records it returns."""
from .engine import DEFAULT_URL, StoreError, make_engine, normalise_url
from .leases import DriverId, DriverLease, SearchBusyError
from .models import SCHEMA_VERSION, EpochMetric, MeasurementProtocol, Search, Trial
from .records import (
    EPOCH_METRICS, FEASIBLE_STATES, TRIAL_STATES, EpochRecord, Measurement, SearchRecord, SearchStatus, TrialRecord,
    TrialStatus,
)
from .repository import Store, open_store
from .references import ReferenceMeasurement, record_reference, reference_measurements
from .refinements import (
    RefinementRecord, finish_refinement, record_refinement_epoch, refinements, start_refinement,
)

__all__ = [
    "DEFAULT_URL", "StoreError", "make_engine", "normalise_url", "Store", "open_store",
    "Search", "Trial", "EpochMetric", "MeasurementProtocol", "SCHEMA_VERSION", "TRIAL_STATES",
    "FEASIBLE_STATES", "EPOCH_METRICS", "EpochRecord", "Measurement", "SearchRecord", "SearchStatus",
    "TrialRecord", "TrialStatus", "DriverId", "DriverLease", "SearchBusyError",
    "ReferenceMeasurement", "record_reference", "reference_measurements",
    "RefinementRecord", "finish_refinement", "record_refinement_epoch", "refinements", "start_refinement",
]
