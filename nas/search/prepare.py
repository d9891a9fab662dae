"""Validate a search request completely before Ray starts or anything is written.

Everything a user can get wrong (space, strategy, budget, numbers, store, search name, cluster
address, resources) is checked first; the dataset is loaded (and with ``--download`` fetched)
last, so a request that cannot run never starts a download.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from dataclasses import dataclass
from pathlib import Path

from nas.budget import Budget, parse_budget
from nas.device import local_gpu_count
from nas.errors import UsageError
from nas.search.device_lock import lock_dir
from nas.search.ownership import lease_is_stale
from nas.search.paths import check_search_name, search_dir, tune_dir
from nas.search.ray_session import check_address, ray_already_running
from nas.search.settings import (DEFAULT_EARLY_STOPPING, DEFAULT_SEED, DEFAULT_STRATEGY, EarlyStopping,
                                 Resources, SearchRequest, SearchSettings)
from nas.store import Store, StoreError, make_engine, normalise_url, open_store
from nas.store.leases import busy
from nas.store.engine import display_url, sqlite_path
from nas.objectives import SpeedLimits, parse_objective
from nas.strategies import Strategy, create_strategy
from nas.trial.datasets import load_dataset
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe
from search_spaces import SearchSpace, get_space

# A search stops (interrupted, resumable) after this many trials in a row failed with the same error.
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5


@dataclass(frozen=True)
class PreparedSearch:
    """A validated search, ready to run: the settings that define it plus how this run executes."""

    name: str
    resume: bool
    space: SearchSpace
    settings: SearchSettings
    budget: Budget
    resources: Resources
    address: str | None
    db_url: str
    artifacts_dir: Path
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES  # 0: never stop for failures
    references: bool = True  # measure the missing reference models first (``nas.search.references``)

    def stored_config(self) -> dict:
        return {**self.settings.to_config(), **self.resources.to_config()}


def prepare_search(request: SearchRequest) -> PreparedSearch:
    """Validate a request without starting Ray or writing anything (UsageError/ValueError/StoreError)."""
    db_url = normalise_url(request.db)
    if db_url.split("?")[0].rstrip("/") in ("sqlite:", "sqlite:/", "sqlite://") or ":memory:" in db_url:
        raise UsageError(f"--db {display_url(db_url)!r} is an in-memory database: a search needs a file or a "
                         f"server, e.g. --db sqlite:///nas.db")
    store = _existing_store(db_url)
    try:
        prepared = _prepare_resume(request, store, db_url) if request.resume is not None else \
            _prepare_new(request, store, db_url)
    finally:
        if store is not None:
            store.close()
    _check_writable_dir(prepared.artifacts_dir, "--artifacts")
    search_dir(prepared.artifacts_dir, prepared.name)  # inside --artifacts, even through symlinks
    tune_dir(prepared.artifacts_dir, prepared.name)
    if prepared.address is not None:
        check_address(prepared.address)
    else:
        lock_dir()  # local trials lock devices in this user's lock directory: refuse a foreign one now
    recipe = prepared.settings.recipe
    load_dataset(recipe.dataset, recipe.img_size, seed=recipe.seed, subset=recipe.subset,
                 val_fraction=recipe.val_fraction, data_dir=prepared.resources.data_dir,
                 download=request.download)  # --download fetches it once, here, after every other check
    return prepared


def create_search_strategy(settings: SearchSettings, space: SearchSpace) -> Strategy:
    """The search's strategy over ``space``: its name and seed, the speed objective and the
    measurement's speed limits (ValueError when it cannot take them)."""
    return create_strategy(settings.strategy, space, seed=settings.seed, speed=settings.objective,
                           limits=SpeedLimits.of(settings.measure))


