"""The seed papers' official whole models, loaded from a scratch directory the user provides.

The repository never contains official code.  ``--official-dir DIR`` of ``python -m benchmarks.models``
names a directory holding one checkout (or copy) per source repository, in the repository's own layout:

| ``DIR/...`` | source repository (folder copied) | entry point used |
|---|---|---|
| ``litv2/`` | zip-group/LITv2 ``classification/`` | ``models.litv2.LITv2`` (configs ``litv2-{small,medium,base}.yaml``) |
| ``dilateformer/`` | JIAOJIAYUASD/dilateformer (``models/``) | ``models.dilateformer.dilateformer_{tiny,small,base}`` |
| ``dfformer/`` | okojoalg/dfformer (``models/``) | ``models.dfformer.{c,}dfformer_{s18,s36,m36,b36}`` |
| ``dynamixer/`` | ziyuwwang/DynaMixer (``models/``) | ``models.configs.conf_dynamixer.dynamixer_{s,m,l}`` |

Three edits make the official code run on current PyTorch/timm on a CPU; make them in the scratch copy:

1. LITv2's deformable token merging calls a CUDA-only extension (``mm_modules/DCN``, built with
   ``setup.py``, importing apex).  Replace ``mm_modules/DCN/functions/__init__.py`` and
   ``deform_conv2d_func.py`` by a ``DeformConv2dFunction`` whose ``apply(input, offset, weight, bias,
   stride, padding, dilation, groups, deformable_groups, im2col_step)`` returns
   ``torchvision.ops.deform_conv2d(input, offset, weight, bias, stride=..., padding=..., dilation=...)``
   (same sampling and offset layout; it is also the operator ours uses, so LITv2's merge costs the same
   on both sides).
2. DilateFormer's ``MultiDilatelocalAttention.forward`` writes each dilation group's output into a view
   of its own input (``x[i] = ...``), which the 1x1 qkv convolution saved for backward, so float32
   backward fails with an autograd version error.  Write into a fresh tensor of the same layout:
   ``x = torch.empty_like(x).reshape(B, self.num_dilation, ...)`` (same values, same cost).
3. DFFormer imports ``to_2tuple`` from ``timm.models.layers.helpers`` (gone from timm 1.0): import it
   from ``timm.layers``.

The official files also register their models with timm under the names ours use; the loader imports
them with timm's ``register_model`` made a no-op, so the official entry points never replace ours.
Every official ``models`` package is imported under its own root and then removed from ``sys.modules``,
so the four repositories' same-named packages do not collide.
"""
from __future__ import annotations

import contextlib
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import timm
import timm.models.registry
import torch
from torch import nn

import backbones.dfformer
import backbones.dilateformer
import backbones.dynamixer_net
import backbones.litv2

__all__ = ["OFFICIAL_MODELS", "OfficialModel", "build_official", "load_official_weights"]

FilterFn = Callable[[dict[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class OfficialModel:
    """How to build the official counterpart of one of our named models (stochastic depth off on both)."""

    name: str  # our timm name
    source: str  # repository and entry point
    folder: str  # under --official-dir
    module: str  # imported with ``folder`` first on sys.path
    build: Callable[[ModuleType], nn.Module]
    filter_fn: FilterFn  # official state dict -> ours


_LITV2 = {  # classification/configs/litv2-*.yaml (alpha 0.9, windows 0/0/2/1, qkv bias)
    "litv2_s": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
    "litv2_m": dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24]),
    "litv2_b": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
}


def _litv2(name: str) -> OfficialModel:
    def build(module: ModuleType) -> nn.Module:
        return module.LITv2(**_LITV2[name], alpha=0.9, local_ws=[0, 0, 2, 1], qkv_bias=True, drop_path_rate=0.0)
    return OfficialModel(name, "zip-group/LITv2 classification/models/litv2.py LITv2", "litv2", "models.litv2",
                         build, backbones.litv2.checkpoint_filter_fn)


def _entry(name: str, source: str, folder: str, module: str, function: str, filter_fn: FilterFn,
           **kwargs: Any) -> OfficialModel:
    def build(loaded: ModuleType) -> nn.Module:
        return getattr(loaded, function)(pretrained=False, **kwargs)
    return OfficialModel(name, f"{source} {function}", folder, module, build, filter_fn)


OFFICIAL_MODELS: dict[str, OfficialModel] = {m.name: m for m in (
    *(_litv2(n) for n in _LITV2),
    *(_entry(n, "JIAOJIAYUASD/dilateformer models/dilateformer.py", "dilateformer", "models.dilateformer", n,
             backbones.dilateformer.checkpoint_filter_fn, drop_path=0.0)
      for n in ("dilateformer_tiny", "dilateformer_small", "dilateformer_base")),
    *(_entry(n, "okojoalg/dfformer models/dfformer.py", "dfformer", "models.dfformer", n,
             backbones.dfformer.checkpoint_filter_fn, drop_path_rate=0.0)
      for n in (f"{f}_{s}" for f in ("dfformer", "cdfformer") for s in ("s18", "s36", "m36", "b36"))),
    *(_entry(n, "ziyuwwang/DynaMixer models/configs/conf_dynamixer.py", "dynamixer",
             "models.configs.conf_dynamixer", n, backbones.dynamixer_net.checkpoint_filter_fn, drop_path_rate=0.0)
      for n in ("dynamixer_s", "dynamixer_m", "dynamixer_l")),
)}

_modules: dict[tuple[Path, str], ModuleType] = {}


@contextlib.contextmanager
def _isolated_import(root: Path) -> Iterator[None]:
    """``root`` first on sys.path, timm registration off; afterwards the packages it brought are forgotten."""
    before = set(sys.modules)
    sys.path.insert(0, str(root))
    register = timm.models.registry.register_model
    timm.models.registry.register_model = lambda fn: fn
    try:
        yield
    finally:
        timm.models.registry.register_model = register
        sys.path.remove(str(root))
        for name in set(sys.modules) - before:
            if name.split(".")[0] in ("models", "mm_modules"):
                del sys.modules[name]


def _load(directory: Path, spec: OfficialModel) -> ModuleType:
    root = directory / spec.folder
    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found (see benchmarks/official_models.py for the layout)")
    key = (root, spec.module)
    if key not in _modules:
        with _isolated_import(root):
            _modules[key] = importlib.import_module(spec.module)
    return _modules[key]


def build_official(name: str, directory: Path) -> nn.Module:
    """The official model for our ``name``; KeyError if it has none, FileNotFoundError if not in ``directory``."""
    spec = OFFICIAL_MODELS[name]
    torch.manual_seed(0)
    return spec.build(_load(directory, spec))


def load_official_weights(ours: nn.Module, official: nn.Module, name: str) -> None:
    """Give ours the official model's weights through our checkpoint converter (strict: every key maps)."""
    converted = OFFICIAL_MODELS[name].filter_fn(official.state_dict(), ours)
    ours.load_state_dict(converted, strict=True)
