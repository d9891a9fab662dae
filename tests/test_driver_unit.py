"""Search driver logic without Ray: searcher, store recorder, budget replay and the pure helpers.

Tune is replaced by direct calls with fake trial ids and results; the store is a real SQLite
file, and time comes from a fake clock so charges are exact.
"""
from __future__ import annotations

import io
import pickle
import socket
import time
from pathlib import Path

import pytest
from ray.tune.search import Searcher

from nas.budget import BudgetTracker, parse_budget
from nas.errors import UsageError
from nas.formatting import format_duration
from nas.front import SearchStats
from nas.objectives import Outcome
from nas.search.callback import StoreCallback, describe_error
from nas.search.prepare import default_artifacts_dir
from nas.search.ray_session import check_address
from nas.search.recorder import HEARTBEAT_S, Reused, SearchRecorder, charged_devices, final_status
from nas.search.report import format_progress
from nas.search.run import INTERRUPTED_ERROR, replay_stored_trials
from nas.search.searcher import StrategySearcher
from nas.search.settings import EarlyStopping, SearchRequest, SearchSettings
from nas.store import TrialStatus, open_store
from nas.trial.measure_settings import MeasureSettings
from nas.trial.progress import TrialProgress
from nas.trial.recipe import ProxyRecipe
from search_spaces import Architecture

RECIPE = {"dataset": "digits", "epochs": 2, "img_size": 32}
MEASURE = {"target_res": 32, "latency_batch": 1, "throughput_batch": 32, "max_latency_ms": None,
           "min_throughput": None}
STORED_RECIPE = ProxyRecipe.from_dict(RECIPE).to_dict()  # what trials record
PROTOCOL = {"img_size": 32, "latency_batch": 1, "throughput_batch": 32, "repeats": 30}
CPU_KIND = "cpu:Test CPU x1"


def arch(i: int) -> Architecture:
    """Distinct architectures (the searcher and recorder never build them)."""
    return Architecture(("sepconv", "mhsa"), (1, i + 1), (16, 32))


class FakeStrategy:
    def __init__(self, proposals: list[Architecture]):
        self.proposals = list(proposals)
        self.told: list[tuple[Architecture, Outcome | None]] = []
        self.seen: list[Architecture] = []

    def ask(self) -> Architecture | None:
        return self.proposals.pop(0) if self.proposals else None

    def tell(self, a: Architecture, outcome: Outcome | None) -> None:
        self.told.append((a, outcome))

    def mark_seen(self, a: Architecture) -> None:
        self.seen.append(a)


class FakeReuser:
    def __init__(self, outcomes: dict[Architecture, Outcome | None] | None = None):
        self.outcomes = outcomes or {}
        self.asked: list[tuple[Architecture, str | None]] = []

    def reuse(self, a: Architecture, seed_name: str | None) -> Reused | None:
        self.asked.append((a, seed_name))
        return Reused(len(self.asked), self.outcomes[a]) if a in self.outcomes else None


def make_searcher(strategy, budget="10trials", reuser=None, queued=(), exclude=()):
    tracker = BudgetTracker(parse_budget(budget))
    searcher = StrategySearcher(strategy, tracker, reuser or FakeReuser(),
                                lambda a, seed: {"arch": a.to_dict(), "seed_name": seed},
                                queued=queued, exclude=exclude)
    return searcher, tracker


def measure_result(feasible=True):
    return {"phase": "measure", "epoch": 0, "val_accuracy": 0.0, "feasible": feasible}


def epoch_result(epoch, acc):
    return {"phase": "epoch", "epoch": epoch, "val_accuracy": acc}


# ---------------------------------------------------------------------------------- searcher


def test_seeds_come_first_then_strategy_proposals():
    strategy = FakeStrategy([arch(5), arch(6)])
    searcher, _ = make_searcher(strategy, queued=[("CAFormer-like", arch(0)), ("all-DF", arch(1))])
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    assert [Architecture.from_dict(c["arch"]) for c in configs] == [arch(0), arch(1), arch(5), arch(6)]
    assert [c["seed_name"] for c in configs] == ["CAFormer-like", "all-DF", None, None]
    assert strategy.seen == [arch(0), arch(1)]  # the strategy never proposes a queued seed itself


