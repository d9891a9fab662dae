"""A trial lost with its Ray worker or node (a machine of the pool died) is queued again, once per
architecture; its strategy is told nothing, a trials budget does not count it, and a resumed
search treats it the same way (found by ``benchmarks.scale``: removing a node used to lose its
trials' architectures for good)."""
from __future__ import annotations

from nas.budget import BudgetTracker, parse_budget
from nas.search.recorder import LOST_PREFIX, SearchRecorder, left_without_outcome
from nas.search.run import replay_stored_trials
from nas.search.searcher import StrategySearcher
from nas.store import TrialStatus, open_store
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe
from search_spaces import Architecture

RECIPE = ProxyRecipe.from_dict({"dataset": "digits", "epochs": 1, "img_size": 32})
NODE_DIED = ("ActorUnavailableError: The actor 4be5065b2f247a8787dd829401000000 is unavailable: "
             "The actor is temporarily unavailable")


def arch(i: int) -> Architecture:
    return Architecture(("sepconv", "pooling"), (1, i + 1), (16, 16))


class Strategy:
    def __init__(self, proposals):
        self.proposals, self.told, self.seen = list(proposals), [], []

    def ask(self):
        return self.proposals.pop(0) if self.proposals else None

    def tell(self, a, outcome):
        self.told.append((a, outcome))

    def mark_seen(self, a):
        self.seen.append(a)


def wired(tmp_path, budget="5trials"):
    store = open_store(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    b = parse_budget(budget)
    search = store.create_search("s", space="mini", space_description={"name": "mini"}, config={},
                                 budget_kind=b.unit, budget_total=b.amount, budget_text=b.text)
    tracker = BudgetTracker(b)
    recorder = SearchRecorder(store, search, tracker, artifacts_dir=tmp_path / "art", recipe=RECIPE,
                              measure=MeasureSettings(target_res=32), gpus_per_trial=1.0, cpus_per_trial=1.0,
                              device_kind="cuda:x", out=None)
    strategy = Strategy([arch(0), arch(1), arch(2)])
    searcher = StrategySearcher(strategy, tracker, recorder,
                                lambda a, seed: {"arch": a.to_dict(), "recipe": RECIPE.to_dict(), "seed_name": seed})
    searcher.defer_failures = True
    recorder.failure_listener = searcher.resolve_failure
    return store, search, tracker, recorder, strategy, searcher


def fail(searcher, recorder, tune_id, config, message):
    recorder.trial_started(tune_id, config)
    searcher.on_trial_complete(tune_id, error=True)  # Tune tells the searcher first, then the callback
    recorder.trial_failed(tune_id, config, message)


def test_a_lost_trial_is_queued_again_once_and_costs_no_trial(tmp_path):
    store, search, tracker, recorder, strategy, searcher = wired(tmp_path)
    first = searcher.suggest("t1")
    fail(searcher, recorder, "t1", first, NODE_DIED)
    assert strategy.told == [] and tracker.charged == 0  # nothing learnt, no trial of the budget used
    row = store.trials(search="s")[0]
    assert row.error.startswith(LOST_PREFIX) and NODE_DIED in row.error and left_without_outcome(row)
    again = searcher.suggest("t2")
    assert again["arch"] == first["arch"]  # queued again, ahead of the strategy's next proposal
    fail(searcher, recorder, "t2", again, NODE_DIED.replace("4be5", "9abc"))  # lost a second time: its own failure
    assert strategy.told == [(arch(0), None)] and tracker.charged == 1
    assert not left_without_outcome(store.trials(search="s")[1])
    other = searcher.suggest("t3")
    fail(searcher, recorder, "t3", other, "RuntimeError: CUDA out of memory")  # an ordinary failure
    assert strategy.told[-1] == (arch(1), None) and searcher.suggest("t4")["arch"] == arch(2).to_dict()
    store.close()


def test_resume_queues_lost_architectures_and_remembers_the_loss(tmp_path):
    store, search, tracker, recorder, strategy, searcher = wired(tmp_path)
    lost = searcher.suggest("t1")
    fail(searcher, recorder, "t1", lost, NODE_DIED)
    fresh, resumed = BudgetTracker(parse_budget("5trials")), Strategy([])
    queue, exclude = replay_stored_trials(store, search, fresh, resumed, SeedlessSpace())
    assert queue == [(None, arch(0))] and exclude == [] and resumed.told == [] and fresh.charged == 0
    # a new driver's recorder counts the loss recorded by the earlier run: a second loss is a failure
    _, _, _, recorder2, strategy2, searcher2 = wired_again(store, search, tmp_path)
    fail(searcher2, recorder2, "t9", {"arch": arch(0).to_dict(), "recipe": RECIPE.to_dict()}, NODE_DIED)
    assert not store.trials(search="s")[-1].error.startswith(LOST_PREFIX)
    store.close()


class SeedlessSpace:
    def seeds(self):
        return []


def wired_again(store, search, tmp_path):
    tracker = BudgetTracker(parse_budget("5trials"))
    recorder = SearchRecorder(store, search, tracker, artifacts_dir=tmp_path / "art", recipe=RECIPE,
                              measure=MeasureSettings(target_res=32), gpus_per_trial=1.0, cpus_per_trial=1.0,
                              device_kind="cuda:x", out=None)
    strategy = Strategy([])
    searcher = StrategySearcher(strategy, tracker, recorder, lambda a, seed: {"arch": a.to_dict()})
    searcher.defer_failures = True
    recorder.failure_listener = searcher.resolve_failure
    searcher.live["t9"] = arch(0)
    return store, search, tracker, recorder, strategy, searcher
