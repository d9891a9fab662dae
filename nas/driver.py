"""Search orchestration: validate a request, start (or attach to) Ray, run Tune, record to the store.

``prepare_search`` checks everything a user can get wrong (space, strategy, dataset, budget,
numbers, store, search name, cluster address) *before* Ray starts or anything is written;
``run_search`` then runs one Tune experiment whose searcher wraps our strategy and whose
callback writes the store.  The store is the source of truth: ``--resume`` rebuilds the
strategy, the budget and the queue from it, never from Tune's own experiment state.

Resume: trials a killed driver left ``running`` are recorded ``failed`` ("interrupted"), keep
the device time charged until their last report, and their architectures are queued again
first, so the resumed search still evaluates them; finished trials are never re-run.

Ray: a local instance by default (loopback only, no dashboard, no usage stats); ``--address
HOST:PORT`` (or ``auto``) attaches to a running cluster from a node of that cluster.  Ray
Client addresses (``ray://``) are refused: under Ray Client, Tune runs its loop, and so our
store-writing callback, on the head node instead of in this process.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from nas.budget import Budget, BudgetTracker, parse_budget
from nas.errors import UsageError
from nas.pareto import pareto_front
from nas.store import FAILED, FEASIBLE_STATES, Store, StoreError, make_engine, normalise_url, open_store
from nas.store.engine import sqlite_path
from nas.store.models import SEARCH_FINISHED, SEARCH_INTERRUPTED
from nas.strategies import create_strategy
from nas.trial.datasets import load_dataset
from nas.trial.recipe import ProxyRecipe
from search_spaces import Architecture, SearchSpace, get_space

INTERRUPTED_ERROR = "interrupted: the search driver stopped before this trial ended (re-queued on resume)"
ADDRESS_TIMEOUT_S = 3.0
ATTACH_TIMEOUT_S = 60.0
OBJECT_STORE_BYTES = 256 * 2**20
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# Measurement protocols: the runner's defaults on CPU; on GPU the longer protocol that
# nas_anchors §6.4 asks for (>= 50 warm-up, >= 100 timed passes, batch 1 and 256).
CPU_MEASURE = {"latency_batch": 1, "throughput_batch": 32, "warmup": 10, "repeats": 30}
GPU_MEASURE = {"latency_batch": 1, "throughput_batch": 256, "warmup": 50, "repeats": 100}

# Environment for the local Ray instance (ecosystem.md §3), set before ``import ray``.
LOCAL_RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # bind every Ray listener to 127.0.0.1
}
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_DISABLE_AUTO_INIT": "1",  # we start Ray ourselves, with the resources we validated
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # the store records results; no result.json/progress.csv
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",  # failures are one store row and one progress line each
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
}


@dataclass
class SearchRequest:
    """What the user asked for; None means "not given" (defaults, or the stored value on resume)."""

    space: str | None = None
    budget: str | None = None
    strategy: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    download: bool = False
    epochs: int | None = None
    proxy_res: int | None = None
    batch_size: int | None = None
    subset: int | None = None
    lr: float | None = None
    seed: int | None = None
    target_res: int | None = None
    max_latency_ms: float | None = None
    min_throughput: float | None = None
    warmup: int | None = None
    repeats: int | None = None
    throughput_batch: int | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    max_concurrent: int | None = None
    address: str | None = None
    db: str = "sqlite:///nas.db"
    name: str | None = None
    resume: str | None = None
    artifacts: str | None = None
    asha: bool | None = None


@dataclass
class PreparedSearch:
    """A validated search, ready to run: settings that define it plus how this run executes."""

    name: str
    resume: bool
    space: SearchSpace
    space_source: str
    strategy: str
    seed: int
    budget: Budget
    recipe: ProxyRecipe
    measure: dict[str, Any]
    asha: bool
    gpus_per_trial: float
    cpus_per_trial: float
    max_concurrent: int | None
    address: str | None
    db_url: str
    artifacts_dir: Path
    data_dir: str | None

    def defining_settings(self) -> dict[str, Any]:
        """The settings a resumed search must keep (they decide what a result means)."""
        return {"space": self.space_source, "strategy": self.strategy, "seed": self.seed,
                "recipe": self.recipe.to_dict(), "measure": dict(self.measure), "asha": self.asha}

    def stored_config(self) -> dict[str, Any]:
        return {**self.defining_settings(), "gpus_per_trial": self.gpus_per_trial,
                "cpus_per_trial": self.cpus_per_trial, "max_concurrent": self.max_concurrent,
                "data_dir": self.data_dir}


@dataclass
class SearchSummary:
    name: str
    status: str
    charged: str
    wall_s: float  # of this run, Ray start-up included
    slots: int  # trials that could run at once
    trial_s: float  # wall time of this run's trials, summed
    trials: list[dict]
    front: list[dict]

    @property
    def utilisation(self) -> float:
        """Share of the slots' time (over the run's wall time) spent inside trials."""
        return self.trial_s / (self.wall_s * self.slots) if self.wall_s > 0 and self.slots else 0.0


# ---------------------------------------------------------------------------------- validation


def prepare_search(request: SearchRequest) -> PreparedSearch:
    """Validate a request completely without starting Ray or writing anything (UsageError/ValueError/StoreError)."""
    db_url = normalise_url(request.db)
    store = _existing_store(db_url)
    try:
        if request.resume is not None:
            prepared = _prepare_resume(request, store, db_url)
        else:
            prepared = _prepare_new(request, store, db_url)
    finally:
        if store is not None:
            store.close()
    load_dataset(prepared.recipe.dataset, prepared.recipe.img_size, seed=prepared.recipe.seed,
                 subset=prepared.recipe.subset, val_fraction=prepared.recipe.val_fraction,
                 data_dir=prepared.data_dir, download=request.download)  # --download fetches it once, here
    _check_writable_dir(prepared.artifacts_dir, "--artifacts")
    if prepared.address is not None:
        check_address(prepared.address)
    return prepared


def _prepare_new(request: SearchRequest, store: Store | None, db_url: str) -> PreparedSearch:
    if request.space is None:
        raise UsageError("--space is required (a name or a .yaml/.json file) unless --resume is given")
    if request.budget is None:
        raise UsageError("--budget is required unless --resume is given (e.g. 64gpu-h, 10cpu-min, 40trials)")
    space = get_space(request.space)
    space.seeds()  # a seed outside the space is a definition error: report it before anything runs
    strategy = request.strategy or "evolution"
    seed = _default(request.seed, 0)
    create_strategy(strategy, space, seed=seed)  # unknown name or missing optional extra: fail now
    budget = parse_budget(request.budget)
    gpus = _gpus_per_trial(request, budget)
    given = {"dataset": request.dataset, "epochs": request.epochs, "subset": request.subset,
             "batch_size": request.batch_size, "lr": request.lr}  # the rest: ProxyRecipe's defaults
    recipe = ProxyRecipe(img_size=_default(request.proxy_res, space.proxy_res), seed=seed,
                         **{k: v for k, v in given.items() if v is not None})
    name = request.name or _generated_name(space.name, strategy)
    if not _NAME_PATTERN.fullmatch(name):
        raise UsageError(f"search name {name!r} must be 1-100 letters, digits, '.', '_' or '-' "
                         f"(starting with a letter or digit)")
    if store is not None and store.get_search(name) is not None:
        raise UsageError(f"a search named {name!r} already exists; continue it with --resume {name} "
                         f"or choose another --name")
    protocol = GPU_MEASURE if gpus > 0 and (request.address or _local_gpu_count()) else CPU_MEASURE
    measure = {
        "target_res": _default(request.target_res, space.target_res),
        "latency_batch": protocol["latency_batch"],
        "throughput_batch": _default(request.throughput_batch, protocol["throughput_batch"]),
        "warmup": _default(request.warmup, protocol["warmup"]),
        "repeats": _default(request.repeats, protocol["repeats"]),
        "max_latency_ms": request.max_latency_ms, "min_throughput": request.min_throughput,
    }
    return _finish_preparation(request, name=name, resume=False, space=space, space_source=request.space,
                               strategy=strategy, seed=seed, budget=budget, recipe=recipe, measure=measure,
                               asha=_default(request.asha, True), gpus=gpus, db_url=db_url)


def _prepare_resume(request: SearchRequest, store: Store | None, db_url: str) -> PreparedSearch:
    name = request.resume
    if request.name is not None and request.name != name:
        raise UsageError(f"--name {request.name!r} and --resume {name!r} disagree; --resume alone names the search")
    search = store.get_search(name) if store is not None else None
    if search is None:
        known = ", ".join(s["name"] for s in store.list_searches()) if store is not None else ""
        raise UsageError(f"no search named {name!r} in {db_url}" + (f" (known: {known})" if known else ""))
    config = search["config"]
    space = get_space(config["space"])
    space.seeds()
    if space.describe() != search["space_description"]:
        raise UsageError(f"search space {config['space']!r} changed since search {name!r} started; "
                         f"resume needs the same space")
    stored_budget = parse_budget(search["budget_text"])
    budget = parse_budget(request.budget) if request.budget is not None else stored_budget
    if budget.kind != stored_budget.kind:
        raise UsageError(f"search {name!r} has a {stored_budget.unit} budget; a resumed budget must use "
                         f"the same unit, got {request.budget!r}")
    recipe = ProxyRecipe.from_dict(config["recipe"])
    requested = {
        "space": request.space, "strategy": request.strategy, "seed": request.seed, "asha": request.asha,
        "recipe": {"dataset": request.dataset, "epochs": request.epochs, "img_size": request.proxy_res,
                   "subset": request.subset, "batch_size": request.batch_size, "lr": request.lr},
        "measure": {"target_res": request.target_res, "max_latency_ms": request.max_latency_ms,
                    "min_throughput": request.min_throughput, "warmup": request.warmup,
                    "repeats": request.repeats, "throughput_batch": request.throughput_batch},
    }
    changed = _changed_settings(requested, config)
    if changed:
        raise UsageError(f"--resume {name} continues with the stored settings; these differ: {', '.join(changed)} "
                         f"(start a new search to change them)")
    gpus = request.gpus_per_trial if request.gpus_per_trial is not None else config["gpus_per_trial"]
    request = dataclasses.replace(
        request, cpus_per_trial=_default(request.cpus_per_trial, config["cpus_per_trial"]),
        max_concurrent=_default(request.max_concurrent, config["max_concurrent"]),
        data_dir=_default(request.data_dir, config["data_dir"]))
    return _finish_preparation(request, name=name, resume=True, space=space, space_source=config["space"],
                               strategy=config["strategy"], seed=config["seed"], budget=budget, recipe=recipe,
                               measure=config["measure"], asha=config["asha"], gpus=float(gpus), db_url=db_url)


def _finish_preparation(request: SearchRequest, *, name: str, resume: bool, space: SearchSpace, space_source: str,
                        strategy: str, seed: int, budget: Budget, recipe: ProxyRecipe, measure: dict[str, Any],
                        asha: bool, gpus: float, db_url: str) -> PreparedSearch:
    cpus = _default(request.cpus_per_trial, 1.0)
    _check_resources(gpus, cpus, request.max_concurrent, budget)
    _check_measure(measure)
    artifacts = Path(request.artifacts) if request.artifacts else default_artifacts_dir(db_url)
    data_dir = str(Path(request.data_dir).expanduser().resolve()) if request.data_dir else None
    return PreparedSearch(
        name=name, resume=resume, space=space, space_source=space_source, strategy=strategy, seed=seed,
        budget=budget, recipe=recipe, measure=measure, asha=asha, gpus_per_trial=gpus, cpus_per_trial=cpus,
        max_concurrent=request.max_concurrent, address=request.address, db_url=db_url,
        artifacts_dir=artifacts.expanduser().resolve(), data_dir=data_dir)


def _changed_settings(requested: dict[str, Any], stored: dict[str, Any], prefix: str = "") -> list[str]:
    """Names of the settings given on the command line whose value differs from the stored one."""
    changed = []
    for key, value in requested.items():
        if isinstance(value, dict):
            changed += _changed_settings(value, stored.get(key) or {}, f"{prefix}{key}.")
        elif value is not None and value != stored.get(key):
            changed.append(f"{prefix}{key} (stored {stored.get(key)!r}, given {value!r})")
    return changed


def _gpus_per_trial(request: SearchRequest, budget: Budget) -> float:
    if request.gpus_per_trial is not None:
        return float(request.gpus_per_trial)
    if budget.kind == "gpu" or (budget.kind == "trials" and request.address is None and _local_gpu_count()):
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


def _check_measure(measure: dict[str, Any]) -> None:
    for key in ("target_res", "latency_batch", "throughput_batch", "repeats"):
        if not isinstance(measure[key], int) or measure[key] < 1:
            raise UsageError(f"measurement setting {key} must be a positive integer, got {measure[key]!r}")
    if not isinstance(measure["warmup"], int) or measure["warmup"] < 0:
        raise UsageError(f"measurement setting warmup must be >= 0, got {measure['warmup']!r}")
    for key, flag in (("max_latency_ms", "--max-latency-ms"), ("min_throughput", "--min-throughput")):
        value = measure[key]
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise UsageError(f"{flag} must be > 0, got {value:g}")


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


def check_address(address: str) -> None:
    """Fail fast (seconds, not Ray's minutes of retries) on an address no cluster answers at."""
    if address.startswith("ray://"):
        raise UsageError(
            f"--address {address}: Ray Client addresses are not supported (Tune would run the store-writing "
            f"loop on the head node); run nas search on a cluster node with --address HOST:PORT or auto, "
            f"e.g. through 'ray job submit'")
    if address == "auto":
        return
    match = re.fullmatch(r"\[?(?P<host>[^\[\]]+?)\]?:(?P<port>\d{1,5})", address)
    if match is None:
        raise UsageError(f"--address {address!r} must be HOST:PORT (the head's GCS port, e.g. 10.0.0.5:6379) or auto")
    try:
        socket.create_connection((match["host"], int(match["port"])), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as exc:
        raise UsageError(f"no Ray cluster reachable at {address}: {exc.strerror or exc}") from None


def default_artifacts_dir(db_url: str) -> Path:
    """Beside a SQLite DB (``nas.db`` -> ``nas_artifacts/``); ``./nas_artifacts`` for server databases."""
    path = sqlite_path(db_url)
    if path is None:
        return Path("nas_artifacts")
    return path.parent / f"{path.stem}_artifacts"


def _generated_name(space: str, strategy: str) -> str:
    return f"{space}-{strategy}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


# ---------------------------------------------------------------------------------- running


def configure_ray_env(address: str | None) -> None:
    """Environment for Ray and Tune; must run before ``import ray`` (Ray reads some at import).

    A local instance, or a head on this machine's loopback, binds to 127.0.0.1 (the driver must
    agree, or it looks for the head on the routable IP and hangs).  Attaching sends Ray's auth
    token (2.59+ heads require one; it is read from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token``); set ``RAY_AUTH_MODE=disabled`` for a head started without it.
    """
    env = dict(RAY_ENV)
    if address is None or _is_loopback(address):
        env.update(LOCAL_RAY_ENV)
    if address is not None:
        env["RAY_AUTH_MODE"] = "token"
    for key, value in env.items():
        os.environ.setdefault(key, value)


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def run_search(prepared: PreparedSearch, out: TextIO | None = sys.stdout) -> SearchSummary:
    """Run (or continue) the search to the end of its budget or space; returns what it found."""
    configure_ray_env(prepared.address)
    import ray

    started = time.monotonic()
    started_ray = _connect_ray(prepared.address)
    try:
        max_concurrent = _fit_to_cluster(prepared)
        store = open_store(prepared.db_url, create=True)
        try:
            return _run_with_store(prepared, store, max_concurrent, out, started)
        finally:
            store.close()
    finally:
        if started_ray:
            ray.shutdown()


def _connect_ray(address: str | None) -> bool:
    """Start a local Ray instance, or attach; returns whether we started it (so we stop it)."""
    import ray

    if ray.is_initialized():  # an embedding program (or the test session) already runs one
        return False
    common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        ray.init(address="local", num_cpus=_local_cpu_count(), num_gpus=_local_gpu_count(),
                 object_store_memory=OBJECT_STORE_BYTES, **common)
        return True
    _attach(address, common)
    return True


def _attach(address: str, init_kwargs: dict[str, Any]) -> None:
    """``ray.init(address)``, reduced to one line on failure and bounded in time.

    Ray's C++ client logs every retry on stderr and, for a head it cannot reach at the address
    it resolves, retries for many minutes without a way to interrupt it; so stderr is held back
    while connecting and a watchdog ends the process after ``ATTACH_TIMEOUT_S``.
    """
    import ray

    held = tempfile.TemporaryFile(mode="w+b")
    saved_stderr = os.dup(2)
    connected = threading.Event()

    def watchdog() -> None:
        if not connected.wait(ATTACH_TIMEOUT_S):
            os.write(saved_stderr, f"error: no answer from the Ray cluster at {address} within "
                                   f"{ATTACH_TIMEOUT_S:.0f} s ({_last_ray_complaint(held)})\n".encode())
            os._exit(2)

    threading.Thread(target=watchdog, daemon=True).start()
    sys.stderr.flush()
    os.dup2(held.fileno(), 2)
    try:
        ray.init(address=address, **init_kwargs)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        raise UsageError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]} "
                         f"({_last_ray_complaint(held)})") from None
    finally:
        connected.set()
        sys.stderr.flush()
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
    held.seek(0)
    sys.stderr.write(held.read().decode(errors="replace"))  # a successful attach hides nothing
    held.close()


