"""Export round trip: a real proxy-trained trial -> timm local-dir -> identical model and accuracy."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import timm
import torch

import nas  # noqa: F401  (registers hybrid_metaformer)
from nas.export import ExportError, export_trial, load_exported
from nas.store import Measurement, TrialStatus, open_store
from nas.trial.datasets import load_dataset
from nas.trial.recipe import ProxyRecipe
from nas.trial.runner import run_trial

ARCH = {"mixers": ["sepconv", "dynamic_filter", "mhsa", "mhsa"], "depths": [1, 1, 1, 1],
        "dims": [16, 32, 32, 64], "mixer_kwargs": [{}, {}, {}, {}]}
RECIPE = ProxyRecipe(dataset="digits", epochs=2, img_size=32, subset=600, batch_size=64, seed=0)


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    """A store holding one trial trained by the real trial runner, as the search driver records it."""
    root = tmp_path_factory.mktemp("export")
    store = open_store(str(root / "nas.db"), create=True)
    search = store.create_search("s", space="test", space_description={}, config={}, budget_kind="trials",
                                 budget_total=1, budget_text="1trials")
    reports: list[tuple[dict, str | None]] = []

    def report(metrics, weights_dir):
        saved = None
        if weights_dir is not None:  # keep the weights of the best epoch, as the driver does
            saved = str(root / f"w{len(reports)}")
            shutil.copytree(weights_dir, saved)
        reports.append((metrics, saved))

    config = {"arch": ARCH, "recipe": RECIPE.to_dict(), "cpus": 1,
              "measure": {"target_res": 32, "latency_batch": 1, "throughput_batch": 4, "warmup": 1,
                          "repeats": 3, "max_latency_ms": None, "min_throughput": None}}
    run_trial(config, report, device=torch.device("cpu"))
    measure = reports[0][0]
    tid = store.start_trial(search.id, arch=ARCH, recipe=RECIPE.to_dict(), model_args=measure["model_args"],
                            device_kind=measure["device_kind"], devices_held=1)
    store.record_measurement(tid, Measurement(params=measure["params"], gmacs=measure["gmacs"], uncounted_ops=measure["uncounted_ops"], latency_ms=measure["latency_ms"], throughput=measure["throughput"], protocol=measure["protocol"], device_kind=measure["device_kind"], data_config=measure["data_config"]))
    epochs = [(m, w) for m, w in reports[1:]]
    for i, (m, _) in enumerate(epochs):
        store.record_epoch(tid, m["epoch"], m, best_accuracy=max(e["val_accuracy"] for e, _ in epochs[: i + 1]))
    weights = [w for _, w in epochs if w is not None][-1]
    store.finish_trial(tid, TrialStatus.COMPLETED, device_hours=0.001, weights_path=str(Path(weights) / "model.safetensors"))
    infeasible = store.start_trial(search.id, arch=ARCH, recipe={"other": 1}, model_args=measure["model_args"])
    store.finish_trial(infeasible, "infeasible")
    yield store, tid, infeasible, root
    store.close()


def _val_accuracy(model: torch.nn.Module) -> float:
    split = load_dataset(RECIPE.dataset, RECIPE.img_size, seed=RECIPE.seed, subset=RECIPE.subset,
                         val_fraction=RECIPE.val_fraction)
    x, y = split.val.tensors
    with torch.inference_mode():
        return (model.eval()(x).argmax(1) == y).float().mean().item()


def test_round_trip_reproduces_outputs_and_accuracy(trained_store):
    store, tid, _, root = trained_store
    out = root / "exported"
    export_trial(store, tid, out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())  # plain JSON
    assert cfg["architecture"] == "hybrid_metaformer"
    assert cfg["model_args"]["mixers"] == ARCH["mixers"] and cfg["num_classes"] == 10
    pc = cfg["pretrained_cfg"]
    assert pc["classifier"] == "head.fc.fc2" and pc["first_conv"] == "stem.conv"
    assert pc["input_size"] == [3, 32, 32]
    assert pc["mean"] == store.trial(tid).data_config["mean"] != [0.485, 0.456, 0.406]  # digits' own
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pth"))

    from nas.export import build_trial_model
    original = build_trial_model(store.trial(tid))
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(original(x), loaded(x))
    recorded = store.trial(tid).accuracy
    assert _val_accuracy(loaded) == pytest.approx(recorded, abs=1e-6)


def test_head_swap_and_features(trained_store):
    store, tid, _, root = trained_store
    out = root / "exported_feat"
    export_trial(store, tid, out)
    five = timm.create_model(f"local-dir:{out}", pretrained=True, num_classes=5)
    assert five(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    feats = timm.create_model(f"local-dir:{out}", pretrained=True, features_only=True)
    maps = feats(torch.randn(2, 3, 32, 32))
    assert [m.shape[1] for m in maps] == ARCH["dims"] == feats.feature_info.channels()
    assert feats.feature_info.reduction() == [4, 8, 16, 32]
    # fine-tuning at a higher resolution: the dynamic filter's grid is resized on load (strict load)
    big = timm.create_model(f"local-dir:{out}", pretrained=True, img_size=64, num_classes=1000)
    assert big(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
    bare = timm.create_model("hybrid_metaformer", **{k: v for k, v in ARCH.items()}, num_classes=7, img_size=32)
    assert bare(torch.randn(1, 3, 32, 32)).shape == (1, 7)


def test_num_classes_option_keeps_backbone(trained_store):
    store, tid, _, root = trained_store
    out = root / "exported_k3"
    export_trial(store, tid, out, num_classes=3)
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert loaded.num_classes == 3
    from nas.export import build_trial_model
    original = build_trial_model(store.trial(tid))
    assert torch.equal(loaded.stem.conv.weight, original.stem.conv.weight)


def test_bad_inputs(trained_store):
    store, tid, infeasible, root = trained_store
    with pytest.raises(ExportError, match="unknown trial 99999"):
        export_trial(store, 99999, root / "x")
    with pytest.raises(ExportError, match="--no-weights"):
        export_trial(store, infeasible, root / "y")
    export_trial(store, infeasible, root / "arch_only", with_weights=False)
    assert not (root / "arch_only" / "model.safetensors").exists()
    assert load_exported(root / "arch_only").num_classes == 10
    busy = root / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="--force"):
        export_trial(store, tid, busy)
    assert (busy / "keep.txt").exists()
    export_trial(store, tid, busy, force=True)
    assert not (busy / "keep.txt").exists()


def test_corrupt_and_foreign_configs(tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(ExportError, match="corrupt"):
        load_exported(corrupt)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"architecture": "resnet50", "pretrained_cfg": {}}))
    with pytest.raises(ExportError, match="resnet50"):
        load_exported(foreign)
    with pytest.raises(ExportError, match="no config.json"):
        load_exported(tmp_path / "missing")


def test_cli_export_and_errors(trained_store, capsys):
    """The CLI in-process (one real `nas` process is checked in test_cli_results.py)."""
    from nas.cli import main

    def _nas(*args: str) -> subprocess.CompletedProcess:
        code = main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    store, tid, infeasible, root = trained_store
    db = str(store.url)
    ok = _nas("export", str(tid), "--out", str(root / "cli"), "--db", db)
    assert ok.returncode == 0, ok.stderr
    assert (root / "cli" / "model.safetensors").is_file()
    best = _nas("export", "--best", "--out", str(root / "best"), "--db", db)
    assert best.returncode == 0, best.stderr
    assert json.loads((root / "best" / "config.json").read_text())["mixer_nas"]["id"] == tid
    pareto = _nas("export", "--pareto", "--out", str(root / "front"), "--db", db)
    assert pareto.returncode == 0, pareto.stderr
    assert (root / "front" / f"trial-{tid}" / "config.json").is_file()
    for args, needle in [((str(99999), "--out", str(root / "u")), "unknown trial"),
                         ((str(infeasible), "--out", str(root / "n")), "--no-weights"),
                         ((str(tid), "--out", str(root / "cli")), "--force"),
                         ((str(tid), "--out", str(root / "z"), "--db", str(root / "nope.db")), "does not exist")]:
        full = list(args) if "--db" in args else [*args, "--db", db]
        res = _nas("export", *full)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert needle in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert not (root / "nope.db").exists()
    verified = _nas("verify-export", str(root / "cli"))
    assert verified.returncode == 0 and "output (1, 10)" in verified.stdout, verified.stderr
    (root / "cli" / "config.json").write_text("{broken")
    broken = _nas("verify-export", str(root / "cli"))
    assert broken.returncode == 2 and "corrupt" in broken.stderr and "Traceback" not in broken.stderr
