"""``nas refine``'s run: a search's front and best other trials retrained at more epochs on Ray Tune.

The same path as ``nas search``: the same Ray session (local instance or ``--address``), the same
trainable (``train_candidate``: device locks, ``run_trial``) with the same config a search trial
gets (``trial_config_maker``), the same store callback.  What differs: the configs are a fixed
list (``FixedConfigs``) instead of a strategy's proposals, there is no early stopping (every
refinement trains all its epochs), no budget, and the callback's recorder writes ``refinements``
rows (``RefineRecorder``) instead of trials.  Every trial still measures its speed before it
trains; a refine asks for the shortest measurement (one pass, batch 1, no limits) and does not
record it, since the trial's own measurement stands.

Completed refinements of the same trials at the same epochs are reused, not trained again.
Everything is validated (``prepare_refine``) before Ray starts or anything is written.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ray.tune.search import Searcher

from nas.device import local_gpu_count
from nas.errors import UsageError
from nas.refine import (Candidate, RefineReport, check_epochs, check_top, refine_report, refined_recipe,
                        select_candidates)
from nas.search.device_lock import lock_dir
from nas.search.paths import inside, search_dir
from nas.search.prepare import default_artifacts_dir
from nas.search.ray_session import (check_address, configure_ray_env, connect_ray, disconnect_ray,
                                    ray_already_running, trials_that_fit)
from nas.search.refine_recorder import REFINES_KEY, RefineRecorder
from nas.search.run import trial_config_maker, trial_dirname
from nas.search.settings import Resources, SearchSettings
from nas.search.signals import sigterm_like_sigint
from nas.store import DEFAULT_URL, RefinementRecord, StoreError, normalise_url, open_store, refinements
from nas.store.engine import display_url, sqlite_path
from nas.store.refinements import REFINEMENTS_SCHEMA
from nas.trial.datasets import load_dataset
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe
from search_spaces import Architecture

__all__ = ["FixedConfigs", "PreparedRefine", "RefineRequest", "prepare_refine", "run_refine"]


@dataclass(frozen=True)
class RefineRequest:
    """``nas refine``'s flags (the search already named: the command picks the newest by default);
    None: as the search ran (resources, data directory)."""

    search: str
    top: int
    epochs: int
    db: str = DEFAULT_URL
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    address: str | None = None
    artifacts: str | None = None
    data_dir: str | None = None


@dataclass(frozen=True)
class PreparedRefine:
    """A validated refine: what to retrain, with which recipe, where, and what the store already has."""

    search: str
    db_url: str
    proxy_epochs: int
    recipe: ProxyRecipe  # the search's recipe with the refined epochs
    measure: MeasureSettings  # the shortest measurement of the search's protocol, no limits
    candidates: tuple[Candidate, ...]
    stored: dict[int, RefinementRecord]  # trial id -> completed refinement at these epochs (reused)
    resources: Resources
    address: str | None
    artifacts_dir: Path

    @property
    def to_train(self) -> list[Candidate]:
        return [c for c in self.candidates if c.trial.id not in self.stored]

    def check_folders(self) -> None:
        """The search's folders lie inside ``--artifacts``, symlinks included (UsageError); a name read
        from the store is checked like one from the command line."""
        search_dir(self.artifacts_dir, self.search)
        self.weights_dir, self.tune_dir  # noqa: B018 - each property checks its own path

    @property
    def weights_dir(self) -> Path:
        return inside(self.artifacts_dir, self.search, "refined", what="refined weights directory")

    @property
    def tune_dir(self) -> Path:
        return inside(self.artifacts_dir, self.search, "refine-tune", what="Tune directory")


def prepare_refine(request: RefineRequest) -> PreparedRefine:
    """Check a request without starting Ray or writing anything (UsageError/StoreError/ValueError)."""
    check_top(request.top)
    check_epochs(request.epochs)
    db_url = normalise_url(request.db)
    _check_writable(db_url)
    store = open_store(db_url, create=False)
    try:
        name = request.search
        search = store.get_search(name)
        if search is None:
            known = ", ".join(s.name for s in store.list_searches()) or "none"
            raise UsageError(f"no search named {name!r} in {display_url(db_url)} (known: {known})")
        settings = SearchSettings.from_config(search.config)
        candidates = select_candidates(store.trials(search=name), request.top)
        if not candidates:
            raise UsageError(f"search {name!r} has no completed trials to refine")
        recipe = refined_recipe(settings.recipe, request.epochs)
        if store.schema_version < REFINEMENTS_SCHEMA:
            raise StoreError(f"database {display_url(db_url)!r} has old schema version {store.schema_version} and "
                             f"could not be upgraded (is it read-only?); refinements cannot be stored in it")
        stored = {r.trial_id: r for r in refinements(store, trial_ids=[c.trial.id for c in candidates])
                  if r.recipe_hash == recipe.hash and r.completed}
    finally:
        store.close()
    resources = _resources(request, search.config)
    measure = dataclasses.replace(settings.measure, warmup=0, repeats=1, throughput_batch=1,
                                  max_latency_ms=None, min_throughput=None)
    artifacts = Path(request.artifacts) if request.artifacts else default_artifacts_dir(db_url)
    prepared = PreparedRefine(search=name, db_url=db_url, proxy_epochs=settings.recipe.epochs, recipe=recipe,
                              measure=measure, candidates=tuple(candidates), stored=stored, resources=resources,
                              address=request.address, artifacts_dir=artifacts.expanduser().resolve())
    prepared.check_folders()
    if prepared.to_train:
        if request.address is not None:
            check_address(request.address)
        else:
            lock_dir()
        load_dataset(recipe.dataset, recipe.img_size, seed=recipe.seed, subset=recipe.subset,
                     val_fraction=recipe.val_fraction, data_dir=resources.data_dir, download=False)
    return prepared


def run_refine(prepared: PreparedRefine, out: TextIO | None = sys.stdout) -> RefineReport:
    """Train the refinements the store does not have yet, then report every candidate with Kendall's tau."""
    to_train = prepared.to_train
    if out is not None:
        fronts = sum(c.on_front for c in prepared.candidates)
        print(f"refining search {prepared.search!r} at {prepared.recipe.epochs} epochs (proxy "
              f"{prepared.proxy_epochs}): {fronts} front trial(s) and {len(prepared.candidates) - fronts} other(s); "
              f"{len(prepared.stored)} already refined, {len(to_train)} to train", file=out, flush=True)
    if to_train:
        _train(prepared, to_train, out)
    store = open_store(prepared.db_url, create=False)
    try:
        rows = refinements(store, trial_ids=[c.trial.id for c in prepared.candidates])
    finally:
        store.close()
    refined = {r.trial_id: r for r in rows if r.recipe_hash == prepared.recipe.hash}
    return refine_report(prepared.search, prepared.proxy_epochs, prepared.recipe.epochs, prepared.candidates,
                         refined, reused=prepared.stored)