def _last_ray_complaint(held: Any) -> str:
    """The last warning Ray's client logged while connecting, e.g. a missing auth token."""
    held.seek(0)
    lines = [line for line in held.read().decode(errors="replace").splitlines() if "] " in line]
    if not lines:
        return "no details from Ray"
    reason = re.sub(r"^\S+\.(cc|h|py):\d+: ", "", lines[-1].split("] ", 1)[1])
    if "InvalidAuthToken" in reason:
        reason += "; put the head's token in RAY_AUTH_TOKEN or ~/.ray/auth_token"
    return reason


def _local_cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _fit_to_cluster(prepared: PreparedSearch) -> int:
    """How many trials fit at once (or the user's cap); UsageError if not even one fits."""
    import ray

    gpus, cpus = prepared.gpus_per_trial, prepared.cpus_per_trial
    fits = 0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        by_cpu = math.floor(resources.get("CPU", 0.0) / cpus + 1e-9)
        by_gpu = math.floor(resources.get("GPU", 0.0) / gpus + 1e-9) if gpus > 0 else by_cpu
        fits += min(by_cpu, by_gpu)
    if fits == 0:
        total = ray.cluster_resources()
        raise UsageError(f"no Ray node can hold one trial ({cpus:g} CPU, {gpus:g} GPU); the cluster has "
                         f"{total.get('CPU', 0):g} CPU and {total.get('GPU', 0):g} GPU")
    return min(fits, prepared.max_concurrent) if prepared.max_concurrent else fits


