"""Driver-side store writer: Tune's trial events become rows in the SQL store, and budget charges.

Tune calls callbacks in the driver process, so the driver is the store's only writer, on one
machine and on a cluster alike (workers only report metrics and checkpoints).  The work is in
``SearchRecorder``, which knows nothing of Ray and is unit-tested with fake events;
``StoreCallback`` only translates Tune's ``Trial`` objects into recorder calls.

Charging: a trial costs its wall time, from the moment Tune starts its actor to its end, times
the devices it holds (GPUs for a gpu budget, CPUs for a cpu budget; one unit for a trials
budget).  The running cost is written to the store at every result, so a driver killed with
SIGKILL leaves the time its trials used on record for ``--resume``.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from ray import tune

from nas.budget import BudgetTracker, device_hours
from nas.pareto import pareto_front
from nas.store import COMPLETED, EPOCH_METRICS, FAILED, FEASIBLE_STATES, INFEASIBLE, RUNNING, STOPPED, Store
from nas.trial.runner import WEIGHTS_FILE
from search_spaces import Architecture

HEARTBEAT_S = 60.0


def final_status(feasible: bool | None, epochs_done: int, epochs_planned: int) -> str:
    """Store status of a trial that ended without an exception.

    Infeasible: it failed a speed constraint (or never reported a measurement).  Stopped: the
    scheduler (ASHA) ended it before its last epoch.  Completed: it trained every epoch.
    """
    if not feasible:
        return INFEASIBLE
    return COMPLETED if epochs_done >= epochs_planned else STOPPED


def charged_devices(budget_kind: str, gpus_per_trial: float, cpus_per_trial: float) -> float:
    """Devices a trial's wall time is multiplied by: GPUs for gpu budgets, CPUs for cpu budgets.

    A trials budget counts trials; its device-hours (for reports) use GPUs when it has any.
    """
    if budget_kind == "gpu" or (budget_kind == "trials" and gpus_per_trial > 0):
        return float(gpus_per_trial)
    return float(cpus_per_trial)


def describe_error(error: BaseException | str | None) -> str:
    """``Type: first line`` of the original exception (unwrapping Ray's task/actor error wrappers)."""
    if error is None:
        return "unknown error (Ray reported no exception)"
    if isinstance(error, str):  # Tune's error.txt: a traceback whose last "Type: ..." line names it
        lines = [line for line in error.strip().splitlines() if line.strip()]
        typed = [line for line in lines if ": " in line and not line.startswith(" ")]
        return (typed[-1] if typed else lines[-1] if lines else "unknown error").strip()
    while getattr(error, "cause", None) is not None and error.cause is not error:
        error = error.cause
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def same_protocol(protocol: dict | None, measure: dict) -> bool:
    """Whether a stored measurement was taken at this search's resolution and batch sizes."""
    if not protocol:
        return False
    return (protocol.get("img_size") == measure["target_res"]
            and protocol.get("latency_batch") == measure["latency_batch"]
            and protocol.get("throughput_batch") == measure["throughput_batch"])


def constraint_violation(latency_ms: float | None, throughput: float | None, measure: dict) -> str | None:
    """This search's speed limits applied to a (reused) measurement; None when they hold."""
    max_latency, min_throughput = measure.get("max_latency_ms"), measure.get("min_throughput")
    if max_latency is not None and (latency_ms is None or latency_ms > max_latency):
        return f"latency {_fmt(latency_ms, '.3g')} ms > max_latency_ms {max_latency:g}"
    if min_throughput is not None and (throughput is None or throughput < min_throughput):
        return f"throughput {_fmt(throughput, '.4g')} img/s < min_throughput {min_throughput:g}"
    return None


@dataclass(frozen=True)
class Reused:
    """A free trial row copying an earlier result; ``score`` None when it is infeasible here."""

    trial_id: int
    score: float | None


@dataclass(frozen=True)
class Progress:
    """A search's state at one moment, as shown on every progress line."""

    elapsed_s: float
    budget: str
    done: int
    running: int
    infeasible: int
    failed: int
    reused: int
    best_accuracy: float | None
    front_size: int


def summarise(trials: list[dict], elapsed_s: float, budget: str) -> Progress:
    """Counts, best accuracy and Pareto size over a search's stored trials."""
    statuses = [t["status"] for t in trials]
    feasible = [t["accuracy"] for t in trials if t["status"] in FEASIBLE_STATES and t["accuracy"] is not None]
    return Progress(
        elapsed_s=elapsed_s, budget=budget,
        done=sum(s in FEASIBLE_STATES for s in statuses), running=statuses.count(RUNNING),
        infeasible=statuses.count(INFEASIBLE), failed=statuses.count(FAILED),
        reused=sum(t["reused_from"] is not None for t in trials),
        best_accuracy=max(feasible) if feasible else None, front_size=len(pareto_front(trials)))


def format_progress(progress: Progress, event: str) -> str:
    """One line: time, the event, budget used, trial counts, best accuracy, Pareto size."""
    best = f"{progress.best_accuracy:.3f}" if progress.best_accuracy is not None else "-"
    reused = f", {progress.reused} reused" if progress.reused else ""
    return (f"[{format_duration(progress.elapsed_s)}] {event} | budget {progress.budget} | "
            f"trials: {progress.done} done, {progress.running} running, {progress.infeasible} infeasible, "
            f"{progress.failed} failed{reused} | best acc {best} | front {progress.front_size}")


@dataclass
class _Running:
    store_id: int
    started: float
    devices: float
    feasible: bool | None = None
    best_accuracy: float | None = None
    epochs_done: int = 0


class SearchRecorder:
    """Writes one search's trials to the store and charges the budget; shared by searcher and callback."""

    def __init__(self, store: Store, search: dict, tracker: BudgetTracker, *, artifacts_dir: Path,
                 epochs_planned: int, gpus_per_trial: float, cpus_per_trial: float, device_kind: str | None,
                 out: TextIO | None = sys.stdout, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.search = search
        self.tracker = tracker
        self.weights_dir = Path(artifacts_dir) / search["name"]
        self.epochs_planned = epochs_planned
        self.devices = charged_devices(tracker.budget.kind, gpus_per_trial, cpus_per_trial)
        self.device_kind = device_kind
        self.out = out
        self.clock = clock
        self.started_at = clock()
        self._last_line_at = self.started_at
        self._running: dict[str, _Running] = {}
        self.trial_seconds = 0.0  # wall time of this run's trials, summed (for the utilisation report)

    # ---- reuse (called by the searcher before a trial is launched) ----------------------------

    def reuse(self, arch: Architecture, seed_name: str | None) -> Reused | None:
        """Record a free trial copying an earlier result for ``arch``, or None if there is none.

        A result is reusable when it was trained with this recipe and measured on this device
        kind with this protocol (resolution and batch sizes); this search's speed constraints
        are applied to its measurement.
        """
        if self.device_kind is None:  # cluster: unknown until the first trial reports its device
            return None
        measure = self.search["config"]["measure"]
        source = self.store.find_reusable(arch.to_dict(), self.search["config"]["recipe"], self.device_kind,
                                          accept=lambda t: same_protocol(t["protocol"], measure))
        if source is None:
            return None
        trial_id = self.store.record_reuse(self.search["id"], source["id"], seed_name=seed_name)
        violation = constraint_violation(source["latency_ms"], source["throughput"], measure)
        if violation is not None:
            self.store.finish_trial(trial_id, INFEASIBLE, error=f"reused measurement: {violation}")
            self._say(f"trial {trial_id} reused trial {source['id']}: infeasible here ({violation}): {arch.label()}")
            return Reused(trial_id, None)
        self._say(f"trial {trial_id} reused trial {source['id']} ({source['status']}, acc "
                  f"{_fmt(source['accuracy'], '.3f')}): {arch.label()}")
        return Reused(trial_id, source["accuracy"])

    # ---- Tune events ----------------------------------------------------------------------------

    def trial_started(self, tune_id: str, config: dict) -> None:
        store_id = self.store.start_trial(
            self.search["id"], arch=config["arch"], recipe=config["recipe"], tune_trial_id=tune_id,
            seed_name=config.get("seed_name"), devices_held=self.devices)
        self._running[tune_id] = _Running(store_id, self.clock(), self.devices)
        seed = f" (seed {config['seed_name']})" if config.get("seed_name") else ""
        self._say(f"trial {store_id} started{seed}: {Architecture.from_dict(config['arch']).label()}")

    def trial_result(self, tune_id: str, result: dict) -> None:
        trial = self._running.get(tune_id)
        if trial is None:
            return
        hours = device_hours(self.clock() - trial.started, trial.devices)
        if result.get("phase") == "measure":
            self._record_measurement(trial, result, hours)
        elif result.get("phase") == "epoch":
            epoch = int(result["epoch"])
            self.store.record_epoch(trial.store_id, epoch, device_hours=hours,
                                    **{k: result.get(k) for k in EPOCH_METRICS})
            trial.epochs_done = max(trial.epochs_done, epoch)
            accuracy = float(result["val_accuracy"])
            trial.best_accuracy = accuracy if trial.best_accuracy is None else max(trial.best_accuracy, accuracy)
        else:
            self.store.set_device_hours(trial.store_id, hours)

    def trial_completed(self, tune_id: str, checkpoint_dir: str | None) -> str | None:
        """A trial ended without an exception (trained out, stopped by ASHA, or infeasible)."""
        trial = self._running.pop(tune_id, None)
        if trial is None:
            return None
        status = final_status(trial.feasible, trial.epochs_done, self.epochs_planned)
        weights = self._keep_weights(trial.store_id, checkpoint_dir) if status != INFEASIBLE else None
        wall_s = self._charge(trial)
        self.store.finish_trial(trial.store_id, status, device_hours=device_hours(wall_s, trial.devices),
                                accuracy=trial.best_accuracy, weights_path=weights)
        detail = (f"acc {_fmt(trial.best_accuracy, '.3f')} after {trial.epochs_done} epoch(s)"
                  if status != INFEASIBLE else "speed constraint not met")
        self._say(f"trial {trial.store_id} {status} in {wall_s:.0f}s: {detail}")
        return status

    def trial_failed(self, tune_id: str, config: dict, message: str) -> None:
        """A trial raised (or its worker died): recorded failed with its error; its time is charged."""
        if tune_id not in self._running:  # failed before it started: recorded, charged ~nothing
            self.trial_started(tune_id, config)
        trial = self._running.pop(tune_id)
        wall_s = self._charge(trial)
        self.store.finish_trial(trial.store_id, FAILED, device_hours=device_hours(wall_s, trial.devices),
                                accuracy=trial.best_accuracy, error=message)
        self._say(f"trial {trial.store_id} failed in {wall_s:.0f}s: {message}")

    def heartbeat(self) -> None:
        """A progress line when nothing else was printed for a while."""
        if self.clock() - self._last_line_at >= HEARTBEAT_S:
            self._say("running")

    # ---- state --------------------------------------------------------------------------------

    @property
    def running(self) -> int:
        return len(self._running)

    def progress(self) -> Progress:
        return summarise(self.store.trials(search=self.search["name"]), self.clock() - self.started_at,
                         self.tracker.format())

    def finish(self, status: str) -> None:
        self.store.update_search(self.search["name"], status=status, charged=self.tracker.charged)

    # ---- internals ----------------------------------------------------------------------------

    def _record_measurement(self, trial: _Running, result: dict, hours: float) -> None:
        trial.feasible = bool(result.get("feasible"))
        self.store.record_measurement(
            trial.store_id, params=result["params"], gmacs=result["gmacs"],
            uncounted_ops=result.get("uncounted_ops") or (), latency_ms=result.get("latency_ms"),
            latency_iqr_ms=result.get("latency_iqr_ms"), throughput=result.get("throughput"),
            throughput_iqr=result.get("throughput_iqr"), protocol=result.get("protocol"),
            device_kind=result.get("device_kind"), model_args=result.get("model_args"),
            data_config=result.get("data_config"), device_hours=hours)
        if self.device_kind is None and result.get("device_kind"):
            self.device_kind = result["device_kind"]
            self.store.update_search(self.search["name"], device_kind=self.device_kind)
        verdict = "" if trial.feasible else f", infeasible ({result.get('violation')})"
        self._say(f"trial {trial.store_id} measured: {_fmt(result.get('throughput'), '.4g')} img/s, "
                  f"{_fmt(result.get('latency_ms'), '.3g')} ms, {result['params'] / 1e6:.2f}M params, "
                  f"{result['gmacs']:.3g} GMACs{verdict}")

    def _charge(self, trial: _Running) -> float:
        wall_s = max(self.clock() - trial.started, 0.0)
        self.trial_seconds += wall_s
        self.tracker.charge_trial(wall_s, trial.devices)
        self.store.update_search(self.search["name"], charged=self.tracker.charged)
        return wall_s

    def _keep_weights(self, store_id: int, checkpoint_dir: str | None) -> str | None:
        """Copy the last checkpoint's weights to ``ARTIFACTS/<search>/<trial id>.safetensors``."""
        source = Path(checkpoint_dir) / WEIGHTS_FILE if checkpoint_dir else None
        if source is None or not source.is_file():
            return None
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        target = self.weights_dir / f"{store_id}.safetensors"
        shutil.copyfile(source, target)
        return str(target.resolve())

    def _say(self, event: str) -> None:
        self._last_line_at = self.clock()
        if self.out is not None:
            print(format_progress(self.progress(), event), file=self.out, flush=True)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


class StoreCallback(tune.Callback):
    """Feeds Tune's trial events to a ``SearchRecorder`` (in the driver process)."""

    def __init__(self, recorder: SearchRecorder):
        self.recorder = recorder

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config into the experiment dir for its own restore, which this
        # project does not use (``--resume`` rebuilds from the store); the live store stays out.
        return {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.recorder.trial_started(trial.trial_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.recorder.trial_result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        checkpoint = trial.checkpoint
        if checkpoint is None:
            self.recorder.trial_completed(trial.trial_id, None)
            return
        with checkpoint.as_directory() as directory:
            self.recorder.trial_completed(trial.trial_id, directory)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.recorder.trial_failed(trial.trial_id, trial.config, describe_error(_trial_error(trial)))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.recorder.heartbeat()


def _trial_error(trial: Any) -> BaseException | str | None:
    """The exception a trial raised: Tune's pickled copy if it has one, else its error text."""
    from ray import cloudpickle

    for path, load in ((trial.pickled_error_file, lambda f: cloudpickle.load(f)),
                       (trial.error_file, lambda f: f.read().decode(errors="replace"))):
        if path and Path(path).is_file():
            try:
                with open(path, "rb") as f:
                    return load(f)
            except Exception:  # noqa: BLE001 - an unreadable error file still leaves the text fallback
                continue
    return None
