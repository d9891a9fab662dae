"""Multi-Scale Dilated Attention (MSDA), the local token mixer of DilateFormer.

Paper: Jiao et al., "DilateFormer: Multi-Scale Dilated Transformer for Visual Recognition",
IEEE TMM 2023 (arXiv 2302.01791); official code: JIAOJIAYUASD/dilateformer
``models/dilateformer.py`` (``MultiDilatelocalAttention``, ``DilateAttention``).

Every query attends to the ``kernel_size x kernel_size`` neighbourhood sampled with its
head's dilation; the heads are split into one group per dilation (default 1, 2, 3:
receptive fields 3x3, 5x5, 7x7).  As in the official code, neighbours outside the map are
zero keys and values that are *not* masked: each takes softmax mass with logit 0.
Channel layout, scale (per-head width ** -0.5) and parameters (``4C^2 + 4C``) follow the
official module.

Deliberate deviations:
- Heads per group.  The official code needs ``num_heads % len(dilation) == 0``, which rules
  out the MetaFormer widths 64/128/320/512.  Here the heads (each ``dim // num_heads``
  channels, in channel order) are dealt out as evenly as possible, the first groups taking
  the extra heads: 128 channels -> 4 heads -> dilations (1, 2, 3) get (2, 1, 1) heads.  With
  fewer heads than dilations only the first ``num_heads`` dilations are used (64 channels ->
  2 heads -> dilations (1, 2)).  Where the official code runs this is exactly its split.
- ``num_heads`` defaults to ``dim // head_dim`` (head_dim 32, the paper's 3 heads per 96
  channels) instead of a fixed 8.
- The qkv projection is an ``nn.Linear`` on NHWC, the same map as the official 1x1
  ``Conv2d`` on NCHW (its weight is the conv weight without the trailing 1x1).
- No ``nn.Unfold``: the neighbourhood is visited one offset at a time through slices of a
  zero-padded key/value map, so the 9x unfolded keys and values are never materialised
  (same result; faster and leaner on CPU).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class DilationGroup(NamedTuple):
    """A contiguous run of heads that share one dilation; channels ``[start, stop)`` of q, k and v."""

    dilation: int
    num_heads: int
    start: int
    stop: int


def split_heads_over_dilations(num_heads: int, head_dim: int, dilation: Sequence[int]) -> tuple[DilationGroup, ...]:
    """Deal ``num_heads`` heads over the dilations as evenly as possible, earlier dilations first."""
    num_groups = min(num_heads, len(dilation))
    base, extra = divmod(num_heads, num_groups)
    groups, start = [], 0
    for index, rate in enumerate(dilation[:num_groups]):
        heads = base + (index < extra)
        groups.append(DilationGroup(rate, heads, start, start + heads * head_dim))
        start += heads * head_dim
    return tuple(groups)


def dilated_local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int,
                            dilation: int, kernel_size: int) -> torch.Tensor:
    """Attention of every pixel over its dilated ``kernel_size^2`` neighbourhood; NHWC in/out.

    ``q`` must already carry the softmax scale.  Outside the map keys and values are zeros
    and stay unmasked (the official border semantics).
    """
    B, H, W, _ = q.shape
    pad = dilation * (kernel_size // 2)
    k = F.pad(k, (0, 0, pad, pad, pad, pad))
    v = F.pad(v, (0, 0, pad, pad, pad, pad))
    corners: list[tuple[int, int]] = []
    for i in range(kernel_size):
        for j in range(kernel_size):
            corners.append((i * dilation, j * dilation))

    # Heads split with a view, not unflatten: fvcore ignores aten::view.  Plain loops (no generators
    # or closures) keep this TorchScript-compatible.
    q = q.view(B, H, W, num_heads, -1)
    # vecdot/addcmul rather than mul+sum: fvcore records them as ops that can be given MAC counts.
    logits_list: list[torch.Tensor] = []
    for y, x in corners:
        logits_list.append(torch.linalg.vecdot(q, k[:, y:y + H, x:x + W].view(B, H, W, num_heads, -1)))
    logits = torch.stack(logits_list, dim=-1)
    attn = logits.softmax(dim=-1)  # (B, H, W, heads, kernel_size^2)
    out = torch.zeros_like(q)
    for n, (y, x) in enumerate(corners):
        out = torch.addcmul(out, attn[..., n, None], v[:, y:y + H, x:x + W].view(B, H, W, num_heads, -1))
    return out.flatten(-2)


class MultiScaleDilatedAttention(nn.Module):
    """DilateFormer's MSDA on NHWC tokens: one dilated local attention per head group, then a projection."""

    def __init__(self, dim: int, *, input_size: tuple[int, int] | None = None, num_heads: int | None = None,
                 head_dim: int = 32, kernel_size: int = 3, dilation: Sequence[int] = (1, 2, 3),
                 qkv_bias: bool = True):
        super().__init__()
        derived = num_heads is None
        if derived:
            if not isinstance(head_dim, int) or head_dim < 1:
                raise ValueError(f"msda: head_dim must be a positive int, got {head_dim!r}")
            num_heads = max(dim // head_dim, 1)
        if not isinstance(num_heads, int) or num_heads < 1 or dim % num_heads:
            source = f" (= dim // head_dim = {dim} // {head_dim})" if derived else ""
            raise ValueError(f"msda: num_heads must be a positive int dividing dim={dim}, got {num_heads!r}{source}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"msda: kernel_size must be a positive odd int, got {kernel_size!r}")
        dilation = tuple(dilation)
        if not dilation or not all(isinstance(r, int) and r >= 1 for r in dilation):
            raise ValueError(f"msda: dilation must be a non-empty sequence of positive ints, got {dilation!r}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.kernel_size = kernel_size
        self.scale = self.head_dim ** -0.5
        self.groups = split_heads_over_dilations(num_heads, self.head_dim, dilation)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q * self.scale
        outs: list[torch.Tensor] = []
        # Unpacked by position: TorchScript sees the DilationGroup attributes as plain tuples.
        for dilation, heads, start, stop in self.groups:
            outs.append(dilated_local_attention(q[..., start:stop], k[..., start:stop], v[..., start:stop],
                                                heads, dilation, self.kernel_size))
        out = torch.cat(outs, dim=-1)
        return self.proj(out)