def _prepare_new(request: SearchRequest, store: Store | None, db_url: str) -> PreparedSearch:
    if request.space is None:
        raise UsageError("--space is required (a name or a .yaml/.json file) unless --resume is given")
    if request.budget is None:
        raise UsageError("--budget is required unless --resume is given (e.g. 64gpu-h, 10cpu-min, 40trials)")
    space = get_space(request.space)
    space.seeds()  # a seed outside the space is a definition error: report it before anything runs
    strategy = request.strategy or DEFAULT_STRATEGY
    seed = DEFAULT_SEED if request.seed is None else request.seed
    objective = parse_objective(request.objective)
    budget = parse_budget(request.budget)
    gpus = _gpus_per_trial(request, budget)
    recipe = ProxyRecipe(**{"img_size": space.proxy_res, "seed": seed, **request.recipe_given()})
    on_gpu = gpus > 0 and bool(request.address or local_gpu_count())
    measure = MeasureSettings.defaults_for(on_gpu, **{"target_res": space.target_res, **request.measure_given()})
    if measure.clock == "thread" and (on_gpu or (request.cpus_per_trial or 1) != 1):
        raise UsageError("--clock thread times one CPU thread: it needs CPU trials with --cpus-per-trial 1")
    name = request.name or f"{space.name}-{strategy}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    check_search_name(name)
    if store is not None and store.get_search(name) is not None:
        raise UsageError(f"a search named {name!r} already exists; continue it with --resume {name} "
                         f"or choose another --name")
    early_stopping = EarlyStopping.parse(request.early_stopping or DEFAULT_EARLY_STOPPING)
    settings = SearchSettings(space=request.space, strategy=strategy, seed=seed, recipe=recipe, measure=measure,
                              early_stopping=early_stopping, objective=objective)
    create_search_strategy(settings, space)  # unknown name, missing extra, limits it cannot take: fail now
    return _finish(request, name=name, resume=False, space=space, settings=settings, budget=budget, gpus=gpus,
                   db_url=db_url)


def _prepare_resume(request: SearchRequest, store: Store | None, db_url: str) -> PreparedSearch:
    name = request.resume
    check_search_name(name)
    if request.name is not None and request.name != name:
        raise UsageError(f"--name {request.name!r} and --resume {name!r} disagree; --resume alone names the search")
    search = store.get_search(name) if store is not None else None
    if search is None:
        known = ", ".join(s.name for s in store.list_searches()) if store is not None else ""
        raise UsageError(f"no search named {name!r} in {display_url(db_url)}"
                         + (f" (known: {known})" if known else ""))
    check_search_name(search.name)  # a name read from the store is checked like one from the CLI
    lease = store.search_lease(name)
    if lease is not None and not lease_is_stale(lease):
        raise busy(name, lease)
    settings = SearchSettings.from_config(search.config)
    space = get_space(settings.space)
    space.seeds()
    if space.describe() != search.space_description:
        raise UsageError(f"search space {settings.space!r} changed since search {name!r} started; "
                         f"resume needs the same space")
    stored_budget = parse_budget(search.budget_text)
    budget = parse_budget(request.budget) if request.budget is not None else stored_budget
    if budget.kind != stored_budget.kind:
        raise UsageError(f"search {name!r} has a {stored_budget.unit} budget; a resumed budget must use "
                         f"the same unit, got {request.budget!r}")
    changed = settings.conflicts(request)
    if changed:
        raise UsageError(f"--resume {name} continues with the stored settings; these differ: {', '.join(changed)} "
                         f"(start a new search to change them)")
    create_search_strategy(settings, space)
    stored = search.config

    def kept(value, key):
        return stored.get(key) if value is None else value

    request = dataclasses.replace(
        request, cpus_per_trial=kept(request.cpus_per_trial, "cpus_per_trial"),
        max_concurrent=kept(request.max_concurrent, "max_concurrent"), data_dir=kept(request.data_dir, "data_dir"))
    gpus = float(kept(request.gpus_per_trial, "gpus_per_trial") or 0.0)
    return _finish(request, name=name, resume=True, space=space, settings=settings, budget=budget, gpus=gpus,
                   db_url=db_url)


