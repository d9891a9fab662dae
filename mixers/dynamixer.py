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
    """Mixes every row or every column of an NHWC grid with token-generated matrices (``DynaMixerOp``).

    Works on the NHWC grid directly: the column mixer does not first transpose the grid into a batch of
    columns (the official block copies the whole input for that and hands back a transposed result),
    it reads the segments column-wise in the one copy the batched product needs anyway and writes its
    output straight back in NHWC.
    """

    def __init__(self, dim: int, seq_len: int, num_segments: int, reduced_dim: int):
        super().__init__()
        self.num_segments = num_segments
        self.compress = nn.Linear(dim, num_segments * reduced_dim)
        self.generate = nn.Linear(seq_len * reduced_dim, seq_len * seq_len)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, along_h: bool) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C), mixing along H (each column) or along W (each row)."""
        B, H, W, C = x.shape
        S = self.num_segments
        L, M = (H, W) if along_h else (W, H)  # sequence length, sequences per image
        # Sequence-major orders: (B, M, S, L, ...) for the codes, (B, M, S, C/S, L) for the segments.
        codes_order = [0, 2, 3, 1, 4] if along_h else [0, 1, 3, 2, 4]
        segments_order = [0, 2, 3, 4, 1] if along_h else [0, 1, 3, 4, 2]
        back_order = [0, 4, 1, 2, 3] if along_h else [0, 1, 4, 2, 3]  # (B, M, S, C/S, L) -> NHWC
        codes = self.compress(x).view(B, H, W, S, -1).permute(codes_order).reshape(B * M, S, -1)
        # (B*M, S, L_in, L_out), softmax over the input-token index: each output is a convex combination.
        weights = self.generate(codes).view(B * M, S, L, L).softmax(dim=-2)
        segments = x.view(B, H, W, S, C // S).permute(segments_order).reshape(B * M, S, C // S, L)
        # (B*M, S, C/S, L) @ (B*M, S, L, L): out[j] = sum_i x[i] * w[i, j].  Multiplying by the matrices
        # untransposed keeps the softmax-output gradient contiguous (1.2x faster backward at 56x56).
        mixed = (segments @ weights).view(B, M, S, C // S, L)
        return self.out(mixed.permute(back_order).reshape(B, H, W, C))


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
        h = self.mix_h(x, along_h=True)
        w = self.mix_w(x, along_h=False)
        c = self.mlp_c(x)
        branch_weights = self.reweight((h + w + c).mean(dim=(1, 2))).view(B, C, 3).softmax(dim=-1)
        a_h, a_w, a_c = (branch_weights[..., i].view(B, 1, 1, C) for i in range(3))
        # Plain products, not addcmul: the branch reweighting is element-wise, which the FLOP count (like
        # the paper's) leaves out; backbones/flops counts addcmul as MACs for MSDA's attention sum.
        return self.proj(h * a_h + w * a_w + c * a_c)
