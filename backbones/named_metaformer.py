"""Named, fixed-architecture timm models on the ``hybrid_metaformer`` skeleton (DFFormer, DMFormer, ...).

A named variant is ``hybrid_metaformer`` with ``mixers``/``depths``/``dims`` fixed by its name: it
is built by the same class (so one implementation serves the search and the references), with
its own ``pretrained_cfg`` and the full timm contract (``img_size``, ``in_chans``, ``num_classes``,
``features_only``, ``local-dir`` export).  The factory arguments timm records for export are only
what the caller passed, so a saved variant reloads by name.
"""
from typing import Any, Callable, Sequence

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, register_model

from backbones.hybrid_metaformer import HybridMetaFormer, stage_input_sizes

__all__ = ["ARCH_KEYS", "metaformer_cfg", "create_named_metaformer", "register_named_metaformers"]

# Arguments a name fixes (the caller may not override them).
ARCH_KEYS: frozenset[str] = frozenset({"mixers", "depths", "dims", "mixer_kwargs", "head_norm_eps"})

FilterFn = Callable[[dict[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]]


def metaformer_cfg(**kwargs: Any) -> dict:
    """Default pretrained config of a named variant at 224 (no weights: ``url`` is empty)."""
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 1.0, "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.conv", "classifier": "head.fc.fc2", **kwargs,
    }


def create_named_metaformer(variant: str, arch: dict[str, Any], pretrained: bool = False,
                            filter_fn: FilterFn | None = None, **kwargs: Any) -> HybridMetaFormer:
    """Build ``variant`` = ``hybrid_metaformer(**arch, **kwargs)`` under the variant's pretrained config."""
    fixed = sorted(set(kwargs) & ARCH_KEYS)
    if fixed:
        raise ValueError(f"{variant}: {fixed} are fixed by the model name; use "
                         f"timm.create_model('hybrid_metaformer', ...) for other architectures")
    img_size = kwargs.get("img_size", 224)
    h, w = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
    overlay = {"input_size": (kwargs.get("in_chans", 3), h, w),
               "pool_size": stage_input_sizes((h, w), len(arch["mixers"]))[-1],
               **(kwargs.pop("pretrained_cfg_overlay", None) or {})}
    return build_model_with_cfg(
        HybridMetaFormer, variant, pretrained,
        pretrained_cfg_overlay=overlay,
        pretrained_filter_fn=filter_fn,
        feature_cfg=dict(out_indices=tuple(range(len(arch["mixers"]))), flatten_sequential=True),
        **arch, **kwargs,
    )


def register_named_metaformers(module_name: str, archs: dict[str, dict[str, Any]],
                               describe: Callable[[str], str], filter_fn: FilterFn | None = None,
                               ) -> dict[str, Callable[..., HybridMetaFormer]]:
    """Register one timm entrypoint per name in ``archs``; they live in ``module_name`` (which must
    define ``default_cfgs`` for every name first, as timm's ``register_model`` reads it there)."""
    entrypoints = {}
    for variant, arch in archs.items():
        entrypoints[variant] = register_model(_entrypoint(module_name, variant, arch, describe(variant), filter_fn))
    return entrypoints


def _entrypoint(module_name: str, variant: str, arch: dict[str, Any], doc: str,
                filter_fn: FilterFn | None) -> Callable[..., HybridMetaFormer]:
    def create(pretrained: bool = False, **kwargs: Any) -> HybridMetaFormer:
        return create_named_metaformer(variant, arch, pretrained, filter_fn, **kwargs)

    create.__name__ = create.__qualname__ = variant
    create.__module__ = module_name
    create.__doc__ = f"{doc} (mixers {_fmt(arch['mixers'])}, depths {arch['depths']}, widths {arch['dims']})."
    return create


def _fmt(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]"