def test_reused_architecture_is_told_not_launched():
    strategy = FakeStrategy([arch(2), arch(3), arch(4)])
    reuser = FakeReuser({arch(2): Outcome.trained(0.75), arch(3): Outcome.infeasible()})  # arch(3): infeasible here
    searcher, tracker = make_searcher(strategy, reuser=reuser)
    config = searcher.suggest("t0")
    assert Architecture.from_dict(config["arch"]) == arch(4)
    assert strategy.told == [(arch(2), Outcome.trained(0.75)), (arch(3), Outcome.infeasible())]
    assert tracker.charged == 0  # reuse is free
    assert searcher.live == {"t0": arch(4)}


def test_duplicates_and_excluded_architectures_are_skipped():
    strategy = FakeStrategy([arch(1), arch(2), arch(2), arch(3)])
    searcher, _ = make_searcher(strategy, exclude=[arch(1)])
    first, second = searcher.suggest("a"), searcher.suggest("b")
    assert [Architecture.from_dict(c["arch"]) for c in (first, second)] == [arch(2), arch(3)]


def test_trials_budget_counts_in_flight_trials_and_finishes():
    searcher, tracker = make_searcher(FakeStrategy([arch(i) for i in range(10)]), budget="3trials")
    assert all(isinstance(searcher.suggest(t), dict) for t in ("a", "b", "c"))
    assert searcher.suggest("d") is None  # three in flight: wait, do not finish
    searcher.on_trial_complete("a", epoch_result(1, 0.5))
    tracker.charge_trial(10.0, 1)  # the callback charges
    assert searcher.suggest("e") is None  # 1 charged + 2 in flight
    for t in ("b", "c"):
        searcher.on_trial_complete(t, error=True)
        tracker.charge_trial(5.0, 1)
    assert searcher.suggest("f") == Searcher.FINISHED
    assert searcher.suggest("g") == Searcher.FINISHED


def test_device_hour_budget_stops_proposing_once_spent():
    searcher, tracker = make_searcher(FakeStrategy([arch(i) for i in range(10)]), budget="1cpu-min")
    assert isinstance(searcher.suggest("a"), dict)
    searcher.on_trial_complete("a", epoch_result(1, 0.5))
    tracker.charge_trial(60.0, 1)  # exactly the budget
    assert searcher.suggest("b") == Searcher.FINISHED


def test_exhausted_strategy_waits_while_trials_run_then_finishes():
    strategy = FakeStrategy([arch(1)])
    searcher, _ = make_searcher(strategy)
    assert isinstance(searcher.suggest("a"), dict)
    assert searcher.suggest("b") is None  # a later ask() may succeed once "a" is told
    strategy.proposals.append(arch(2))
    assert Architecture.from_dict(searcher.suggest("c")["arch"]) == arch(2)
    searcher.on_trial_complete("a", epoch_result(1, 0.5))
    searcher.on_trial_complete("c", epoch_result(1, 0.5))
    assert searcher.suggest("d") == Searcher.FINISHED


def test_strategy_is_told_best_accuracy_and_measured_speed_or_none():
    strategy = FakeStrategy([arch(i) for i in range(4)])
    searcher, _ = make_searcher(strategy)
    for t in "abcd":
        searcher.suggest(t)
    measured = {t: {**measure_result(feasible=t != "b"), "throughput": 100.0 * (1 + "abcd".index(t)),
                    "latency_ms": 2.0} for t in "abcd"}
    for t in "abcd":
        searcher.on_trial_result(t, measured[t])
    searcher.on_trial_result("a", epoch_result(1, 0.6))
    searcher.on_trial_complete("a", epoch_result(2, 0.55))  # best, not last
    searcher.on_trial_complete("b", measured["b"])  # infeasible: Tune passes its last report, the measurement
    searcher.on_trial_result("c", epoch_result(1, 0.4))
    searcher.on_trial_complete("c", error=True)  # failed
    searcher.on_trial_complete("d", epoch_result(1, 0.3))  # ASHA stop: Tune passes the stopping result here
    assert strategy.told == [(arch(0), Outcome.trained(0.6, throughput=100.0, latency_ms=2.0)),
                             (arch(1), Outcome.infeasible(throughput=200.0, latency_ms=2.0)), (arch(2), None),
                             (arch(3), Outcome.trained(0.3, throughput=400.0, latency_ms=2.0))]
    assert searcher.live == {}


