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

from nas.trial.datasets import load_dataset
from nas.trial.measure import SpeedResult, device_kind, measure_speed, profile_model
from nas.trial.recipe import ProxyRecipe
from nas.trial.train import train_proxy

__all__ = ["MEASURE_DEFAULTS", "WEIGHTS_FILE", "Report", "run_trial", "save_weights", "select_device"]

# Returning False from a report call stops the trial (e.g. the driver's scheduler pruned it).
Report = Callable[[dict[str, Any], str | None], bool | None]

WEIGHTS_FILE = "model.safetensors"
MEASURE_DEFAULTS: dict[str, Any] = dict(target_res=224, latency_batch=1, throughput_batch=32, warmup=10,
                                        repeats=30, max_latency_ms=None, min_throughput=None)


def select_device() -> torch.device:
    """CUDA when visible (Ray sets CUDA_VISIBLE_DEVICES, so index 0 is the trial's GPU), else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def run_trial(config: Mapping[str, Any], report: Report, *, device: torch.device | str | None = None) -> None:
    """Measure, check constraints, report phase ``measure``; if feasible, train and report every epoch.

    ``config``: ``arch`` (hybrid_metaformer kwargs: mixers/depths/dims/mixer_kwargs), ``recipe``
    (:class:`ProxyRecipe` dict), ``measure`` (see ``MEASURE_DEFAULTS``), optional ``cpus``
    (threads on CPU, default 1), ``data_dir`` and ``download``.  The ``weights_dir`` passed to
    ``report`` holds ``model.safetensors`` and is deleted when ``report`` returns: copy it there.
    """
    recipe = ProxyRecipe.from_dict(config["recipe"])
    measure = _measure_settings(config.get("measure") or {})
    device = torch.device(device) if device is not None else select_device()
    if device.type == "cpu":
        torch.set_num_threads(int(config.get("cpus", 1)))
    split = load_dataset(recipe.dataset, recipe.img_size, seed=recipe.seed, subset=recipe.subset,
                         val_fraction=recipe.val_fraction, data_dir=config.get("data_dir"),
                         download=bool(config.get("download", False)))
    model_args = {**config["arch"], "num_classes": split.num_classes, "in_chans": split.in_chans}

    torch.manual_seed(recipe.seed)
    target_model = timm.create_model("hybrid_metaformer", **{**model_args, "img_size": measure["target_res"]})
    flops = profile_model(target_model, measure["target_res"])
    speed = measure_speed(target_model, measure["target_res"], device,
                          latency_batch=measure["latency_batch"], throughput_batch=measure["throughput_batch"],
                          warmup=measure["warmup"], repeats=measure["repeats"])
    del target_model
    _release_memory(device)
    violation = _constraint_violation(speed, measure)
    report({
        "phase": "measure", "epoch": 0, "val_accuracy": 0.0,
        "params": flops.params, "gmacs": flops.gmacs, "uncounted_ops": sorted(flops.uncounted_ops),
        "latency_ms": speed.latency_ms, "latency_iqr_ms": speed.latency_iqr_ms,
        "throughput": speed.throughput, "throughput_iqr": speed.throughput_iqr,
        "protocol": speed.protocol, "device_kind": device_kind(device),
        "feasible": violation is None, "violation": violation,
        "model_args": {**model_args, "img_size": recipe.img_size},
        "data_config": {"input_size": [split.in_chans, recipe.img_size, recipe.img_size],
                        "mean": list(split.mean), "std": list(split.std)},
    }, None)
    if violation is not None:
        return

    torch.manual_seed(recipe.seed)
    proxy_model = timm.create_model("hybrid_metaformer", **{**model_args, "img_size": recipe.img_size})

    best = {"val_accuracy": -1.0}

    def on_epoch(metrics: dict[str, Any]) -> bool | None:
        # Weights travel only when validation accuracy improves, so the last weights the driver
        # received are those of the best epoch: the stored accuracy is the stored model's accuracy.
        if metrics["val_accuracy"] <= best["val_accuracy"]:
            return report({"phase": "epoch", **metrics}, None)
        best["val_accuracy"] = metrics["val_accuracy"]
        with tempfile.TemporaryDirectory(prefix="mixer-nas-weights-") as weights_dir:
            save_weights(proxy_model, weights_dir)
            return report({"phase": "epoch", **metrics}, weights_dir)

    train_proxy(proxy_model, split, recipe, device, on_epoch=on_epoch)


def save_weights(model: torch.nn.Module, directory: str | Path) -> Path:
    """``state_dict`` as safetensors; tensors packed to CPU/contiguous (channels_last weights are not)."""
    path = Path(directory) / WEIGHTS_FILE
    save_file({name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}, str(path))
    return path


def _measure_settings(measure: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(measure) - set(MEASURE_DEFAULTS))
    if unknown:
        raise ValueError(f"measure: unknown key(s) {unknown}; known keys are {sorted(MEASURE_DEFAULTS)}")
    return {**MEASURE_DEFAULTS, **measure}


def _constraint_violation(speed: SpeedResult, measure: Mapping[str, Any]) -> str | None:
    max_latency, min_throughput = measure["max_latency_ms"], measure["min_throughput"]
    if max_latency is not None and speed.latency_ms > max_latency:
        return f"latency {speed.latency_ms:.3g} ms > max_latency_ms {max_latency:g}"
    if min_throughput is not None and speed.throughput < min_throughput:
        return f"throughput {speed.throughput:.4g} img/s < min_throughput {min_throughput:g}"
    return None


def _release_memory(device: torch.device) -> None:
    """Free the measurement model before training so the proxy run has the whole device."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
