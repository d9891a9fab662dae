"""HiLo attention, the token mixer of LITv2.

Paper: Pan, Cai, Zhuang, "Fast Vision Transformers with HiLo Attention", NeurIPS 2022
(arXiv 2205.13213); official code: zip-group/LITv2 (``classification/models/attentions.py``
``HiLo``; the padding variant in ``detection/mmdet/models/backbones/litv2.py``).

The heads are split in two groups with their own projections (official names and shapes,
so per-block parameter counts match the official module):

- Lo-Fi (``l_heads = int(num_heads * alpha)`` heads; ``l_q``, ``l_kv``, ``l_proj``): every
  position queries keys/values taken from the s x s average-pooled map (global, low frequency).
- Hi-Fi (the remaining heads; ``h_qkv``, ``h_proj``): attention inside non-overlapping
  s x s windows (local, high frequency).

Output channels are ``concat(Hi-Fi, Lo-Fi)``; there is no joint output projection.
``window_size == 1`` is plain multi-head self-attention (all heads Lo-Fi, no pooling), as in
LITv2's last stage.  Defaults are the LITv2 model's: head_dim 32, qkv_bias, alpha 0.9, s = 2.

Deliberate deviations:

- Any H, W.  The official classification module needs H, W divisible by s (and square maps);
  the det/seg module zero-pads right/bottom and lets the zeros take part as Hi-Fi keys/values
  and in the pooled Lo-Fi keys.  Here padded positions never act as keys: border Hi-Fi windows
  mask them out, and Lo-Fi pooling averages only the real pixels of a border cell (ceil-mode
  average pooling).  Outputs at real positions therefore depend on real inputs only, and
  equal the official module's whenever H and W are multiples of s.
- Heads are given by ``head_dim`` (``num_heads = dim // head_dim``) unless ``num_heads`` is
  passed; either way ``num_heads * head_dim`` must equal ``dim`` (the official module derives
  ``head_dim = dim / num_heads``).
- Attention runs through ``mixers._attention.attention`` (same math; windows are batched): the fused
  ``F.scaled_dot_product_attention`` kernel for large problems, two matmuls and a softmax for small
  ones on CPU (2x2 windows, Lo-Fi at 14x14 and below), where they are faster.
  The official ``attn_drop``/``proj_drop`` (accepted but unused) and ``qk_scale`` (never set
  by LITv2) are not exposed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._attention import attention


class HiLo(nn.Module):
    """Lo-Fi global attention on pooled keys + Hi-Fi window attention (NHWC in/out)."""

    def __init__(self, dim: int, *, input_size: tuple[int, int] | None = None, num_heads: int | None = None,
                 head_dim: int = 32, qkv_bias: bool = True, window_size: int = 2, alpha: float = 0.9):
        super().__init__()
        num_heads = _check_heads(dim, num_heads, head_dim)
        _check_window(window_size, input_size)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"hilo: alpha must be in [0, 1], got {alpha!r}")
        self.window_size = window_size
        self.head_dim = head_dim
        self.scale = head_dim ** -0.5
        self.l_heads = num_heads if window_size == 1 else int(num_heads * alpha)
        self.h_heads = num_heads - self.l_heads
        self.l_dim = self.l_heads * head_dim
        self.h_dim = self.h_heads * head_dim
        if self.l_heads > 0:
            self.l_q = nn.Linear(dim, self.l_dim, bias=qkv_bias)
            self.l_kv = nn.Linear(dim, 2 * self.l_dim, bias=qkv_bias)
            self.l_proj = nn.Linear(self.l_dim, self.l_dim)
        if self.h_heads > 0:
            self.h_qkv = nn.Linear(dim, 3 * self.h_dim, bias=qkv_bias)
            self.h_proj = nn.Linear(self.h_dim, self.h_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # hasattr (not the head counts): TorchScript resolves it at compile time, so a branch with no
        # heads (and no layers) is never compiled.
        if not hasattr(self, "h_qkv"):
            return self.lofi(x)
        if not hasattr(self, "l_q"):
            return self.hifi(x)
        return torch.cat((self.hifi(x), self.lofi(x)), dim=-1)

    def lofi(self, x: torch.Tensor) -> torch.Tensor:
        """Every position attends to the s x s cell means (border cells: mean of their real pixels)."""
        B, H, W, _ = x.shape
        q = self.l_q(x).reshape(B, H * W, self.l_heads, self.head_dim).transpose(1, 2)
        if self.window_size > 1:
            x = F.avg_pool2d(x.permute(0, 3, 1, 2), self.window_size, ceil_mode=True).permute(0, 2, 3, 1)
        k, v = self.l_kv(x).reshape(B, -1, 2, self.l_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        y = attention(q, k, v, self.scale)
        return self.l_proj(y.transpose(1, 2).reshape(B, H, W, self.l_dim))

    def hifi(self, x: torch.Tensor) -> torch.Tensor:
        """Attention inside each s x s window; padded positions of border windows are masked keys."""
        B, H, W, _ = x.shape
        s = self.window_size
        pad_b, pad_r = -H % s, -W % s
        qkv = self.h_qkv(x)
        if pad_b > 0 or pad_r > 0:
            qkv = F.pad(qkv, (0, 0, 0, pad_r, 0, pad_b))
        gh, gw = (H + pad_b) // s, (W + pad_r) // s
        q, k, v = (qkv.reshape(B, gh, s, gw, s, 3, self.h_heads, self.head_dim)
                   .permute(5, 0, 1, 3, 6, 2, 4, 7)
                   .reshape(3, B * gh * gw, self.h_heads, s * s, self.head_dim)
                   .unbind(0))
        mask = self._real_key_mask(H, W, B, x.device) if pad_b > 0 or pad_r > 0 else None
        y = attention(q, k, v, self.scale, attn_mask=mask)
        y = (y.reshape(B, gh, gw, self.h_heads, s, s, self.head_dim)
             .permute(0, 1, 4, 2, 5, 3, 6)
             .reshape(B, gh * s, gw * s, self.h_dim))
        return self.h_proj(y[:, :H, :W])

    def _real_key_mask(self, H: int, W: int, batch: int, device: torch.device) -> torch.Tensor:
        """(batch * windows, 1, 1, s*s) bool: True where the window's key is a real pixel."""
        s = self.window_size
        gh, gw = -(-H // s), -(-W // s)
        rows = torch.arange(gh * s, device=device) < H
        cols = torch.arange(gw * s, device=device) < W
        real = (rows[:, None] & cols[None, :]).reshape(gh, s, gw, s).transpose(1, 2).reshape(gh * gw, 1, 1, s * s)
        return real.repeat(batch, 1, 1, 1)

    def extra_repr(self) -> str:
        return (f"l_heads={self.l_heads}, h_heads={self.h_heads}, head_dim={self.head_dim}, "
                f"window_size={self.window_size}")


def _check_heads(dim: int, num_heads: int | None, head_dim: int) -> int:
    if not isinstance(head_dim, int) or head_dim < 1:
        raise ValueError(f"hilo: head_dim must be a positive int, got {head_dim!r}")
    if num_heads is None:
        if dim % head_dim or dim < head_dim:
            raise ValueError(
                f"hilo: dim {dim} must be a positive multiple of head_dim {head_dim} (num_heads = dim // head_dim)")
        return dim // head_dim
    if not isinstance(num_heads, int) or num_heads < 1 or num_heads * head_dim != dim:
        raise ValueError(
            f"hilo: num_heads * head_dim must equal dim, got num_heads={num_heads!r}, head_dim={head_dim}, dim={dim}")
    return num_heads


def _check_window(window_size: int, input_size: tuple[int, int] | None) -> None:
    if not isinstance(window_size, int) or window_size < 1:
        raise ValueError(f"hilo: window_size must be an int >= 1, got {window_size!r}")
    if input_size is not None and window_size > min(input_size):
        raise ValueError(
            f"hilo: window_size {window_size} must not exceed the build-time token grid {tuple(input_size)}")