def test_searcher_and_callback_pickle_for_tunes_own_state_file():
    searcher, _ = make_searcher(FakeStrategy([]))
    searcher.suggest("x")
    restored = pickle.loads(pickle.dumps(searcher))
    assert restored.metric == "val_accuracy" and restored.mode == "max"
    pickle.dumps(StoreCallback(recorder=object()))


# ---------------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize("feasible, done, planned, status", [
    (True, 3, 3, "completed"), (True, 1, 3, "stopped"), (False, 0, 3, "infeasible"), (None, 0, 3, "infeasible"),
    (True, 0, 3, "stopped"),
])
def test_final_status(feasible, done, planned, status):
    assert final_status(TrialProgress(feasible=feasible, epochs_done=done), planned) == status


@pytest.mark.parametrize("kind, gpus, cpus, devices", [
    ("gpu", 0.5, 1, 0.5), ("cpu", 0.5, 2, 2.0), ("trials", 0.25, 4, 0.25), ("trials", 0, 4, 4.0),
])
def test_charged_devices(kind, gpus, cpus, devices):
    assert charged_devices(kind, gpus, cpus) == devices


class WrappedError(Exception):
    """Stands in for Ray's RayTaskError: the user's exception is its ``cause``."""

    def __init__(self, cause):
        super().__init__("ray::ImplicitFunc.train() (pid=1)\nTraceback ...")
        self.cause = cause


def test_describe_error_unwraps_and_keeps_the_first_line():
    assert describe_error(WrappedError(ValueError("boom\nsecond line"))) == "ValueError: boom"
    assert describe_error(RuntimeError("")) == "RuntimeError"
    text = "Failure # 1\nTraceback (most recent call last):\n  File x\n    raise X\nKeyError: 'arch'\n"
    assert describe_error(text) == "KeyError: 'arch'"
    assert describe_error(None).startswith("unknown error")


def test_format_progress_line():
    stats = SearchStats(trials=11, by_status={"completed": 4, "stopped": 1, "running": 2, "infeasible": 1},
                        reused=3, best_accuracy=0.9123, front_size=4)
    assert format_progress(stats, 3723, "0.05/0.17 cpu-h (31%)", "trial 7 completed") == (
        "[1:02:03] trial 7 completed | budget 0.05/0.17 cpu-h (31%) | trials: 5 done, 2 running, 1 infeasible, "
        "0 failed, 3 reused | best acc 0.912 | front 4")
    assert format_duration(59.9) == "0:00:59"


def test_settings_conflicts_name_only_given_differences():
    stored = SearchSettings(space="mini", strategy="evolution", seed=0, recipe=ProxyRecipe(epochs=3, lr=0.002),
                            measure=MeasureSettings(), early_stopping=EarlyStopping.ASHA)
    given = SearchRequest(strategy="evolution", epochs=5, proxy_res=None, early_stopping=None)
    assert stored.conflicts(given) == ["recipe.epochs (stored 3, given 5)"]
    assert stored.conflicts(SearchRequest(proxy_res=64, max_latency_ms=2.0)) == [
        "recipe.img_size (stored 32, given 64)", "measure.max_latency_ms (stored None, given 2.0)"]
    assert SearchSettings.from_config(stored.to_config()) == stored