def _finish(request: SearchRequest, *, name: str, resume: bool, space: SearchSpace, settings: SearchSettings,
            budget: Budget, gpus: float, db_url: str) -> PreparedSearch:
    cpus = 1.0 if request.cpus_per_trial is None else float(request.cpus_per_trial)
    _check_resources(gpus, cpus, request.max_concurrent, budget)
    _check_local_gpus(gpus, budget, request.address)
    artifacts = Path(request.artifacts) if request.artifacts else default_artifacts_dir(db_url)
    data_dir = str(Path(request.data_dir).expanduser().resolve()) if request.data_dir else None
    resources = Resources(gpus_per_trial=gpus, cpus_per_trial=cpus, max_concurrent=request.max_concurrent,
                          data_dir=data_dir)
    failures = DEFAULT_MAX_CONSECUTIVE_FAILURES if request.max_consecutive_failures is None \
        else request.max_consecutive_failures
    if failures < 0:
        raise UsageError(f"--max-consecutive-failures must be >= 0 (0 never stops), got {failures}")
    return PreparedSearch(name=name, resume=resume, space=space, settings=settings, budget=budget,
                          resources=resources, address=request.address, db_url=db_url,
                          artifacts_dir=artifacts.expanduser().resolve(), max_consecutive_failures=failures,
                          references=request.references)


def _gpus_per_trial(request: SearchRequest, budget: Budget) -> float:
    if request.gpus_per_trial is not None:
        return float(request.gpus_per_trial)
    if budget.kind == "gpu" or (budget.kind == "trials" and request.address is None and local_gpu_count()):
        return 1.0
    return 0.0


def _check_resources(gpus: float, cpus: float, max_concurrent: int | None, budget: Budget) -> None:
    if not math.isfinite(gpus) or gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise UsageError(f"--gpus-per-trial must be a fraction in [0, 1] or a whole number, got {gpus:g}")
    if not math.isfinite(cpus) or cpus <= 0:
        raise UsageError(f"--cpus-per-trial must be > 0, got {cpus:g}")
    if max_concurrent is not None and max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be >= 1, got {max_concurrent}")
    if budget.kind == "gpu" and gpus == 0:
        raise UsageError(f"budget {budget.text!r} is in GPU-hours but --gpus-per-trial is 0")


def _check_local_gpus(gpus: float, budget: Budget, address: str | None) -> None:
    """A local search that needs GPUs on a machine without one is refused now, not after a download.

    (An attached cluster's GPUs are counted once Ray is connected; a Ray instance already running
    in this process, e.g. with fake GPUs for scheduling tests, is trusted to have what it says.)
    """
    if address is not None or gpus == 0 or local_gpu_count() > 0 or ray_already_running():
        return
    why = f"budget {budget.text!r} is in GPU-hours" if budget.kind == "gpu" else f"--gpus-per-trial is {gpus:g}"
    raise UsageError(f"{why} but this machine has no usable GPU (CUDA unavailable); use a cpu budget "
                     f"(e.g. 2cpu-h) with --gpus-per-trial 0, or --address to attach to a cluster with GPUs")


def _existing_store(db_url: str) -> Store | None:
    """The store if it exists (checking its schema); None for a SQLite file still to be created."""
    path = sqlite_path(db_url)
    if path is None:
        return open_store(db_url, create=True)
    if not path.exists():
        make_engine(db_url, create=True).dispose()  # checks the directory; creates no file
        return None
    if not os.access(path, os.W_OK) or not os.access(path.parent if str(path.parent) else Path("."), os.W_OK):
        raise StoreError(f"database {str(path)!r} is not writable (SQLite needs the file and its directory)")
    return open_store(db_url, create=False)


def _check_writable_dir(path: Path, flag: str) -> None:
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UsageError(f"{flag} {str(path)!r} cannot be created or written ({str(existing)!r} is not a writable "
                         f"directory)")


def default_artifacts_dir(db_url: str) -> Path:
    """Beside a SQLite DB (``nas.db`` -> ``nas_artifacts/``); ``./nas_artifacts`` for server databases."""
    path = sqlite_path(db_url)
    if path is None:
        return Path("nas_artifacts")
    return path.parent / f"{path.stem}_artifacts"
