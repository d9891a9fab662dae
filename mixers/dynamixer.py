"""DynaMixer: token mixing with mixing matrices generated from the tokens themselves.

Paper: Wang et al., "DynaMixer: A Vision MLP Architecture with Dynamic Mixing", ICML 2022
(arXiv 2201.12083); official code: ziyuwwang/DynaMixer ``models/dynamixer.py``
(``DynaMixerOp``, ``DynaMixerBlock``).

Each row and each column of the token grid is mixed by a matrix computed from it: the
tokens are compressed to ``num_segments`` x ``reduced_dim`` numbers, one shared linear layer
turns each segment's ``L x reduced_dim`` values into an ``L x L`` matrix, softmax runs over
the input-token index (as in the official code), and each segment's ``C / num_segments``
channels are mixed by its own matrix.  The row, column and channel (``mlp_c``) branches are
fused by the official ViP split attention (per-channel softmax over the three branches)
and projected.  Parameters match the official block (seed_mixers.md section G).

Deliberate deviations:
- Non-square grids: the column mixer is built for ``L = H`` and the row mixer for ``L = W``
  (the official block builds both for one ``resolution`` and so runs only on square maps).
- ``num_segments`` defaults by width (8 below 256 channels, else 16, the official S/M/L
  configs) and ``reduced_dim`` is a hyperparameter (the official block hard-codes 2).
- A size other than the build-time ``input_size`` raises a ``ValueError`` instead of failing
  inside a reshape.
"""
from __future__ import annotations

import torch
from torch import nn
from timm.layers import Mlp


class DynamicSequenceMixer(nn.Module):
    """Mixes a batch of length-``seq_len`` sequences (B', L, C) with token-generated matrices (``DynaMixerOp``)."""

    def __init__(self, dim: int, seq_len: int, num_segments: int, reduced_dim: int):
        super().__init__()
        self.num_segments = num_segments
        self.compress = nn.Linear(dim, num_segments * reduced_dim)
        self.generate = nn.Linear(seq_len * reduced_dim, seq_len * seq_len)
        self.out = nn.Linear(dim, dim)

    def mixing_matrices(self, x: torch.Tensor) -> torch.Tensor:
        """(B', L, C) -> (B', S, L_in, L_out), each column a convex combination weight vector."""
        B, L, _ = x.shape
        codes = self.compress(x).view(B, L, self.num_segments, -1).transpose(1, 2).flatten(2)
        return self.generate(codes).view(B, self.num_segments, L, L).softmax(dim=-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        weights = self.mixing_matrices(x)
        # (B', S, C/S, L) @ (B', S, L, L): out[j] = sum_i x[i] * w[i, j].  Multiplying by the matrices
        # untransposed keeps the softmax-output gradient contiguous (1.2x faster backward at 56x56).
        segments = x.view(B, L, self.num_segments, C // self.num_segments).permute(0, 2, 3, 1)
        mixed = segments @ weights
        return self.out(mixed.permute(0, 3, 1, 2).reshape(B, L, C))


class DynaMixer(nn.Module):
    """DynaMixer block mixer on NHWC tokens for a fixed (H, W) grid."""

    def __init__(self, dim: int, *, input_size: tuple[int, int] | None, num_segments: int | None = None,
                 reduced_dim: int = 2, qkv_bias: bool = False):
        super().__init__()
        if input_size is None:
            raise ValueError("dynamixer: input_size=(H, W) is required (the mixing-matrix generators depend on it)")
        height, width = (int(s) for s in input_size)
        if num_segments is None:
            num_segments = 8 if dim < 256 else 16
        if not isinstance(num_segments, int) or num_segments < 1 or dim % num_segments:
            raise ValueError(f"dynamixer: num_segments must be a positive int dividing dim={dim}, got {num_segments!r}")
        if not isinstance(reduced_dim, int) or reduced_dim < 1:
            raise ValueError(f"dynamixer: reduced_dim must be a positive int, got {reduced_dim!r}")
        self.input_size = (height, width)
        self.mix_h = DynamicSequenceMixer(dim, height, num_segments, reduced_dim)
        self.mix_w = DynamicSequenceMixer(dim, width, num_segments, reduced_dim)
        self.mlp_c = nn.Linear(dim, dim, bias=qkv_bias)
        self.reweight = Mlp(dim, dim // 4, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        if (H, W) != self.input_size:
            raise ValueError(f"dynamixer: built for input_size (H, W)={self.input_size}, got (H, W)={(H, W)}")
        h = self.mix_h(x.transpose(1, 2).reshape(B * W, H, C)).view(B, W, H, C).transpose(1, 2)
        w = self.mix_w(x.reshape(B * H, W, C)).view(B, H, W, C)
        c = self.mlp_c(x)
        branch_weights = self.reweight((h + w + c).mean(dim=(1, 2))).view(B, C, 3).softmax(dim=-1)
        a_h, a_w, a_c = (branch_weights[..., i].view(B, 1, 1, C) for i in range(3))
        return self.proj(h * a_h + w * a_w + c * a_c)