def test_default_artifacts_dir_is_beside_the_sqlite_db(tmp_path):
    assert default_artifacts_dir(f"sqlite:///{tmp_path}/runs/nas.db") == tmp_path / "runs" / "nas_artifacts"
    assert default_artifacts_dir("sqlite:///nas.db") == Path("nas_artifacts")


def test_unreachable_address_fails_fast():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    begin = time.monotonic()
    with pytest.raises(UsageError, match=f"no Ray cluster reachable at 127.0.0.1:{port}"):
        check_address(f"127.0.0.1:{port}")
    assert time.monotonic() - begin < 5
    with pytest.raises(UsageError, match="Ray Client addresses are not supported"):
        check_address("ray://127.0.0.1:10001")
    with pytest.raises(UsageError, match="must be HOST:PORT"):
        check_address("somewhere")


# ---------------------------------------------------------------------------------- recorder + store


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    yield s
    s.close()


def new_search(store, name="s1", budget="1cpu-h", measure=None):
    b = parse_budget(budget)
    config = {"recipe": RECIPE, "measure": {**MEASURE, **(measure or {})}}
    store.create_search(name, space="mini", space_description={"name": "mini"}, config=config,
                        budget_kind=b.unit, budget_total=b.amount, budget_text=b.text, device_kind=CPU_KIND)
    return store.get_search(name), BudgetTracker(b)


def recorder_for(store, tmp_path, name="s1", budget="1cpu-h", cpus=2.0, device_kind=CPU_KIND, out=None,
                 measure=None):
    search, tracker = new_search(store, name, budget, measure)
    clock = Clock()
    rec = SearchRecorder(store, search, tracker, artifacts_dir=tmp_path / "artifacts",
                         recipe=ProxyRecipe.from_dict(RECIPE), measure=MeasureSettings(**{**MEASURE, **(measure or {})}),
                         gpus_per_trial=0.0, cpus_per_trial=cpus, device_kind=device_kind, out=out, clock=clock)
    return rec, clock


def config_for(a: Architecture, seed_name=None):
    return {"arch": a.to_dict(), "recipe": STORED_RECIPE, "seed_name": seed_name}


def full_measure(feasible=True, kind=CPU_KIND):
    return {**measure_result(feasible), "params": 150_000, "gmacs": 0.001, "uncounted_ops": [], "latency_ms": 2.0,
            "latency_iqr_ms": 0.1, "throughput": 5000.0, "throughput_iqr": 50.0, "protocol": PROTOCOL,
            "device_kind": kind, "violation": None if feasible else "latency 2 ms > max_latency_ms 1",
            "model_args": {**arch(0).to_dict(), "num_classes": 10}, "data_config": {"input_size": [3, 32, 32]}}


def checkpoint(tmp_path, name="ckpt") -> str:
    d = tmp_path / name
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"weights")
    return str(d)


def test_completed_trial_is_recorded_and_charged_wall_time_times_cpus(store, tmp_path):
    rec, clock = recorder_for(store, tmp_path)
    rec.trial_started("t1", config_for(arch(0), "CAFormer-like"))
    clock.now += 2
    rec.trial_result("t1", full_measure())
    clock.now += 3
    rec.trial_result("t1", {**epoch_result(1, 0.7), "train_loss": 1.0, "val_loss": 0.9})
    assert store.trial(1).device_hours == pytest.approx(5 * 2 / 3600)  # running cost, on record
    clock.now += 3
    rec.trial_result("t1", {**epoch_result(2, 0.65), "train_loss": 0.8, "val_loss": 0.8})
    clock.now += 1
    assert rec.trial_completed("t1", checkpoint(tmp_path)) == "completed"

    trial = store.trial(1)
    assert trial.status == "completed" and trial.seed_name == "CAFormer-like"
    assert trial.accuracy == 0.7 and trial.epochs_done == 2
    assert trial.device_hours == pytest.approx(9 * 2 / 3600) and trial.devices_held == 2
    assert trial.throughput == 5000.0 and trial.device_kind == CPU_KIND
    assert trial.model_args["num_classes"] == 10 and trial.data_config["input_size"] == [3, 32, 32]
    assert [e.val_accuracy for e in trial.epochs] == [0.7, 0.65]
    assert Path(trial.weights_path).read_bytes() == b"weights"
    assert Path(trial.weights_path) == (tmp_path / "artifacts" / "s1" / "1.safetensors").resolve()
    assert rec.tracker.charged == pytest.approx(9 * 2 / 3600)
    assert store.get_search("s1").charged == pytest.approx(9 * 2 / 3600)


