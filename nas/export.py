"""Export a searched architecture (and its proxy-trained weights) as a timm model directory.

The directory follows timm's Hub layout (``config.json`` + ``model.safetensors``), written by
timm's own ``save_for_hf`` so that ``timm.create_model("local-dir:DIR", pretrained=True)`` loads it
after ``import nas`` (timm has no plugin entry points: the module that registers
``hybrid_metaformer`` must be imported first).  Weights are safetensors only: nothing is pickled.
``config.json`` also carries a ``mixer_nas`` block (trial id, metrics, recipe, measurement protocol)
that timm ignores, and ``README.md`` is a model card.  Every model is built and every file written
in a staging directory before ``--out`` is replaced (``nas.export_target``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.models import save_for_hf
from timm.models._hub import save_config_for_hf

import backbones  # noqa: F401  (registers the timm models)
from nas.export_target import ExportError, check_target, staged
from nas.model_card import render_model_card
from nas.search.prepare import default_artifacts_dir
from nas.store import Store, TrialRecord
from nas.store.engine import sqlite_path
from nas.trial.runner import WEIGHTS_FILE

__all__ = ["ARCHITECTURE", "MAX_NUM_CLASSES", "WEIGHTS_FILE", "ExportError", "ExportResult", "build_trial_model", "export_trial",
           "export_trials", "load_exported", "model_args_of"]

ARCHITECTURE = "hybrid_metaformer"
MAX_NUM_CLASSES = 100_000  # far above any classification set in use (ImageNet-21k: 21,841); 0 = no head


@dataclass(frozen=True)
class ExportResult:
    trial_id: int
    out_dir: Path
    with_weights: bool
    num_classes: int


def model_args_of(trial: TrialRecord) -> dict:
    """Kwargs that rebuild the model the trial trained (architecture + proxy size + class count)."""
    if trial.model_args:
        return dict(trial.model_args)
    arch, recipe = trial.arch or {}, trial.recipe or {}
    if not arch:
        raise ExportError(f"trial {trial.id} has no architecture recorded")
    return {**arch, "img_size": recipe.get("img_size", 224), "num_classes": recipe.get("num_classes", 1000)}


def build_trial_model(trial: TrialRecord, *, with_weights: bool = True) -> torch.nn.Module:
    """The trial's model, with its proxy-trained weights loaded strictly when ``with_weights``."""
    model = timm.create_model(ARCHITECTURE, **model_args_of(trial))
    if with_weights:
        path = trial.weights_path
        if not path or not Path(path).is_file():
            why = "it was not trained" if not trial.feasible else f"no weights file at {path!r}"
            raise ExportError(
                f"trial {trial.id} ({trial.status}) has no stored weights ({why}); "
                f"pass --no-weights to export the architecture only")
        try:
            state = load_file(path)
        except (SafetensorError, OSError) as exc:
            raise ExportError(f"cannot read weights of trial {trial.id} from {path!r}: {exc}") from None
        model.load_state_dict(state, strict=True)
    return model.eval()


def export_trial(store: Store, trial_id: int, out_dir: str | Path, *, num_classes: int | None = None,
                 with_weights: bool = True, force: bool = False) -> ExportResult:
    """Write ``out_dir`` (config.json, model.safetensors unless ``with_weights=False``, README.md)."""
    return export_trials(store, [(trial_id, "")], out_dir, num_classes=num_classes, with_weights=with_weights,
                         force=force)[0]


def export_trials(store: Store, targets: Sequence[tuple[int, str]], out_dir: str | Path, *,
                  num_classes: int | None = None, with_weights: bool = True,
                  force: bool = False) -> list[ExportResult]:
    """Export each ``(trial id, sub-directory of out_dir)``; ``out_dir`` changes only if all succeed."""
    check_num_classes(num_classes)
    trials = [(_trial(store, trial_id), sub) for trial_id, sub in targets]
    target = check_target(out_dir, force=force, protected=_protected_paths(store))
    results = []
    with staged(target, str(out_dir)) as staging:
        for trial, sub in trials:
            final = Path(out_dir) / sub if sub else Path(out_dir)
            try:
                results.append(_write(trial, staging / sub if sub else staging, final, num_classes, with_weights))
            except SafetensorError as exc:  # safetensors reports its own I/O errors (disk full...) this way
                raise ExportError(f"cannot write --out {str(out_dir)!r}: {str(exc).splitlines()[0]}") from None
    return results