class FixedConfigs(Searcher):
    """Tune searcher over a fixed list of configs, each once, in order."""

    def __init__(self, configs: list[dict[str, Any]]):
        super().__init__(metric="val_accuracy", mode="max")
        self.pending = list(configs)

    def __getstate__(self) -> dict[str, Any]:
        return {"_metric": self._metric, "_mode": self._mode, "pending": []}  # Tune's restore is not used

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        return self.pending.pop(0) if self.pending else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        return None


def _train(prepared: PreparedRefine, to_train: list[Candidate], out: TextIO | None) -> None:
    resources = prepared.resources
    make_config = trial_config_maker(prepared.recipe, prepared.measure, resources)
    configs = [{**make_config(Architecture.from_dict(c.trial.arch), c.trial.seed_name), REFINES_KEY: c.trial.id}
               for c in to_train]
    configure_ray_env(prepared.address)
    session = connect_ray(prepared.address)
    tune_dir = prepared.tune_dir
    try:
        with sigterm_like_sigint():
            slots = trials_that_fit(resources.gpus_per_trial, resources.cpus_per_trial, resources.max_concurrent)
            store = open_store(prepared.db_url, create=False)
            devices = resources.gpus_per_trial if resources.gpus_per_trial > 0 else resources.cpus_per_trial
            recorder = RefineRecorder(store, epochs=prepared.recipe.epochs, devices=devices,
                                      weights_dir=prepared.weights_dir, out=out)
            if out is not None:
                print(f"training {len(configs)} refinement(s), up to {slots} at once with "
                      f"{resources.cpus_per_trial:g} CPU / {resources.gpus_per_trial:g} GPU each", file=out, flush=True)
            shutil.rmtree(tune_dir, ignore_errors=True)
            try:
                _tuner(resources, recorder, configs, slots, tune_dir).fit()
            finally:
                recorder.finish()
                store.close()
    finally:
        disconnect_ray(session)
        shutil.rmtree(tune_dir, ignore_errors=True)


def _tuner(resources: Resources, recorder: RefineRecorder, configs: list[dict[str, Any]], slots: int,
           tune_dir: Path):
    from ray import tune

    from nas.search.callback import StoreCallback
    from nas.search.trainable import train_candidate

    return tune.Tuner(
        tune.with_resources(train_candidate, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}),
        param_space={},
        tune_config=tune.TuneConfig(search_alg=FixedConfigs(configs), num_samples=-1, max_concurrent_trials=slots,
                                    reuse_actors=True, trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=f"refine-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}", storage_path=str(tune_dir), verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=[StoreCallback(recorder)]))


def _resources(request: RefineRequest, stored: dict[str, Any]) -> Resources:
    """Devices per trial and data directory: as given, else as the search ran."""
    def kept(value: Any, key: str, default: Any) -> Any:
        if value is not None:
            return value
        return default if stored.get(key) is None else stored[key]

    cpus = float(kept(request.cpus_per_trial, "cpus_per_trial", 1.0))
    gpus = float(kept(request.gpus_per_trial, "gpus_per_trial", 0.0))
    if not math.isfinite(cpus) or cpus <= 0:
        raise UsageError(f"--cpus-per-trial must be > 0, got {cpus:g}")
    if not math.isfinite(gpus) or gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise UsageError(f"--gpus-per-trial must be a fraction in [0, 1] or a whole number, got {gpus:g}")
    if request.max_concurrent is not None and request.max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be >= 1, got {request.max_concurrent}")
    if gpus > 0 and request.address is None and not ray_already_running() and local_gpu_count() == 0:
        raise UsageError(f"the search's trials held {gpus:g} GPU each but this machine has no usable GPU; pass "
                         f"--gpus-per-trial 0 to refine on the CPU, or --address to use a cluster with GPUs")
    data_dir = request.data_dir if request.data_dir is not None else stored.get("data_dir")
    return Resources(gpus_per_trial=gpus, cpus_per_trial=cpus, max_concurrent=request.max_concurrent,
                     data_dir=str(Path(data_dir).expanduser().resolve()) if data_dir else None)


def _check_writable(db_url: str) -> None:
    """A refine writes its results: a SQLite file (and its directory, for the journal) must be writable."""
    path = sqlite_path(db_url)
    if path is None or not path.exists():
        return  # a server database, or a missing file (open_store names it)
    if not os.access(path, os.W_OK) or not os.access(path.parent if str(path.parent) else Path("."), os.W_OK):
        raise StoreError(f"database {str(path)!r} is not writable (SQLite needs the file and its directory)")