def test_early_stopped_trial_is_stopped_with_its_best_accuracy(store, tmp_path):
    rec, clock = recorder_for(store, tmp_path)
    rec.trial_started("t1", config_for(arch(0)))
    rec.trial_result("t1", full_measure())
    rec.trial_result("t1", epoch_result(1, 0.4))
    assert rec.trial_completed("t1", checkpoint(tmp_path)) == "stopped"
    assert store.trial(1).accuracy == 0.4 and store.trial(1).weights_path


def test_infeasible_trial_costs_its_measurement_time_only(store, tmp_path):
    rec, clock = recorder_for(store, tmp_path, cpus=1.0)
    rec.trial_started("t1", config_for(arch(0)))
    clock.now += 4
    rec.trial_result("t1", full_measure(feasible=False))
    assert rec.trial_completed("t1", None) == "infeasible"
    trial = store.trial(1)
    assert trial.status == "infeasible" and trial.accuracy is None and trial.weights_path is None
    assert trial.device_hours == pytest.approx(4 / 3600) and trial.latency_ms == 2.0


def test_failed_trial_keeps_error_and_time(store, tmp_path):
    rec, clock = recorder_for(store, tmp_path, cpus=1.0)
    rec.trial_started("t1", config_for(arch(0)))
    rec.trial_result("t1", full_measure())
    clock.now += 6
    rec.trial_failed("t1", config_for(arch(0)), "RuntimeError: dropout probability has to be between 0 and 1")
    trial = store.trial(1)
    assert trial.status == "failed" and trial.error.startswith("RuntimeError: dropout")
    assert trial.device_hours == pytest.approx(6 / 3600) and rec.running == 0
    rec.trial_failed("t2", config_for(arch(1)), "RayActorError: worker died")  # never started
    assert store.trial(2).status == "failed" and store.trial(2).device_hours == 0


def test_reuse_across_searches_needs_same_recipe_and_device_kind(store, tmp_path):
    first, clock = recorder_for(store, tmp_path, name="first")
    first.trial_started("t1", config_for(arch(0)))
    first.trial_result("t1", full_measure())
    first.trial_result("t1", epoch_result(1, 0.8))
    first.trial_result("t1", epoch_result(2, 0.9))
    first.trial_completed("t1", checkpoint(tmp_path))

    second, _ = recorder_for(store, tmp_path, name="second")
    assert second.reuse(arch(0), "CAFormer-like") == Reused(2, Outcome.trained(0.9, throughput=5000.0, latency_ms=2.0))
    assert second.reuse(arch(1), None) is None  # never trained
    row = store.trials(search="second")[0]
    assert row.reused_from == 1 and row.device_hours == 0 and row.status == "completed"
    assert row.seed_name == "CAFormer-like" and second.tracker.charged == 0

    other_device, _ = recorder_for(store, tmp_path, name="third", device_kind="cuda:H100")
    assert other_device.reuse(arch(0), None) is None
    unknown_device, _ = recorder_for(store, tmp_path, name="fourth", device_kind=None)
    assert unknown_device.reuse(arch(0), None) is None
    other_resolution, _ = recorder_for(store, tmp_path, name="fifth", measure={"target_res": 64})
    assert other_resolution.reuse(arch(0), None) is None

    strict, _ = recorder_for(store, tmp_path, name="strict", measure={"max_latency_ms": 1.0})
    reused = strict.reuse(arch(0), None)
    assert not reused.outcome.feasible and reused.outcome.latency_ms == 2.0  # infeasible under this search's limit
    row = store.trial(reused.trial_id)
    assert row.status == "infeasible" and row.error.startswith("reused measurement: latency 2 ms")


