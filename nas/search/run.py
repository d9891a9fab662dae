"""Run (or continue) a prepared search: one Tune experiment whose searcher wraps our strategy and
whose callback writes the store.

The store is the source of truth: ``--resume`` rebuilds the strategy, the budget and the queue
from it, never from Tune's own experiment state.  Trials a killed driver left ``running`` are
recorded ``failed`` ("interrupted"), keep the device time charged until their last report, and
their architectures are queued again first, so the resumed search still evaluates them;
finished trials are never re-run.

One driver per search: the driver takes a lease on the search in the transaction that marks it
running (``nas.search.ownership``), keeps it fresh while it runs and releases it when it ends;
a second driver is refused with the owner's host and pid, unless that owner is gone.  SIGTERM
stops a run like Ctrl+C (``nas.search.signals``); trials in flight when a run stops are
recorded interrupted at once.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from nas.budget import BudgetTracker
from nas.device import device_kind
from nas.objectives import Outcome
from nas.search.device_lock import LOCK_DIR_ENV
from nas.search.ownership import LeaseKeeper, lease_is_stale, this_driver
from nas.search.paths import tune_dir as checked_tune_dir
from nas.search.prepare import PreparedSearch, create_search_strategy
from nas.search.ray_session import configure_ray_env, connect_ray, disconnect_ray, trials_that_fit
from nas.search.recorder import INTERRUPTED_ERROR, SearchRecorder, left_without_outcome
from nas.search.references import measure_references_beside_search
from nas.search.report import SearchSummary
from nas.search.settings import Resources
from nas.search.signals import sigterm_like_sigint
from nas.store import DriverId, SearchRecord, SearchStatus, Store, StoreError, open_store
from nas.strategies import Strategy
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe
from search_spaces import Architecture, SearchSpace

__all__ = ["INTERRUPTED_ERROR", "replay_stored_trials", "run_search", "trial_config_maker", "trial_dirname"]


def run_search(prepared: PreparedSearch, out: TextIO | None = sys.stdout) -> SearchSummary:
    """Run (or continue) the search to the end of its budget or space; returns how it ended."""
    configure_ray_env(prepared.address)
    started = time.monotonic()
    session = connect_ray(prepared.address)
    try:
        with sigterm_like_sigint():
            resources = prepared.resources
            max_concurrent = trials_that_fit(resources.gpus_per_trial, resources.cpus_per_trial,
                                             resources.max_concurrent)
            store = open_store(prepared.db_url, create=True)
            try:
                return _run_with_store(prepared, store, max_concurrent, out, started)
            finally:
                store.close()
    finally:
        disconnect_ray(session)


def _run_with_store(prepared: PreparedSearch, store: Store, max_concurrent: int, out: TextIO | None,
                    started: float) -> SearchSummary:
    from nas.search.searcher import StrategySearcher

    settings, resources = prepared.settings, prepared.resources
    driver = this_driver()
    search = _open_search(prepared, store, driver, out)
    lease = LeaseKeeper(store, search.id, driver)
    tracker = BudgetTracker(prepared.budget)
    try:
        recorder = SearchRecorder(
            store, search, tracker, artifacts_dir=prepared.artifacts_dir, recipe=settings.recipe,
            measure=settings.measure, gpus_per_trial=resources.gpus_per_trial,
            cpus_per_trial=resources.cpus_per_trial, device_kind=search.device_kind, out=out, lease=lease,
            max_consecutive_failures=prepared.max_consecutive_failures)
    except BaseException:
        lease.release(status=SearchStatus.INTERRUPTED)
        raise
    status = SearchStatus.INTERRUPTED
    try:  # from here on, recorder.finish records how the run ended and releases the lease
        tune_dir = checked_tune_dir(prepared.artifacts_dir, prepared.name)
        strategy = create_search_strategy(settings, prepared.space)
        queued, exclude = replay_stored_trials(store, search, tracker, strategy, prepared.space)
        searcher = StrategySearcher(strategy, tracker, recorder, _config_maker(prepared), queued=queued,
                                    exclude=exclude)
        searcher.defer_failures = True  # a trial lost with its worker or node is queued again
        recorder.failure_listener = searcher.resolve_failure
        if out is not None:
            verb = "resuming" if prepared.resume else "starting"
            print(f"{verb} search {prepared.name!r}: space {prepared.space.name}, strategy {settings.strategy} "
                  f"(accuracy and {settings.objective}), early stopping {settings.early_stopping}, budget "
                  f"{prepared.budget.text} ({tracker.format()} used), up to {max_concurrent} trial(s) at once with "
                  f"{resources.cpus_per_trial:g} CPU / {resources.gpus_per_trial:g} GPU each",
                  file=out, flush=True)
        logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)  # "Trials did not complete": ours say why
        shutil.rmtree(tune_dir, ignore_errors=True)  # a killed run's leftovers: the store has what matters
        if tracker.can_start(0):
            if prepared.references:  # the seed papers' models on this device, once per device kind
                measure_references_beside_search(
                    store, search, settings.measure, gpus_per_trial=resources.gpus_per_trial,
                    cpus_per_trial=resources.cpus_per_trial, lock_dir=os.environ.get(LOCK_DIR_ENV) or None, out=out,
                    heartbeat=lease.beat)
            _tuner(prepared, searcher, recorder, max_concurrent, tune_dir).fit()
        done = searcher.finished and recorder.running == 0 and recorder.stop_reason is None
        if done or not tracker.can_start(0):
            status = SearchStatus.FINISHED
    finally:
        recorder.finish(status)
    shutil.rmtree(tune_dir, ignore_errors=True)  # weights were copied out as trials ended
    return SearchSummary(name=prepared.name, status=status, charged=tracker.format(),
                         wall_s=time.monotonic() - started, slots=max_concurrent, trial_s=recorder.trial_seconds,
                         trials=store.trials(search=prepared.name), stop_reason=recorder.stop_reason)


def _open_search(prepared: PreparedSearch, store: Store, driver: DriverId, out: TextIO | None) -> SearchRecord:
    """Create the search, or take a stored one over, owned by ``driver`` (SearchBusyError if it is not free)."""
    if not prepared.resume:
        return store.create_search(
            prepared.name, space=prepared.settings.space, space_description=prepared.space.describe(),
            config=prepared.stored_config(), budget_kind=prepared.budget.unit, budget_total=prepared.budget.amount,
            budget_text=prepared.budget.text, device_kind=_local_device_kind(prepared), driver=driver)
    if store.get_search(prepared.name) is None:
        raise StoreError(f"search {prepared.name!r} disappeared from the store")
    search, replaced = store.claim_search(prepared.name, driver, lease_is_stale,
                                          budget_total=prepared.budget.amount, budget_text=prepared.budget.text)
    if replaced is not None and out is not None:
        print(f"taking search {prepared.name!r} over from a driver that is gone ({replaced.describe()})",
              file=out, flush=True)
    return search


def _local_device_kind(prepared: PreparedSearch) -> str | None:
    """Device kind local trials will report (the reuse key); None on a cluster (learnt from the first trial)."""
    if prepared.address is not None:
        return None
    import torch

    if prepared.resources.gpus_per_trial > 0 and torch.cuda.is_available():
        return device_kind(torch.device("cuda", 0))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(prepared.resources.cpus_per_trial)))  # trials measure with their CPU count
    try:
        return device_kind(torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)


def replay_stored_trials(store: Store, search: SearchRecord, tracker: BudgetTracker, strategy: Strategy,
                         space: SearchSpace) -> tuple[list[tuple[str | None, Architecture]], list[Architecture]]:
    """Bring budget and strategy up to date with the stored trials; return (queue, exclusions).

    Trials left ``running`` by a killed driver become failed ("interrupted").  An interrupted
    architecture with no other outcome, or one lost with its Ray worker or node, is queued again,
    ahead of the seeds not yet evaluated.  Interrupted and lost trials keep their device time
    charged; a trials budget does not count them (the re-run counts).  The strategy is told the
    outcomes in the order they finished, as the driver told them.
    """
    store.mark_running_as_failed(search.id, INTERRUPTED_ERROR)
    trials = store.trials(search=search.name)
    outcomes = [t for t in trials if not left_without_outcome(t)]
    evaluated = {Architecture.from_dict(t.arch) for t in outcomes}
    outcome_ids = {t.id for t in outcomes}
    for trial in trials:
        if trial.reused:  # reused rows cost nothing
            continue
        if tracker.budget.kind != "trials":
            tracker.charge(float(trial.device_hours or 0.0))
        elif trial.id in outcome_ids:
            tracker.charge(1.0)
    for trial in sorted(outcomes, key=lambda t: (t.finished_at or "", t.id)):  # the order the driver told them
        strategy.tell(Architecture.from_dict(trial.arch), Outcome.from_record(trial))
    store.update_search(search.name, charged=tracker.charged)
    requeued: dict[Architecture, str | None] = {}
    for trial in trials:
        arch = Architecture.from_dict(trial.arch)
        if arch not in evaluated:
            requeued.setdefault(arch, trial.seed_name)
    queue = list((name, arch) for arch, name in requeued.items())
    queue += [(name, arch) for name, arch in space.seeds() if arch not in evaluated and arch not in requeued]
    return queue, sorted(evaluated, key=lambda a: a.hash)


def _config_maker(prepared: PreparedSearch):
    return trial_config_maker(prepared.settings.recipe, prepared.settings.measure, prepared.resources)


def trial_config_maker(recipe: ProxyRecipe, measure: MeasureSettings, resources: Resources):
    """``make_config(arch, seed_name)``: the Tune config ``train_candidate`` runs (a search's, or a refine's)."""
    recipe_dict, measure_dict = recipe.to_dict(), measure.to_dict()
    threads = max(1, int(resources.cpus_per_trial))
    data_dir = resources.data_dir
    lock_dir = os.environ.get(LOCK_DIR_ENV) or None  # the same setting on every node

    def make_config(arch: Architecture, seed_name: str | None) -> dict[str, Any]:
        return {"arch": arch.to_dict(), "recipe": recipe_dict, "measure": measure_dict, "cpus": threads,
                "data_dir": data_dir, "download": False, "seed_name": seed_name, "lock_dir": lock_dir}

    return make_config


def trial_dirname(trial: Any) -> str:
    """Short trial directory names (Tune's default embeds the whole config)."""
    return f"trial_{trial.trial_id}"


def _tuner(prepared: PreparedSearch, searcher: Any, recorder: SearchRecorder, max_concurrent: int, tune_dir: Path):
    from ray import tune

    from nas.search.callback import RecorderStopper, StoreCallback
    from nas.search.scheduler import create_scheduler, restore_rungs
    from nas.search.trainable import train_candidate

    settings, resources = prepared.settings, prepared.resources
    scheduler = create_scheduler(settings.early_stopping, settings.recipe.epochs, settings.objective)
    if prepared.resume:  # MO-ASHA's rungs go on from the killed run's trials
        store = recorder.store
        restore_rungs(scheduler, [store.trial(t.id) for t in store.trials(search=prepared.name)
                                  if t.epochs_done and not t.reused])
    run_name = f"run-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    return tune.Tuner(
        tune.with_resources(train_candidate, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}),
        param_space={},
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                    max_concurrent_trials=max_concurrent, reuse_actors=True,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=run_name, storage_path=str(tune_dir), verbose=0, stop=RecorderStopper(recorder),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=[StoreCallback(recorder)]))
