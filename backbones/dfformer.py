"""DFFormer and CDFFormer (Tatsunami & Taki, AAAI 2024) as named timm models on ``hybrid_metaformer``.

The official models (okojoalg/dfformer ``models/dfformer.py``) are sail-sg's MetaFormer with the
dynamic-filter mixer: the ``hybrid_metaformer`` skeleton reproduces them exactly (same parameter
count, same logits after a weight copy), so each name here only fixes the architecture:

=============  ============  ==================  =================================  ===========
name           depths        widths              mixers per stage                   parameters
=============  ============  ==================  =================================  ===========
dfformer_s18   3, 3, 9, 3    64, 128, 320, 512   DF, DF, DF, DF                     30,324,372
dfformer_s36   3, 12, 18, 3  64, 128, 320, 512   DF, DF, DF, DF                     45,610,656
dfformer_m36   3, 12, 18, 3  96, 192, 384, 576   DF, DF, DF, DF                     65,316,064
dfformer_b36   3, 12, 18, 3  128, 256, 512, 768  DF, DF, DF, DF                    114,989,344
cdfformer_*    as above                          sepconv, sepconv, DF, DF           30,193,512 /
                                                                                    45,230,658 /
                                                                                    64,433,218 /
                                                                                   113,368,642
=============  ============  ==================  =================================  ===========

(parameters at 224x224 and 1000 classes; the filter grids, hence the count, follow ``img_size``).
Mixer hyperparameters are the official defaults (K=4 filters, expansion 2, routing ratio 0.25,
7x7 separable conv).  Residual scaling in stages 3-4, the MLP head (ratio 4, head dropout =
``drop_rate``, its LayerNorm with eps 1e-5 where timm's MetaFormer port has 1e-6) and drop path 0
by default are the official ``MetaFormer`` defaults; the official
recipe trains S18 with ``drop_path_rate=0.2`` (its README), passed at creation as for any timm model.
Pretrained-config values (bicubic, crop 1.0, ImageNet mean/std) are the official ones; no weights
are downloaded: ``url`` is empty.  An official checkpoint file loads through
``pretrained_cfg_overlay=dict(file=PATH)``: its keys are renamed by ``checkpoint_filter_fn`` and its
filter grids resized to the model's ``img_size`` by the mixer (as the official ``load_weights``).

Unlike the official classification models (``weight_resize=False``), these run at any input size:
the dynamic filter resizes its grid bicubically when the spectrum differs from the build grid.
"""
from typing import Any

import torch
from torch import nn
from timm.models import generate_default_cfgs

from backbones.named_metaformer import metaformer_cfg, register_named_metaformers

__all__ = ["DFFORMER_ARCHS", "checkpoint_filter_fn"]

_SIZES: dict[str, dict[str, list[int]]] = {
    "s18": dict(depths=[3, 3, 9, 3], dims=[64, 128, 320, 512]),
    "s36": dict(depths=[3, 12, 18, 3], dims=[64, 128, 320, 512]),
    "m36": dict(depths=[3, 12, 18, 3], dims=[96, 192, 384, 576]),
    "b36": dict(depths=[3, 12, 18, 3], dims=[128, 256, 512, 768]),
}
_MIXERS: dict[str, list[str]] = {
    "dfformer": ["dynamic_filter"] * 4,
    "cdfformer": ["sepconv", "sepconv", "dynamic_filter", "dynamic_filter"],
}
# Every registered name -> the hybrid_metaformer architecture it fixes.
DFFORMER_ARCHS: dict[str, dict[str, Any]] = {
    f"{family}_{size}": dict(mixers=mixers, **arch, head_norm_eps=1e-5)
    for family, mixers in _MIXERS.items() for size, arch in _SIZES.items()
}

default_cfgs = generate_default_cfgs({name: metaformer_cfg(
    license="apache-2.0", paper_ids="arXiv:2303.03932", paper_name="FFT-based Dynamic Token Mixer for Vision",
    origin_url="https://github.com/okojoalg/dfformer") for name in DFFORMER_ARCHS})

# Official key prefix -> ours (sail-sg MetaFormer layout -> hybrid_metaformer layout).
_RENAMES: tuple[tuple[str, str], ...] = (
    ("downsample_layers.0.conv.", "stem.conv."),
    ("downsample_layers.0.post_norm.", "stem.norm."),
    *((f"downsample_layers.{i}.pre_norm.", f"stages.{i}.downsample.norm.") for i in (1, 2, 3)),
    *((f"downsample_layers.{i}.conv.", f"stages.{i}.downsample.conv.") for i in (1, 2, 3)),
    ("norm.", "head.norm."),
    ("head.", "head.fc."),
)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Official DFFormer/CDFFormer state dict -> this layout; a state dict already in it passes unchanged."""
    state_dict = state_dict.get("state_dict", state_dict.get("model", state_dict))
    if "downsample_layers.0.conv.weight" not in state_dict:
        return state_dict
    out = {}
    for key, value in state_dict.items():
        if key.startswith("stages."):  # stages.i.j.rest -> stages.i.blocks.j.rest
            stage, block, rest = key[len("stages."):].split(".", 2)
            key = f"stages.{stage}.blocks.{block}.{rest}"
        else:
            for old, new in _RENAMES:
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
        out[key] = value
    return out


def _describe(variant: str) -> str:
    family, size = variant.split("_")
    return f"{'CDFFormer' if family == 'cdfformer' else 'DFFormer'}-{size.upper()}, as the official model"


globals().update(register_named_metaformers(__name__, DFFORMER_ARCHS, _describe, checkpoint_filter_fn))