def _run_with_store(prepared: PreparedSearch, store: Store, max_concurrent: int, out: TextIO | None,
                    started: float) -> SearchSummary:
    from nas.searcher import StrategySearcher
    from nas.tune_callback import SearchRecorder

    search = _open_search(prepared, store)
    tracker = BudgetTracker(prepared.budget)
    strategy = create_strategy(prepared.strategy, prepared.space, seed=prepared.seed)
    queued, exclude = _replay_stored_trials(store, search, tracker, strategy, prepared.space)
    recorder = SearchRecorder(
        store, search, tracker, artifacts_dir=prepared.artifacts_dir, epochs_planned=prepared.recipe.epochs,
        gpus_per_trial=prepared.gpus_per_trial, cpus_per_trial=prepared.cpus_per_trial,
        device_kind=search["device_kind"], out=out)
    searcher = StrategySearcher(strategy, tracker, recorder, _config_maker(prepared), queued=queued, exclude=exclude)
    if out is not None:
        verb = "resuming" if prepared.resume else "starting"
        print(f"{verb} search {prepared.name!r}: space {prepared.space.name}, strategy {prepared.strategy}, "
              f"budget {prepared.budget.text} ({tracker.format()} used), up to {max_concurrent} trial(s) at once "
              f"with {prepared.cpus_per_trial:g} CPU / {prepared.gpus_per_trial:g} GPU each", file=out, flush=True)
    logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)  # "Trials did not complete": ours say why
    tune_dir = prepared.artifacts_dir / prepared.name / "tune"
    shutil.rmtree(tune_dir, ignore_errors=True)  # a killed run's leftovers: the store has what matters
    status = SEARCH_INTERRUPTED
    try:
        if tracker.can_start(0):
            _tuner(prepared, searcher, recorder, max_concurrent, tune_dir).fit()
        if (searcher.finished and recorder.running == 0) or not tracker.can_start(0):
            status = SEARCH_FINISHED
    finally:
        recorder.finish(status)
    shutil.rmtree(tune_dir, ignore_errors=True)  # weights were copied out as trials ended
    trials = store.trials(search=prepared.name)
    return SearchSummary(name=prepared.name, status=status, charged=tracker.format(),
                         wall_s=time.monotonic() - started, slots=max_concurrent, trial_s=recorder.trial_seconds,
                         trials=trials, front=pareto_front(trials))


