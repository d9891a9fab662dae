"""DMFormer (Wei et al., ICASSP 2023, arXiv 2209.07738) as named timm models -- UNVERIFIED reconstruction.

No official code exists and the paper's architecture table could not be read, so these models are
built from the paper's description only and no parameter or FLOP target is known.  What the
description fixes: a 4-stage vision-transformer pyramid whose token mixer is DMA (``mixers/dma.py``:
expand, 3x3/d1 + 5x5/d2 + 7x7/d3 depthwise convs, BatchNorm + ReLU, reduce, SE-style gate), each
block followed by an MLP.  Every other choice is ours:

- Skeleton: ``hybrid_metaformer`` (sail-sg MetaFormer: 7x7/stride-4 conv stem, 3x3/stride-2
  downsampling, bias-free LayerNorm pre-norm, StarReLU MLP of ratio 4, residual scaling in
  stages 3-4, MLP head with the official MetaFormer's LayerNorm eps 1e-5, as the DFFormer models),
  so that DMFormer and DFFormer differ only in the mixer.  A
  secondary reading note mentions a stem of 7x7/s2 -> 3x3/s1 -> 2x2/s2 convs; with low confidence
  and no widths for it, it is not used.
- Sizes: the MetaFormer S18/S36/M36/B36 depths and widths (the names say so).  The paper's
  DMFormer-S/-L (82.8 % / 83.6 % top-1 for v1's ConvFormer-S/-L) have unknown depths and widths.
- Mixer hyperparameters: the ``dma`` defaults (expansion 3, branches split MixConv-style, SE ratio
  0.25 on the mixer input, biases on the 1x1 convs).
- Drop path 0 and head dropout 0 by default (training arguments, as for every timm model).

=============  ============  ==================  ============================
name           depths        widths              parameters (224, 1000 cls)
=============  ============  ==================  ============================
dmformer_s18   3, 3, 9, 3    64, 128, 320, 512   31,179,372
dmformer_s36   3, 12, 18, 3  64, 128, 320, 512   47,074,560
dmformer_m36   3, 12, 18, 3  96, 192, 384, 576   67,308,328
dmformer_b36   3, 12, 18, 3  128, 256, 512, 768  118,135,504
=============  ============  ==================  ============================

Any input size works (all convolutions are "same"-padded); the parameter count does not depend on it.
"""
from typing import Any

from timm.models import generate_default_cfgs

from backbones.named_metaformer import metaformer_cfg, register_named_metaformers

__all__ = ["DMFORMER_ARCHS"]

_SIZES: dict[str, dict[str, list[int]]] = {
    "s18": dict(depths=[3, 3, 9, 3], dims=[64, 128, 320, 512]),
    "s36": dict(depths=[3, 12, 18, 3], dims=[64, 128, 320, 512]),
    "m36": dict(depths=[3, 12, 18, 3], dims=[96, 192, 384, 576]),
    "b36": dict(depths=[3, 12, 18, 3], dims=[128, 256, 512, 768]),
}
DMFORMER_ARCHS: dict[str, dict[str, Any]] = {
    f"dmformer_{size}": dict(mixers=["dma"] * 4, **arch, head_norm_eps=1e-5) for size, arch in _SIZES.items()
}

default_cfgs = generate_default_cfgs({name: metaformer_cfg(
    paper_ids="arXiv:2209.07738", paper_name="DMFormer: Closing the Gap Between CNN and Vision Transformers",
    notes=("Unverified reconstruction from the paper's description (no official code); "
           "MetaFormer skeleton and sizes chosen here.",)) for name in DMFORMER_ARCHS})


def _describe(variant: str) -> str:
    return f"DMFormer at MetaFormer size {variant.split('_')[1].upper()} (unverified: no official code)"


globals().update(register_named_metaformers(__name__, DMFORMER_ARCHS, _describe))
