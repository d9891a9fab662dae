"""Name -> mixer class registry and the single construction entry point."""
from __future__ import annotations

import importlib
import inspect
from typing import Any

import torch
from torch import nn

# One line per mixer: registered name -> "module:Class" (imported lazily).
_MIXER_CLASSES: dict[str, str] = {
    "dynamic_filter": "mixers.dynamic_filter:DynamicFilter",
    "dma": "mixers.dma:DynamicMultiLevelAttention",
    "hilo": "mixers.hilo:HiLo",
    "msda": "mixers.msda:MultiScaleDilatedAttention",
    "dynamixer": "mixers.dynamixer:DynaMixer",
    "mhsa": "mixers.mhsa:Attention",
    "sepconv": "mixers.baselines:SepConv",
    "pooling": "mixers.baselines:Pooling",
}

MIXER_NAMES: tuple[str, ...] = tuple(_MIXER_CLASSES)
# The six seed-paper mixers the flagship search space chooses from.
PAPER_MIXER_NAMES: tuple[str, ...] = ("dynamic_filter", "dma", "hilo", "msda", "dynamixer", "mhsa")


def get_mixer_class(name: str) -> type[nn.Module]:
    """Return the class registered under ``name`` (ValueError naming the choices otherwise)."""
    try:
        target = _MIXER_CLASSES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown mixer {name!r}; registered mixers: {', '.join(MIXER_NAMES)}"
        ) from None
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    _mark_fx_leaf(cls)
    return cls


def create_mixer(name: str, dim: int, input_size: tuple[int, int] | None = None, **hparams: Any) -> nn.Module:
    """Build mixer ``name`` for ``dim`` channels; NHWC in, NHWC out.

    Invalid hyperparameters raise ``ValueError`` naming the mixer, the value and the rule.
    """
    cls = get_mixer_class(name)
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise ValueError(f"{name}: dim must be a positive int, got {dim!r}")
    if input_size is not None:
        input_size = _as_hw(name, input_size)
    accepted = inspect.signature(cls.__init__).parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in hparams if k not in accepted and not takes_kwargs]
    if unknown:
        allowed = [k for k in accepted if k not in ("self", "dim", "input_size")]
        raise ValueError(f"{name}: unknown hyperparameter(s) {unknown}; accepted: {allowed}")
    return cls(dim, input_size=input_size, **hparams)


def validate_mixer(name: str, dim: int, input_size: tuple[int, int] | None = None, **hparams: Any) -> None:
    """Raise ValueError if the mixer cannot be built; allocates nothing (meta device)."""
    with torch.device("meta"):
        create_mixer(name, dim, input_size=input_size, **hparams)


def _as_hw(name: str, input_size: Any) -> tuple[int, int]:
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: input_size must be (H, W), got {input_size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{name}: input_size must be positive, got {input_size!r}")
    return h, w


def _mark_fx_leaf(cls: type[nn.Module]) -> None:
    """Mixers may branch on the runtime H, W (padding, size checks); torch.fx must treat them as leaves."""
    from timm.layers import register_notrace_module

    if not getattr(cls, "_fx_leaf_registered", False):
        register_notrace_module(cls)
        cls._fx_leaf_registered = True