def _open_search(prepared: PreparedSearch, store: Store) -> dict:
    if not prepared.resume:
        return store.create_search(
            prepared.name, space=prepared.space_source, space_description=prepared.space.describe(),
            config=prepared.stored_config(), budget_kind=prepared.budget.unit, budget_total=prepared.budget.amount,
            budget_text=prepared.budget.text, device_kind=_local_device_kind(prepared))
    search = store.get_search(prepared.name)
    if search is None:
        raise StoreError(f"search {prepared.name!r} disappeared from the store")
    store.update_search(prepared.name, budget_total=prepared.budget.amount, budget_text=prepared.budget.text)
    return store.get_search(prepared.name)


def _local_device_kind(prepared: PreparedSearch) -> str | None:
    """Device kind local trials will report (the reuse key); None on a cluster (learnt from the first trial)."""
    if prepared.address is not None:
        return None
    import torch

    from nas.trial.measure import device_kind

    if prepared.gpus_per_trial > 0 and torch.cuda.is_available():
        return device_kind(torch.device("cuda", 0))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(prepared.cpus_per_trial)))  # trials measure with their CPU count
    try:
        return device_kind(torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)


def _replay_stored_trials(store: Store, search: dict, tracker: BudgetTracker, strategy: Any,
                          space: SearchSpace) -> tuple[list[tuple[str | None, Architecture]], list[Architecture]]:
    """Bring budget and strategy up to date with the stored trials; return (queue, exclusions).

    Trials left ``running`` by a killed driver become failed ("interrupted").  An interrupted
    architecture with no other outcome is queued again, ahead of the seeds not yet evaluated.
    Interrupted trials keep their device time charged; a trials budget does not count them
    (the re-run counts).
    """
    store.mark_running_as_failed(search["id"], INTERRUPTED_ERROR)
    trials = store.trials(search=search["name"])
    outcomes = [t for t in trials if not (t["status"] == FAILED and t["error"] == INTERRUPTED_ERROR)]
    evaluated = {Architecture.from_dict(t["arch"]) for t in outcomes}
    outcome_ids = {t["id"] for t in outcomes}
    for trial in trials:
        if trial["reused_from"] is not None:  # reused rows cost nothing
            continue
        if tracker.budget.kind != "trials":
            tracker.charge(float(trial["device_hours"] or 0.0))
        elif trial["id"] in outcome_ids:
            tracker.charge(1.0)
    for trial in outcomes:
        feasible = trial["status"] in FEASIBLE_STATES and trial["accuracy"] is not None
        strategy.tell(Architecture.from_dict(trial["arch"]), trial["accuracy"] if feasible else None)
    store.update_search(search["name"], charged=tracker.charged)
    requeued: dict[Architecture, str | None] = {}
    for trial in trials:
        arch = Architecture.from_dict(trial["arch"])
        if arch not in evaluated:
            requeued.setdefault(arch, trial["seed_name"])
    queue = list((name, arch) for arch, name in requeued.items())
    queue += [(name, arch) for name, arch in space.seeds() if arch not in evaluated and arch not in requeued]
    return queue, sorted(evaluated, key=lambda a: a.hash)