def test_protocol_and_constraint_checks():
    measure = MeasureSettings(**MEASURE)
    assert measure.same_protocol(PROTOCOL)
    assert not measure.same_protocol({**PROTOCOL, "throughput_batch": 256}) and not measure.same_protocol(None)
    assert measure.violation(2.0, 100.0) is None
    assert MeasureSettings(max_latency_ms=1.5).violation(2.0, 100.0) == "latency 2 ms > max_latency_ms 1.5"
    assert MeasureSettings(min_throughput=200).violation(2.0, 100.0) == "throughput 100 img/s < min_throughput 200"
    assert MeasureSettings(max_latency_ms=1.5).violation(None, 100.0) == "latency - ms > max_latency_ms 1.5"
    with pytest.raises(ValueError, match="--max-latency-ms must be > 0"):
        MeasureSettings(max_latency_ms=-1)
    with pytest.raises(ValueError, match="unknown key"):
        MeasureSettings.from_dict({"resolution": 3})


def test_cluster_device_kind_is_learnt_from_the_first_measurement(store, tmp_path):
    rec, _ = recorder_for(store, tmp_path, device_kind=None)
    rec.trial_started("t1", config_for(arch(0)))
    rec.trial_result("t1", full_measure(kind="cuda:NVIDIA H100"))
    assert rec.device_kind == "cuda:NVIDIA H100"
    assert store.get_search("s1").device_kind == "cuda:NVIDIA H100"


def test_progress_lines_and_heartbeat(store, tmp_path):
    out = io.StringIO()
    rec, clock = recorder_for(store, tmp_path, out=out)
    rec.trial_started("t1", config_for(arch(0), "all-DF"))
    first = out.getvalue().splitlines()[-1]
    assert "trial 1 started (seed all-DF): sepconv-1x16 | mhsa-1x32" in first
    assert "trials: 0 done, 1 running, 0 infeasible, 0 failed | best acc - | front 0" in first
    clock.now += HEARTBEAT_S - 1
    rec.heartbeat()
    assert len(out.getvalue().splitlines()) == 1
    clock.now += 1
    rec.heartbeat()
    assert "] running | budget" in out.getvalue().splitlines()[-1]


# ---------------------------------------------------------------------------------- resume replay


def stored_trial(store, search, a, status, *, hours, acc=None, error=None):
    trial_id = store.start_trial(search.id, arch=a.to_dict(), recipe=RECIPE, devices_held=1.0)
    if acc is not None:
        store.record_epoch(trial_id, 1, dict(val_accuracy=acc), best_accuracy=acc)
    store.set_device_hours(trial_id, hours)
    if status != "running":
        store.finish_trial(trial_id, TrialStatus(status), error=error)
    return trial_id


class SeedSpace:
    def __init__(self, seeds):
        self._seeds = seeds

    def seeds(self):
        return list(self._seeds)


def test_resume_replay_tells_outcomes_in_the_order_the_trials_finished(store):
    search, tracker = new_search(store, budget="10trials")
    slow = store.start_trial(search.id, arch=arch(0).to_dict(), recipe=RECIPE, devices_held=1.0)
    fast = store.start_trial(search.id, arch=arch(1).to_dict(), recipe=RECIPE, devices_held=1.0)
    store.finish_trial(fast, TrialStatus.INFEASIBLE)
    time.sleep(0.01)
    store.record_epoch(slow, 1, dict(val_accuracy=0.7), best_accuracy=0.7)
    store.finish_trial(slow, TrialStatus.COMPLETED)
    strategy = FakeStrategy([])
    replay_stored_trials(store, search, tracker, strategy, SeedSpace([]))
    assert strategy.told == [(arch(1), Outcome.infeasible()), (arch(0), Outcome.trained(0.7))]


