"""Global multi-head self-attention as used by CAFormer (MetaFormer baselines).

Paper: Yu et al., "MetaFormer Baselines for Vision", TPAMI 2024 (arXiv 2210.13452);
official code: sail-sg/metaformer ``metaformer_baselines.py`` ``Attention`` (timm:
``timm/models/metaformer.py``).  head_dim 32, ``num_heads = dim // 32`` (at least 1),
no qkv/proj bias, no positional encoding; attention runs through the fused
``F.scaled_dot_product_attention`` (on CPU, two matmuls and a softmax up to 196 x 49 token pairs,
where they are faster: ``mixers._attention``).  No deliberate deviations: like sail-sg (and unlike
timm's port), a width that is not a multiple of 32 works, with an attention width of
``num_heads * 32``.
"""
from __future__ import annotations

import torch
from torch import nn

from ._attention import attention


class Attention(nn.Module):
    """Vanilla softmax attention over all H*W tokens (NHWC in/out)."""

    def __init__(self, dim: int, *, input_size=None, head_dim: int = 32, num_heads: int | None = None,
                 qkv_bias: bool = False, proj_bias: bool = False, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if head_dim < 1:
            raise ValueError(f"mhsa: head_dim must be >= 1, got {head_dim!r}")
        self.head_dim = head_dim
        self.num_heads = num_heads if num_heads is not None else max(dim // head_dim, 1)
        if self.num_heads < 1:
            raise ValueError(f"mhsa: num_heads must be >= 1, got {num_heads!r}")
        self.attention_dim = self.num_heads * head_dim
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * self.attention_dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(self.attention_dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        N = H * W
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        y = attention(q, k, v, self.scale, dropout_p=self.attn_drop if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, H, W, self.attention_dim)
        return self.proj_drop(self.proj(y))
