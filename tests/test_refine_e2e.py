"""``nas refine`` end to end: a real tiny ``nas search`` on ``hybrid_metaformer_tiny``, then a real refine
of its front and best other trial through Ray Tune (the session's ``ray_local``), then the same refine
again, which reuses the stored results."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy.stats import kendalltau

from nas.cli import main
from nas.front import pareto_front
from nas.refine import select_candidates
from nas.store import TrialStatus, open_store, refinements

pytestmark = pytest.mark.ray


def test_refine_a_real_tiny_search(ray_local, tmp_path: Path, capsys):
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    assert main(["search", "--space", "hybrid_metaformer_tiny", "--budget", "3trials", "--strategy", "random",
                 "--dataset", "digits", "--epochs", "1", "--subset", "200", "--warmup", "1", "--repeats", "3",
                 "--throughput-batch", "8", "--name", "tiny", "--quiet", "--db", db]) == 0, capsys.readouterr().err
    store = open_store(db)
    before = store.trials(search="tiny")
    expected = select_candidates(before, top=1)
    front = pareto_front(before)
    completed = [t for t in before if t.status == TrialStatus.COMPLETED]
    assert len(completed) == 3 and [c.trial for c in expected[:len(front)]] == front
    assert len(expected) == len(front) + min(1, len(completed) - len(front))  # the front, plus the best other
    capsys.readouterr()

    assert main(["refine", "--top", "1", "--epochs", "2", "--db", db]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    rows = {r.trial_id: r for r in refinements(store, search="tiny")}
    assert sorted(rows) == sorted(c.trial.id for c in expected)
    for c in expected:
        r = rows[c.trial.id]
        assert r.status == TrialStatus.COMPLETED and r.epochs == r.epochs_done == 2
        assert r.recipe == {**c.trial.recipe, "epochs": 2}
        assert [e["epoch"] for e in r.curve] == [1, 2]
        assert r.accuracy == max(e["val_accuracy"] for e in r.curve)
        assert r.device_hours > 0 and Path(r.weights_path).is_file()
    proxy = [c.trial.accuracy for c in expected]
    refined = [rows[c.trial.id].accuracy for c in expected]
    tau = kendalltau(proxy, refined)
    value = f"{tau.statistic:.3f} (p = {tau.pvalue:.2g})" if len(set(proxy)) > 1 and len(set(refined)) > 1 \
        else "n/a (needs two trials with different accuracies)"
    tau_line = (f"Kendall tau between proxy (1 epochs) and refined (2 epochs) accuracy over {len(expected)} "
                f"trial(s): {value}")
    assert out.splitlines()[-1] == tau_line, out
    assert store.trials(search="tiny") == before  # the original trials are untouched

    assert main(["refine", "--top", "1", "--epochs", "2", "--db", db, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert all(t["reused"] for t in again["trials"])
    assert {t["trial"]: t["refinement"] for t in again["trials"]} == {i: r.id for i, r in rows.items()}
    assert refinements(store, search="tiny") == list(rows.values())  # nothing retrained
    store.close()
