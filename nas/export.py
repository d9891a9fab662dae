"""Export a searched architecture (and its proxy-trained weights) as a timm model directory.

The directory follows timm's Hub layout (``config.json`` + ``model.safetensors``), written by
timm's own ``save_for_hf`` so that ``timm.create_model("local-dir:DIR", pretrained=True)`` loads it
after ``import nas`` (timm has no plugin entry points: the module that registers
``hybrid_metaformer`` must be imported first).  Weights are safetensors only: nothing is pickled.
``config.json`` also carries a ``mixer_nas`` block (trial id, metrics, recipe, measurement protocol)
that timm ignores, and ``README.md`` is a model card.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.models import save_for_hf
from timm.models._hub import save_config_for_hf

import backbones  # noqa: F401  (registers the timm models)
from nas.errors import UsageError
from nas.model_card import render_model_card
from nas.store import Store, TrialRecord
from nas.trial.runner import WEIGHTS_FILE

ARCHITECTURE = "hybrid_metaformer"


class ExportError(UsageError):
    """An export or load problem the user can fix."""


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
    trial = store.trial(int(trial_id))
    if trial is None:
        raise ExportError(f"unknown trial {trial_id}")
    out = Path(out_dir)
    _prepare_out_dir(out, force)
    model = build_trial_model(trial, with_weights=with_weights)
    if num_classes is not None and num_classes != model.num_classes:
        if num_classes < 0:
            raise ExportError(f"--num-classes must be >= 0, got {num_classes}")
        model.reset_classifier(num_classes)  # fresh head; the searched backbone keeps its weights
    data_config = _data_config(trial, model)
    provenance = {"mixer_nas": _provenance(trial, with_weights, num_classes)}
    if with_weights:
        save_for_hf(model, str(out), model_config=provenance, safe_serialization=True, data_config=data_config)
    else:
        out.mkdir(parents=True, exist_ok=True)
        save_config_for_hf(model, str(out / "config.json"), model_config=provenance, data_config=data_config)
    (out / "README.md").write_text(render_model_card(trial, out, model, with_weights=with_weights))
    return ExportResult(trial.id, out, with_weights, model.num_classes)


def load_exported(path: str | Path, **kwargs: Any) -> torch.nn.Module:
    """``timm.create_model("local-dir:PATH", pretrained=True)`` with clear errors for bad directories."""
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
    try:
        return timm.create_model(f"local-dir:{path}", pretrained=pretrained, **kwargs)
    except (ValueError, TypeError, KeyError, RuntimeError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"cannot load {str(path)!r}: {first}") from None


def _prepare_out_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ExportError(f"--out {str(out)!r} exists and is not empty; pass --force to overwrite it")
        shutil.rmtree(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise ExportError(f"cannot create --out {str(out)!r}: {str(parent)!r} does not exist")
    out.mkdir(parents=True, exist_ok=True)


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
