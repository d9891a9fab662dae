"""Proxy recipe, trainer, speed measurement and the Ray-agnostic trial runner, on CPU."""
from __future__ import annotations

import re
import time

import pytest
import timm
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Subset

from nas.trial.datasets import load_dataset
from nas.device import device_kind
from nas.trial.measure import measure_speed, profile_model
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe
from nas.trial.runner import run_trial, save_weights
from nas.trial.train import NonFiniteLossError, train_proxy

TINY_ARCH = dict(mixers=["sepconv", "sepconv", "mhsa", "mhsa"], depths=[1, 1, 1, 1], dims=[16, 32, 32, 64])
EPOCH_KEYS = {"epoch", "train_loss", "val_loss", "val_accuracy", "lr", "images_per_s", "elapsed_s"}
PROTOCOL_KEYS = {"warmup", "repeats", "latency_batch", "throughput_batch", "img_size", "threads", "device",
                 "dtype", "channels_last", "torch", "cudnn_benchmark", "timer", "statistic"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The machine is shared: one thread each, restored afterwards (run_trial sets it too)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def digits32():
    return load_dataset("digits", 32, seed=0)


def tiny_model(img_size: int = 32) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("hybrid_metaformer", **TINY_ARCH, img_size=img_size, num_classes=10)


def digits32_subset(recipe: ProxyRecipe):
    return load_dataset("digits", 32, seed=recipe.seed, subset=recipe.subset)


def linear_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))


class NaNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * float("nan")


# --- recipe ----------------------------------------------------------------------------------

def test_recipe_round_trip_and_hash():
    recipe = ProxyRecipe(epochs=2, subset=100)
    assert ProxyRecipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.hash == ProxyRecipe.from_dict({"epochs": 2, "subset": 100, "lr": 2e-3}).hash
    assert recipe.hash != ProxyRecipe(epochs=2, subset=100, seed=1).hash
    assert re.fullmatch(r"[0-9a-f]{16}", recipe.hash)
    assert ProxyRecipe(lr=1).lr == 1.0 and isinstance(ProxyRecipe(lr=1).lr, float)


@pytest.mark.parametrize("data, match", [
    ({"epoch": 3}, "unknown key"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"batch_size": True}, "batch_size"),
    ({"lr": "fast"}, "lr"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"subset": 0}, "subset"),
    ({"dataset": "imagenet"}, "unknown dataset"),
])
def test_recipe_rejects_bad_input(data, match):
    with pytest.raises(ValueError, match=match):
        ProxyRecipe.from_dict(data)


# --- trainer ---------------------------------------------------------------------------------