def _config_maker(prepared: PreparedSearch):
    recipe, measure = prepared.recipe.to_dict(), dict(prepared.measure)
    threads = max(1, int(prepared.cpus_per_trial))

    def make_config(arch: Architecture, seed_name: str | None) -> dict[str, Any]:
        return {"arch": arch.to_dict(), "recipe": recipe, "measure": measure, "cpus": threads,
                "data_dir": prepared.data_dir, "download": False, "seed_name": seed_name}

    return make_config


def trial_dirname(trial: Any) -> str:
    """Short trial directory names (Tune's default embeds the whole config)."""
    return f"trial_{trial.trial_id}"


def _tuner(prepared: PreparedSearch, searcher: Any, recorder: Any, max_concurrent: int, tune_dir: Path):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from nas.trainable import train_candidate
    from nas.tune_callback import StoreCallback

    scheduler = (ASHAScheduler(time_attr="epoch", metric="val_accuracy", mode="max",
                               max_t=prepared.recipe.epochs, grace_period=1, reduction_factor=3)
                 if prepared.asha else FIFOScheduler())
    resources = {"cpu": prepared.cpus_per_trial, "gpu": prepared.gpus_per_trial}
    run_name = f"run-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    return tune.Tuner(
        tune.with_resources(train_candidate, resources),
        param_space={},
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                    max_concurrent_trials=max_concurrent, reuse_actors=True,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=run_name, storage_path=str(tune_dir), verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=[StoreCallback(recorder)]))
