"""One trial, independent of Ray: measure the candidate at the target resolution, then proxy-train it.

The Tune driver wraps :func:`run_trial` and turns each ``report(metrics, weights_dir)`` call
into ``ray.tune.report(metrics, checkpoint=...)``.  Exceptions propagate: a trial that
raises is a failed trial.
"""
from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import timm
import torch
from safetensors.torch import save_file

from nas.device import compute_device, device_kind
from nas.store.records import Measurement
from nas.trial.datasets import load_dataset
from nas.trial.measure import measure_speed, profile_model
from nas.trial.measure_settings import MeasureSettings
from nas.trial.progress import EPOCH_PHASE, MEASURE_PHASE, TrialProgress
from nas.trial.recipe import ProxyRecipe
from nas.trial.train import train_proxy

__all__ = ["WEIGHTS_FILE", "Report", "run_trial", "save_weights"]

# Returning False from a report call stops the trial (e.g. the driver's scheduler pruned it).
Report = Callable[[dict[str, Any], str | None], bool | None]

WEIGHTS_FILE = "model.safetensors"


def run_trial(config: Mapping[str, Any], report: Report, *, device: torch.device | str | None = None) -> None:
    """Measure, check constraints, report phase ``measure``; if feasible, train and report every epoch.

    ``config``: ``arch`` (hybrid_metaformer kwargs: mixers/depths/dims/mixer_kwargs), ``recipe``
    (:class:`ProxyRecipe` dict), ``measure`` (:class:`MeasureSettings` dict), optional ``cpus``
    (threads on CPU, default 1), ``data_dir`` and ``download``.  The ``weights_dir`` passed to
    ``report`` holds ``model.safetensors`` and is deleted when ``report`` returns: copy it there.
    """
    recipe = ProxyRecipe.from_dict(config["recipe"])
    measure = MeasureSettings.from_dict(config.get("measure") or {})
    device = torch.device(device) if device is not None else compute_device()
    if device.type == "cpu":
        torch.set_num_threads(int(config.get("cpus", 1)))
    split = load_dataset(recipe.dataset, recipe.img_size, seed=recipe.seed, subset=recipe.subset,
                         val_fraction=recipe.val_fraction, data_dir=config.get("data_dir"),
                         download=bool(config.get("download", False)))
    model_args = {**config["arch"], "num_classes": split.num_classes, "in_chans": split.in_chans}

    torch.manual_seed(recipe.seed)
    target_model = timm.create_model("hybrid_metaformer", **{**model_args, "img_size": measure.target_res})
    flops = profile_model(target_model, measure.target_res)
    speed = measure_speed(target_model, device, measure)
    del target_model
    _release_memory(device)
    measurement = Measurement(
        params=flops.params, gmacs=flops.gmacs, uncounted_ops=tuple(sorted(flops.uncounted_ops)),
        latency_ms=speed.latency_ms, latency_iqr_ms=speed.latency_iqr_ms,
        throughput=speed.throughput, throughput_iqr=speed.throughput_iqr,
        protocol=speed.protocol, device_kind=device_kind(device),
        model_args={**model_args, "img_size": recipe.img_size},
        data_config={"input_size": [split.in_chans, recipe.img_size, recipe.img_size],
                     "mean": list(split.mean), "std": list(split.std)},
        violation=measure.violation(speed.latency_ms, speed.throughput))
    report({"phase": MEASURE_PHASE, "epoch": 0, "val_accuracy": 0.0, **measurement.to_report()}, None)
    if not measurement.feasible:
        return

    torch.manual_seed(recipe.seed)
    proxy_model = timm.create_model("hybrid_metaformer", **{**model_args, "img_size": recipe.img_size})

    progress = TrialProgress(feasible=True)

    def on_epoch(metrics: dict[str, Any]) -> bool | None:
        # Weights travel only when validation accuracy improves, so the last weights the driver
        # received are those of the best epoch: the stored accuracy is the stored model's accuracy.
        result = {"phase": EPOCH_PHASE, **metrics}
        if not progress.observe(result):
            return report(result, None)
        with tempfile.TemporaryDirectory(prefix="mixer-nas-weights-") as weights_dir:
            save_weights(proxy_model, weights_dir)
            return report(result, weights_dir)

    train_proxy(proxy_model, split, recipe, device, on_epoch=on_epoch)


def save_weights(model: torch.nn.Module, directory: str | Path) -> Path:
    """``state_dict`` as safetensors; tensors packed to CPU/contiguous (channels_last weights are not)."""
    path = Path(directory) / WEIGHTS_FILE
    save_file({name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}, str(path))
    return path


def _release_memory(device: torch.device) -> None:
    """Free the measurement model before training so the proxy run has the whole device."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