def test_tiny_metaformer_learns_digits(digits32):
    seen = []
    result = train_proxy(tiny_model(), digits32, ProxyRecipe(epochs=3), "cpu", on_epoch=seen.append)
    assert result.epochs_done == 3 and [m["epoch"] for m in seen] == [1, 2, 3]
    assert set(seen[0]) == EPOCH_KEYS and seen == result.history
    assert result.best_val_accuracy == max(m["val_accuracy"] for m in seen) > 0.8  # chance is 0.1
    assert seen[-1]["train_loss"] < seen[0]["train_loss"]
    assert all(m["images_per_s"] > 0 and m["elapsed_s"] > 0 for m in seen)
    assert seen[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine ends at 0


def test_warmup_reaches_peak_lr_after_warmup_epochs():
    recipe = ProxyRecipe(epochs=2, warmup_epochs=1, subset=256, lr=1e-3)
    result = train_proxy(linear_model(), digits32_subset(recipe), recipe, "cpu")
    assert result.history[0]["lr"] == pytest.approx(1e-3)


def test_same_seed_gives_identical_losses():
    recipe = ProxyRecipe(epochs=2, subset=192)
    split = digits32_subset(recipe)
    runs = [train_proxy(tiny_model(), split, recipe, "cpu").history for _ in range(2)]
    keys = ("train_loss", "val_loss", "val_accuracy")
    assert [[m[k] for k in keys] for m in runs[0]] == [[m[k] for k in keys] for m in runs[1]]


def test_non_finite_loss_raises_with_epoch_and_step():
    recipe = ProxyRecipe(epochs=1, subset=128)
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1 ") as info:
        train_proxy(NaNModel(), digits32_subset(recipe), recipe, "cpu")
    assert isinstance(info.value, RuntimeError)


def test_on_epoch_returning_false_stops_training():
    recipe = ProxyRecipe(epochs=3, subset=128)
    split = digits32_subset(recipe)
    stopped = train_proxy(linear_model(), split, recipe, "cpu", on_epoch=lambda m: m["epoch"] < 2)
    assert stopped.epochs_done == 2 and len(stopped.history) == 2
    full = train_proxy(linear_model(), split, recipe, "cpu", on_epoch=lambda m: None)
    assert full.epochs_done == 3


def test_dataloader_path_for_non_tensor_datasets():
    split = digits32_subset(ProxyRecipe())
    split.train = Subset(split.train, range(100))  # not a TensorDataset: goes through a DataLoader
    result = train_proxy(linear_model(), split, ProxyRecipe(epochs=1, batch_size=32), "cpu")
    assert result.epochs_done == 1 and result.history[0]["images_per_s"] > 0


# --- measurement -----------------------------------------------------------------------------

def test_device_kind_names_cpu_model_and_threads():
    assert re.fullmatch(r"cpu:.+ x1", device_kind("cpu"))


def test_measure_speed_gives_positive_numbers_and_full_protocol():
    model = tiny_model().train()
    speed = measure_speed(model, "cpu", MeasureSettings(target_res=32, throughput_batch=4, warmup=1, repeats=5))
    assert speed.latency_ms > 0 and speed.throughput > 0
    assert speed.latency_iqr_ms >= 0 and speed.throughput_iqr >= 0
    assert set(speed.protocol) == PROTOCOL_KEYS
    assert speed.protocol["repeats"] == 5 and speed.protocol["throughput_batch"] == 4
    assert speed.protocol["dtype"] == "float32" and speed.protocol["threads"] == 1
    assert speed.protocol["device"] == device_kind("cpu") and speed.protocol["statistic"] == "median"
    assert model.training  # mode restored
    bf16 = measure_speed(model, "cpu", MeasureSettings(target_res=32, throughput_batch=2, warmup=0, repeats=1),
                         dtype=torch.bfloat16)
    assert bf16.protocol["dtype"] == "bfloat16"


def test_profile_model_counts_params_and_macs():
    model = tiny_model()
    flops = profile_model(model, 32)
    assert flops.params == sum(p.numel() for p in model.parameters())
    assert flops.gmacs > 0


# --- trial runner ----------------------------------------------------------------------------

def trial_config(**measure) -> dict:
    return {
        "arch": TINY_ARCH,
        "recipe": {"epochs": 2, "subset": 128, "batch_size": 32},
        "measure": {"target_res": 32, "throughput_batch": 4, "warmup": 1, "repeats": 3, **measure},
        "cpus": 1,
    }


def test_run_trial_measures_trains_saves_weights_and_stops_on_false():
    reports = []

    def report(metrics, weights_dir):
        weights = load_file(f"{weights_dir}/model.safetensors") if weights_dir else None
        reports.append((metrics, weights))
        return False if metrics["phase"] == "epoch" else None  # a scheduler stopping after epoch 1

    run_trial(trial_config(), report, device="cpu")
    (measured, no_weights), (epoch, weights) = reports
    assert measured["phase"] == "measure" and no_weights is None
    assert measured["feasible"] and measured["violation"] is None
    assert measured["epoch"] == 0 and measured["device_kind"] == device_kind("cpu")
    assert measured["params"] > 0 and measured["latency_ms"] > 0 and measured["throughput"] > 0
    assert measured["protocol"]["img_size"] == 32 and isinstance(measured["uncounted_ops"], list)
    assert measured["model_args"] == {**TINY_ARCH, "img_size": 32, "num_classes": 10, "in_chans": 3}
    assert epoch["phase"] == "epoch" and epoch["epoch"] == 1 and EPOCH_KEYS <= set(epoch)
    rebuilt = timm.create_model("hybrid_metaformer", **measured["model_args"])
    rebuilt.load_state_dict(weights, strict=True)


def test_infeasible_trial_reports_violation_and_trains_nothing():
    reports = []
    run_trial(trial_config(max_latency_ms=1e-6), lambda m, d: reports.append(m), device="cpu")
    assert len(reports) == 1
    assert reports[0]["feasible"] is False and "max_latency_ms" in reports[0]["violation"]


def test_run_trial_rejects_unknown_measure_keys():
    with pytest.raises(ValueError, match="target_resolution"):
        run_trial({**trial_config(), "measure": {"target_resolution": 32}}, lambda m, d: None, device="cpu")


def test_save_weights_packs_channels_last_tensors(tmp_path):
    model = tiny_model().to(memory_format=torch.channels_last)  # the CUDA training layout
    assert not all(v.is_contiguous() for v in model.state_dict().values())
    path = save_weights(model, tmp_path)
    saved = load_file(path)
    assert saved.keys() == model.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


class _SleepyModel(nn.Module):
    """A forward pass that mostly waits: 20 ms off the CPU, as a thread descheduled on a busy machine."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        return x.flatten(1).sum(1, keepdim=True)


def test_thread_clock_counts_only_the_measuring_threads_cpu_time():
    settings = dict(target_res=8, throughput_batch=2, warmup=0, repeats=3)
    wall = measure_speed(_SleepyModel(), "cpu", MeasureSettings(**settings))
    thread = measure_speed(_SleepyModel(), "cpu", MeasureSettings(**settings, clock="thread"))
    assert wall.latency_ms >= 20 and thread.latency_ms < 5
    assert wall.protocol["timer"] == "perf_counter" and thread.protocol["timer"] == "thread_time"
    assert MeasureSettings(**settings, clock="thread").same_protocol(thread.protocol)
    assert not MeasureSettings(**settings).same_protocol(thread.protocol)
    assert not MeasureSettings(**settings, clock="thread").same_protocol(wall.protocol)


def test_thread_clock_refuses_several_threads_and_unknown_clocks():
    with pytest.raises(ValueError, match="measurement clock must be one of wall, thread"):
        MeasureSettings(clock="cpu")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(ValueError, match="1 torch thread"):
            measure_speed(_SleepyModel(), "cpu", MeasureSettings(target_res=8, repeats=1, clock="thread"))
    finally:
        torch.set_num_threads(previous)