def check_num_classes(num_classes: int | None) -> None:
    if num_classes is not None and not 0 <= num_classes <= MAX_NUM_CLASSES:
        raise ExportError(f"--num-classes must be between 0 (no head) and {MAX_NUM_CLASSES:,}, got {num_classes}")


def _trial(store: Store, trial_id: int) -> TrialRecord:
    trial = store.trial(int(trial_id))
    if trial is None:
        raise ExportError(f"unknown trial {trial_id}")
    return trial


def _write(trial: TrialRecord, staging: Path, final: Path, num_classes: int | None,
           with_weights: bool) -> ExportResult:
    """Build the model and write its files into ``staging``; the model card names ``final``."""
    model = build_trial_model(trial, with_weights=with_weights)
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)  # fresh head; the searched backbone keeps its weights
    data_config = _data_config(trial, model)
    provenance = {"mixer_nas": _provenance(trial, with_weights, num_classes)}
    staging.mkdir(parents=True, exist_ok=True)
    if with_weights:
        save_for_hf(model, str(staging), model_config=provenance, safe_serialization=True, data_config=data_config)
    else:
        save_config_for_hf(model, str(staging / "config.json"), model_config=provenance, data_config=data_config)
    (staging / "README.md").write_text(render_model_card(trial, final, model, with_weights=with_weights))
    return ExportResult(trial.id, final, with_weights, model.num_classes)


def _protected_paths(store: Store) -> dict[str, Path]:
    """What an export must never replace: the results DB, its artifacts, every trial's weights, the cwd."""
    protected = {"the current directory": Path.cwd()}
    db = sqlite_path(store.url)
    if db is not None:
        protected["the results database"] = db
        protected["the search artifacts"] = default_artifacts_dir(store.url)
    for trial in store.trials():
        if trial.weights_path:
            protected[f"the weights of trial {trial.id}"] = Path(trial.weights_path)
    return protected


def load_exported(path: str | Path, *, require_weights: bool = False, **kwargs: Any) -> torch.nn.Module:
    """``timm.create_model("local-dir:PATH", pretrained=True)`` with clear errors for bad directories.

    Without ``model.safetensors`` the model has random weights: an error if ``require_weights``.
    """
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ExportError(f"{str(path)!r} is not an exported model directory (no config.json)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError(f"corrupt {str(cfg_file)!r}: {exc}") from None
    if not isinstance(cfg, dict) or cfg.get("architecture") != ARCHITECTURE:
        arch = cfg.get("architecture") if isinstance(cfg, dict) else None
        raise ExportError(f"{str(cfg_file)!r} describes architecture {arch!r}, not {ARCHITECTURE!r}")
    if not isinstance(cfg.get("model_args"), dict) or not isinstance(cfg.get("pretrained_cfg"), dict):
        raise ExportError(f"{str(cfg_file)!r} lacks model_args/pretrained_cfg; re-export it with `nas export`")
    pretrained = (path / WEIGHTS_FILE).is_file()
    if require_weights and not pretrained:
        raise ExportError(f"{str(path)!r} has no {WEIGHTS_FILE}: the model would have random weights "
                          f"(pass --no-weights to check an architecture-only export)")
    try:
        return timm.create_model(f"local-dir:{path}", pretrained=pretrained, **kwargs)
    except (ValueError, TypeError, KeyError, RuntimeError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"cannot load {str(path)!r}: {first}") from None


def _data_config(trial: TrialRecord, model: torch.nn.Module) -> dict:
    """Preprocessing the weights were trained with: the model's input size and the dataset's normalisation."""
    recorded = trial.data_config or {}
    config = {"input_size": tuple(model.pretrained_cfg["input_size"]), "crop_pct": 1.0, "interpolation": "bilinear"}
    if recorded.get("mean") and recorded.get("std"):
        config.update(mean=tuple(recorded["mean"]), std=tuple(recorded["std"]))
    return config


def _provenance(trial: TrialRecord, with_weights: bool, num_classes: int | None) -> dict:
    keys = ("id", "search", "status", "arch", "arch_hash", "recipe", "recipe_hash", "accuracy", "throughput",
            "throughput_iqr", "latency_ms", "latency_iqr_ms", "params", "gmacs", "uncounted_ops", "protocol",
            "device_kind", "device_hours", "epochs_done", "seed_name")
    record = trial.to_json()
    info = {k: record[k] for k in keys}
    info["weights"] = "proxy-trained" if with_weights else "none (architecture only)"
    info["head_replaced"] = num_classes is not None
    return info