@pytest.mark.parametrize("budget, charged", [("1cpu-h", 0.01 + 0.002 + 0.003 + 0.004), ("10trials", 3)])
def test_resume_replay_marks_interrupted_requeues_and_recharges(store, budget, charged):
    search, tracker = new_search(store, budget=budget)
    stored_trial(store, search, arch(0), "completed", hours=0.01, acc=0.8)
    stored_trial(store, search, arch(1), "infeasible", hours=0.002)
    stored_trial(store, search, arch(2), "failed", hours=0.003, error="ValueError: x")
    interrupted = stored_trial(store, search, arch(3), "running", hours=0.004, acc=0.3)
    strategy = FakeStrategy([])
    space = SeedSpace([("CAFormer-like", arch(0)), ("all-DF", arch(4))])

    queue, exclude = replay_stored_trials(store, search, tracker, strategy, space)

    assert store.trial(interrupted).status == "failed"
    assert store.trial(interrupted).error == INTERRUPTED_ERROR
    assert queue == [(None, arch(3)), ("all-DF", arch(4))]  # interrupted first, then unevaluated seeds
    assert set(exclude) == {arch(0), arch(1), arch(2)}
    assert strategy.told == [(arch(0), Outcome.trained(0.8)), (arch(1), Outcome.infeasible()), (arch(2), None)]
    assert tracker.charged == pytest.approx(charged)
    assert store.get_search("s1").charged == pytest.approx(charged)

    # killed again before the re-run started: still queued, still not counted twice
    tracker2, strategy2 = BudgetTracker(parse_budget(budget)), FakeStrategy([])
    queue2, _ = replay_stored_trials(store, search, tracker2, strategy2, space)
    assert queue2 == queue and tracker2.charged == pytest.approx(charged)


# ---------------------------------------------------------------------------------- exclusive measurement


def test_measurement_lock_excludes_training_and_queues_trainers_behind_it(tmp_path):
    """Three trials on one device: a trainer holds the lock shared; a measurement waits for it, and a
    second trainer arriving meanwhile waits for the measurement (flock: separate opens conflict even
    within one process, as separate trial processes do)."""
    import threading

    from nas.search.device_lock import DeviceLock

    trainer, measurer, late_trainer = (DeviceLock(["gpu-X"], tmp_path) for _ in range(3))
    order: list[str] = []
    trainer.acquire_shared()

    def measure():
        measurer.acquire_exclusive()
        order.append("measure")
        time.sleep(0.3)
        order.append("measure done")
        measurer.release()

    def train_late():
        late_trainer.acquire_shared()
        order.append("late trainer")
        late_trainer.release()

    m = threading.Thread(target=measure)
    m.start()
    time.sleep(0.3)
    late = threading.Thread(target=train_late)
    late.start()
    time.sleep(0.3)
    assert order == []  # the measurement waits for the epoch in progress, the late trainer for the measurement
    trainer.release()  # epoch done
    m.join(5)
    late.join(5)
    assert order == ["measure", "measure done", "late trainer"]
    other_device = DeviceLock(["gpu-Y"], tmp_path)
    trainer.acquire_shared()
    other_device.acquire_exclusive()  # another device never waits
    for lock in (trainer, measurer, late_trainer, other_device):
        lock.close()


def test_trial_device_and_lock_keys_without_cuda():
    import torch

    from nas.device import compute_device
    from nas.search.device_lock import device_lock_keys
    from nas.search.trainable import _more_work_follows

    if torch.cuda.is_available():
        pytest.skip("checks the fake-GPU fallback")
    assert compute_device(["0"]) == torch.device("cpu")  # a fake GPU: train on the CPU
    assert compute_device([]) == torch.device("cpu") and compute_device(None) == torch.device("cpu")
    assert device_lock_keys(torch.device("cpu"), ["0"]) == ["cpu"]
    assert _more_work_follows({"phase": "measure", "feasible": True}, epochs=2)
    assert not _more_work_follows({"phase": "measure", "feasible": False}, epochs=2)
    assert _more_work_follows({"phase": "epoch", "epoch": 1}, epochs=2)
    assert not _more_work_follows({"phase": "epoch", "epoch": 2}, epochs=2)
