"""Run (or continue) a prepared search: one Tune experiment whose searcher wraps our strategy and
whose callback writes the store.

The store is the source of truth: ``--resume`` rebuilds the strategy, the budget and the queue
from it, never from Tune's own experiment state.  Trials a killed driver left ``running`` are
recorded ``failed`` ("interrupted"), keep the device time charged until their last report, and
their architectures are queued again first, so the resumed search still evaluates them;
finished trials are never re-run.
"""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from nas.budget import BudgetTracker
from nas.device import device_kind
from nas.search.prepare import PreparedSearch
from nas.search.ray_session import configure_ray_env, connect_ray, trials_that_fit
from nas.search.recorder import SearchRecorder
from nas.search.report import SearchSummary
from nas.store import SearchRecord, SearchStatus, Store, StoreError, TrialStatus, open_store
from nas.strategies import Strategy, create_strategy
from search_spaces import Architecture, SearchSpace

INTERRUPTED_ERROR = "interrupted: the search driver stopped before this trial ended (re-queued on resume)"


def run_search(prepared: PreparedSearch, out: TextIO | None = sys.stdout) -> SearchSummary:
    """Run (or continue) the search to the end of its budget or space; returns how it ended."""
    configure_ray_env(prepared.address)
    import ray

    started = time.monotonic()
    started_ray = connect_ray(prepared.address)
    try:
        resources = prepared.resources
        max_concurrent = trials_that_fit(resources.gpus_per_trial, resources.cpus_per_trial,
                                         resources.max_concurrent)
        store = open_store(prepared.db_url, create=True)
        try:
            return _run_with_store(prepared, store, max_concurrent, out, started)
        finally:
            store.close()
    finally:
        if started_ray:
            ray.shutdown()


def _run_with_store(prepared: PreparedSearch, store: Store, max_concurrent: int, out: TextIO | None,
                    started: float) -> SearchSummary:
    from nas.search.searcher import StrategySearcher

    settings, resources = prepared.settings, prepared.resources
    search = _open_search(prepared, store)
    tracker = BudgetTracker(prepared.budget)
    strategy = create_strategy(settings.strategy, prepared.space, seed=settings.seed)
    queued, exclude = replay_stored_trials(store, search, tracker, strategy, prepared.space)
    recorder = SearchRecorder(
        store, search, tracker, artifacts_dir=prepared.artifacts_dir, recipe=settings.recipe,
        measure=settings.measure, gpus_per_trial=resources.gpus_per_trial,
        cpus_per_trial=resources.cpus_per_trial, device_kind=search.device_kind, out=out)
    searcher = StrategySearcher(strategy, tracker, recorder, _config_maker(prepared), queued=queued, exclude=exclude)
    if out is not None:
        verb = "resuming" if prepared.resume else "starting"
        print(f"{verb} search {prepared.name!r}: space {prepared.space.name}, strategy {settings.strategy}, "
              f"budget {prepared.budget.text} ({tracker.format()} used), up to {max_concurrent} trial(s) at once "
              f"with {resources.cpus_per_trial:g} CPU / {resources.gpus_per_trial:g} GPU each", file=out, flush=True)
    logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)  # "Trials did not complete": ours say why
    tune_dir = prepared.artifacts_dir / prepared.name / "tune"
    shutil.rmtree(tune_dir, ignore_errors=True)  # a killed run's leftovers: the store has what matters
    status = SearchStatus.INTERRUPTED
    try:
        if tracker.can_start(0):
            _tuner(prepared, searcher, recorder, max_concurrent, tune_dir).fit()
        if (searcher.finished and recorder.running == 0) or not tracker.can_start(0):
            status = SearchStatus.FINISHED
    finally:
        recorder.finish(status)
    shutil.rmtree(tune_dir, ignore_errors=True)  # weights were copied out as trials ended
    return SearchSummary(name=prepared.name, status=status, charged=tracker.format(),
                         wall_s=time.monotonic() - started, slots=max_concurrent, trial_s=recorder.trial_seconds,
                         trials=store.trials(search=prepared.name))


def _open_search(prepared: PreparedSearch, store: Store) -> SearchRecord:
    if not prepared.resume:
        return store.create_search(
            prepared.name, space=prepared.settings.space, space_description=prepared.space.describe(),
            config=prepared.stored_config(), budget_kind=prepared.budget.unit, budget_total=prepared.budget.amount,
            budget_text=prepared.budget.text, device_kind=_local_device_kind(prepared))
    if store.get_search(prepared.name) is None:
        raise StoreError(f"search {prepared.name!r} disappeared from the store")
    store.update_search(prepared.name, budget_total=prepared.budget.amount, budget_text=prepared.budget.text)
    return store.get_search(prepared.name)


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
    architecture with no other outcome is queued again, ahead of the seeds not yet evaluated.
    Interrupted trials keep their device time charged; a trials budget does not count them
    (the re-run counts).
    """
    store.mark_running_as_failed(search.id, INTERRUPTED_ERROR)
    trials = store.trials(search=search.name)
    outcomes = [t for t in trials if not (t.status == TrialStatus.FAILED and t.error == INTERRUPTED_ERROR)]
    evaluated = {Architecture.from_dict(t.arch) for t in outcomes}
    outcome_ids = {t.id for t in outcomes}
    for trial in trials:
        if trial.reused:  # reused rows cost nothing
            continue
        if tracker.budget.kind != "trials":
            tracker.charge(float(trial.device_hours or 0.0))
        elif trial.id in outcome_ids:
            tracker.charge(1.0)
    for trial in outcomes:
        strategy.tell(Architecture.from_dict(trial.arch), trial.accuracy if trial.scored else None)
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
    recipe, measure = prepared.settings.recipe.to_dict(), prepared.settings.measure.to_dict()
    threads = max(1, int(prepared.resources.cpus_per_trial))
    data_dir = prepared.resources.data_dir

    def make_config(arch: Architecture, seed_name: str | None) -> dict[str, Any]:
        return {"arch": arch.to_dict(), "recipe": recipe, "measure": measure, "cpus": threads,
                "data_dir": data_dir, "download": False, "seed_name": seed_name}

    return make_config


def trial_dirname(trial: Any) -> str:
    """Short trial directory names (Tune's default embeds the whole config)."""
    return f"trial_{trial.trial_id}"


def _tuner(prepared: PreparedSearch, searcher: Any, recorder: SearchRecorder, max_concurrent: int, tune_dir: Path):
    from ray import tune

    from nas.search.callback import StoreCallback
    from nas.search.scheduler import create_scheduler
    from nas.search.trainable import train_candidate

    settings, resources = prepared.settings, prepared.resources
    scheduler = create_scheduler(settings.asha, settings.recipe.epochs)
    run_name = f"run-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    return tune.Tuner(
        tune.with_resources(train_candidate, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}),
        param_space={},
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                    max_concurrent_trials=max_concurrent, reuse_actors=True,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=run_name, storage_path=str(tune_dir), verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=[StoreCallback(recorder)]))
