"""The official mixer modules, loaded from a directory the user provides, built to match ours.

The repository never contains official code.  ``--official-dir DIR`` of ``python -m benchmarks.mixers``
names a scratch directory holding the official classes, one file per source repository (copy the
classes named below from a checkout; imports may need updating for current timm, e.g.
``timm.models.layers.helpers.to_2tuple`` -> ``timm.layers.to_2tuple``):

| file | source repository, path | classes used |
|---|---|---|
| ``dfformer.py`` | okojoalg/dfformer ``models/dfformer.py`` | ``DynamicFilter`` |
| ``litv2.py`` | zip-group/LITv2 ``classification/models/attentions.py`` | ``HiLo`` |
| ``litv2_det.py`` | zip-group/LITv2 ``detection/mmdet/models/backbones/litv2.py`` | ``HiLo`` (padding version) |
| ``dilateformer.py`` | JIAOJIAYUASD/dilateformer ``models/dilateformer.py`` | ``MultiDilatelocalAttention`` |
| ``dynamixer.py`` | ziyuwwang/DynaMixer ``models/dynamixer.py`` (+ ``Mlp`` of ``models/utils.py``) | ``DynaMixerBlock`` |
| ``metaformer_baselines.py`` | sail-sg/metaformer ``metaformer_baselines.py`` | ``Attention``, ``SepConv``, ``Pooling`` |

Each official module is built with the hyperparameters our mixer uses by default, and our weights are
copied into it (same parameter names; MSDA's 1x1-conv qkv takes our linear weight reshaped), so a
comparison can first check that both compute the same function.  A missing file or class skips that
mixer with the reason.

One official module needs a one-line fix to run forward+backward in float32: DilateFormer's
``MultiDilatelocalAttention.forward`` writes each head group's result into a view of its *input*
(``x[i] = ...``), which the 1x1 qkv convolution saved for backward (the official training ran under
AMP, where the convolution saves a half-precision copy instead, so it never failed there).  In the
scratch copy, write into a fresh tensor of the same layout instead:
``x = torch.empty_like(x).reshape(B, self.num_dilation, ...)`` (same cost; the values are unchanged).  The classification HiLo needs H, W divisible by its window; where they are not,
the detection/segmentation HiLo (zero padding) stands in, whose border outputs differ from ours by
design (ours masks the padding; see ``mixers/hilo.py``).
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

__all__ = ["OFFICIAL_MIXERS", "OfficialMixer", "build_official", "copy_weights"]


class _TokensToNHWC(nn.Module):
    """Runs an official module that takes ``(B, N, C)`` tokens (plus ``H, W`` for the padding HiLo) on NHWC."""

    def __init__(self, module: nn.Module, pass_hw: bool):
        super().__init__()
        self.module = module
        self.pass_hw = pass_hw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        tokens = x.reshape(B, H * W, C)
        out = self.module(tokens, H, W) if self.pass_hw else self.module(tokens)
        return out.reshape(B, H, W, -1)


def _hilo_heads(dim: int) -> dict:
    return {"num_heads": dim // 32, "qkv_bias": True, "window_size": 2, "alpha": 0.9}


def _build_hilo(load: Callable[[str, str], type], dim: int, size: int) -> tuple[nn.Module, str]:
    if size % 2 == 0:
        return _TokensToNHWC(load("litv2.py", "HiLo")(dim, **_hilo_heads(dim)), pass_hw=False), ""
    note = "official classification HiLo needs H, W divisible by 2: detection HiLo (zero padding) used"
    return _TokensToNHWC(load("litv2_det.py", "HiLo")(dim, **_hilo_heads(dim)), pass_hw=True), note


@dataclass(frozen=True)
class OfficialMixer:
    """How to build the official counterpart of one of our mixers at ``(dim, size)``."""

    mixer: str
    source: str
    build: Callable[[Callable[[str, str], type], int, int], tuple[nn.Module, str]]
    exact: Callable[[int], bool] = lambda size: True  # same function as ours at this size?


def _plain(file: str, cls: str, **kwargs: Callable[[int, int], object]) -> Callable:
    def build(load: Callable[[str, str], type], dim: int, size: int) -> tuple[nn.Module, str]:
        return load(file, cls)(dim, **{k: f(dim, size) for k, f in kwargs.items()}), ""
    return build


OFFICIAL_MIXERS: dict[str, OfficialMixer] = {m.mixer: m for m in (
    OfficialMixer("dynamic_filter", "okojoalg/dfformer DynamicFilter",
                  _plain("dfformer.py", "DynamicFilter", size=lambda d, s: s)),
    OfficialMixer("hilo", "zip-group/LITv2 HiLo", _build_hilo, exact=lambda size: size % 2 == 0),
    OfficialMixer("msda", "JIAOJIAYUASD/dilateformer MultiDilatelocalAttention",
                  _plain("dilateformer.py", "MultiDilatelocalAttention",
                         num_heads=lambda d, s: d // 32, qkv_bias=lambda d, s: True)),
    OfficialMixer("dynamixer", "ziyuwwang/DynaMixer DynaMixerBlock",
                  _plain("dynamixer.py", "DynaMixerBlock", resolution=lambda d, s: s,
                         num_head=lambda d, s: 8 if d < 256 else 16, reduced_dim=lambda d, s: 2)),
    OfficialMixer("mhsa", "sail-sg/metaformer Attention", _plain("metaformer_baselines.py", "Attention")),
    OfficialMixer("sepconv", "sail-sg/metaformer SepConv", _plain("metaformer_baselines.py", "SepConv")),
    OfficialMixer("pooling", "sail-sg/metaformer Pooling",
                  lambda load, d, s: (load("metaformer_baselines.py", "Pooling")(), "")),
)}


class _Loader:
    """Imports ``DIR/<file>`` once under a private module name (never shadows an installed package)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.modules: dict[str, object] = {}

    def __call__(self, file: str, cls: str) -> type:
        path = self.directory / file
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        if file not in self.modules:
            name = f"_official_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            self.modules[file] = module
        try:
            return getattr(self.modules[file], cls)
        except AttributeError:
            raise FileNotFoundError(f"{path} has no class {cls}") from None


_loaders: dict[Path, _Loader] = {}


def build_official(name: str, directory: Path, dim: int, size: int) -> tuple[nn.Module, str]:
    """The official module for our mixer ``name`` at ``(dim, size)`` (NHWC in/out) and a note.

    Raises ``KeyError`` for a mixer without official code, ``FileNotFoundError`` when the file or class
    is missing from ``directory``.
    """
    loader = _loaders.setdefault(directory, _Loader(directory))
    return OFFICIAL_MIXERS[name].build(loader, dim, size)


def copy_weights(ours: nn.Module, official: nn.Module) -> None:
    """Load our parameters into the official module by name (reshaped where only the shape differs)."""
    ours_state = ours.state_dict()
    target = official.state_dict()
    prefix = "module." if isinstance(official, _TokensToNHWC) else ""
    loaded = {}
    for key, value in target.items():
        source = ours_state.get(key[len(prefix):] if key.startswith(prefix) else key)
        if source is None or source.numel() != value.numel():
            raise ValueError(f"official parameter {key} {tuple(value.shape)} has no counterpart in ours")
        loaded[key] = source.reshape(value.shape)
    official.load_state_dict(loaded, strict=True)
