"""MetaFormer baseline token mixers: separable convolution (ConvFormer) and pooling (PoolFormer).

Paper: Yu et al., "MetaFormer Baselines for Vision", TPAMI 2024 (arXiv 2210.13452);
official code: sail-sg/metaformer (``metaformer_baselines.py``: ``SepConv``, ``Pooling``).
Both map NHWC -> NHWC.  No deliberate deviations.
"""
from __future__ import annotations

import torch
from torch import nn
from timm.models.metaformer import StarReLU


class SepConv(nn.Module):
    """Inverted separable convolution from MobileNetV2, as ConvFormer's token mixer.

    Linear(C->2C, no bias) -> StarReLU -> depthwise 7x7 -> Linear(2C->C, no bias).
    """

    def __init__(self, dim: int, *, input_size=None, expansion_ratio: float = 2, kernel_size: int = 7,
                 bias: bool = False):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"sepconv: kernel_size must be a positive odd int, got {kernel_size!r}")
        med = int(expansion_ratio * dim)
        if med < 1:
            raise ValueError(f"sepconv: expansion_ratio*dim must be >= 1, got {expansion_ratio}*{dim}")
        self.pwconv1 = nn.Linear(dim, med, bias=bias)
        self.act1 = StarReLU()
        self.dwconv = nn.Conv2d(med, med, kernel_size, padding=kernel_size // 2, groups=med, bias=bias)
        self.pwconv2 = nn.Linear(med, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.pwconv1(x))
        x = self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.pwconv2(x)


class Pooling(nn.Module):
    """PoolFormer's parameter-free mixer: ``avgpool3x3(x) - x`` (the block adds x back)."""

    def __init__(self, dim: int, *, input_size=None, pool_size: int = 3):
        super().__init__()
        if pool_size < 1 or pool_size % 2 == 0:
            raise ValueError(f"pooling: pool_size must be a positive odd int, got {pool_size!r}")
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return y - x
