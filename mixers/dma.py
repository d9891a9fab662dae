"""DMA: Dynamic Multi-level Attention, the token mixer of DMFormer.

Paper: Wei, Pan, Li, Lu, Niu, Dong, Li, "DMFormer: Closing the Gap Between CNN and Vision Transformers",
ICASSP 2023 (arXiv 2209.07738v3; v1/v2 were titled "ConvFormer: ..." and called the mixer MCA).
Official repository: none (the abstract promises code; none has been published).

What the paper's descriptions fix (abstract, v1 text, secondary notes; the project's seed-mixer
reference report, section C2): a 1x1 conv expands the channels by a factor N; parallel depthwise
convolutions with kernels 3x3 (dilation 1), 5x5 (dilation 2) and 7x7 (dilation 3) capture several
"levels"; BatchNorm + ReLU; a 1x1 conv reduces back to C; an input-adaptive SE-style gate
``sigmoid(FC(ReLU(FC(GAP(X)))))`` multiplies the result per channel.  The full PDF text was not
reachable, so every remaining choice below is ours; all of them are constructor arguments::

    x (B,H,W,C) --expand (1x1, C->E, E = int(expansion_ratio*C))--> e
    e --depthwise k_i x k_i, dilation d_i, "same" padding (i = 1..3), fused by `fuse`--> m
    m --BatchNorm2d--> ReLU --reduce (1x1, ->C)--> y
    g = sigmoid(fc2(ReLU(fc1(mean_HW(x or y)))))          # (B, C), hidden = max(1, int(se_ratio*C))
    out = y * g                                            # (B,H,W,C)

Open choices and the defaults taken:

- Branch fusion, ``fuse``:
  ``"split"`` (default) -- MixConv-style: the E expanded channels are split into one group per kernel
  (equal groups, remainder to the first, as MixConv's ``_split_channels``), each group gets its own
  kernel, the groups are concatenated (E channels).  Chosen because v1 motivates the multi-kernel design
  by Tan & Le 2019b (MixConv: mixing kernel sizes improves accuracy *and efficiency*), which only the
  split form delivers, and with the default N=3 each kernel sees C channels.
  ``"sum"`` -- every kernel sees all E channels, outputs added (E channels).
  ``"concat"`` -- every kernel sees all E channels, outputs concatenated (len(kernels)*E channels).
- Expansion factor N, ``expansion_ratio``: 3 (one C-wide group per kernel under "split"; MixNet's
  MBConv ratios are 3 and 6).  Parameters then come to ~6.5*C^2, next to DFFormer's 6.25*C^2.
- Gate reduction, ``se_ratio``: hidden width ``max(1, int(se_ratio*C))``, default 0.25 (as
  EfficientNet/MixNet SE and DFFormer's routing MLP; classic SE's r=16 is ``se_ratio=1/16``).
  Both FCs have biases; they are Linear layers on the pooled vector (== 1x1 convs on a 1x1 map).
- Where the gate's GAP is taken, ``gate_input``: ``"input"`` (default, the mixer input X, as the
  described V = ReLU(FC(GAP(X)))) or ``"output"`` (classic SE on the reduced features y).
- BatchNorm placement: one BatchNorm2d + ReLU after the fused depthwise output (per channel, so for
  "split"/"concat" it equals one BN per branch); no norm or activation after the expand conv and none
  after the reduce conv (none is described).
- Biases, ``bias``: the 1x1 expand/reduce convs have biases (PyTorch's conv default; default True);
  depthwise convs never do (BatchNorm follows them).
- Kernels/dilations, ``kernel_sizes``/``dilations``: (3, 5, 7) / (1, 2, 3) as described.

Implementation notes: the mixer takes and returns NHWC.  The 1x1 convs are ``nn.Linear`` over the
channel dim of the NHWC tensor (mathematically identical to 1x1 convs, without layout copies); the
depthwise convs and BatchNorm run on an NCHW view of that tensor (channels_last memory, no copy).
Any H, W works ("same" padding); as with any BatchNorm, training mode needs more than one value
per channel (B*H*W > 1).  The mixer ignores ``input_size`` (validated only).  No other deviations
(there is no code to deviate from).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["DynamicMultiLevelAttention", "split_channels"]

_NAME = "dma"
_FUSE_MODES = ("split", "sum", "concat")
_GATE_INPUTS = ("input", "output")


def split_channels(total: int, num_groups: int) -> list[int]:
    """MixConv's channel split: equal groups, the remainder added to the first group."""
    split = [total // num_groups] * num_groups
    split[0] += total - sum(split)
    return split


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    try:
        out = tuple(value)
    except TypeError:
        raise ValueError(f"{_NAME}: {what} must be a sequence of ints, got {value!r}") from None
    if not out or any(isinstance(v, bool) or not isinstance(v, int) for v in out):
        raise ValueError(f"{_NAME}: {what} must be a non-empty sequence of ints, got {value!r}")
    return out


class DynamicMultiLevelAttention(nn.Module):
    """DMFormer's DMA mixer: expand -> multi-kernel dilated depthwise convs -> BN/ReLU -> reduce, SE-gated."""

    def __init__(self, dim: int, *, input_size: int | tuple[int, int] | None = None,
                 expansion_ratio: float = 3, se_ratio: float = 0.25, fuse: str = "split",
                 gate_input: str = "input", kernel_sizes: Sequence[int] = (3, 5, 7),
                 dilations: Sequence[int] = (1, 2, 3), bias: bool = True):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"{_NAME}: dim must be a positive int, got {dim!r}")
        if input_size is not None:  # unused (any H, W works); validated for a uniform interface
            hw = (input_size, input_size) if isinstance(input_size, int) else input_size
            try:
                ok = len(hw) == 2 and all(int(v) >= 1 for v in hw)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{_NAME}: input_size must be (H, W) of positive ints, got {input_size!r}")
        for what, value in (("expansion_ratio", expansion_ratio), ("se_ratio", se_ratio)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{_NAME}: {what} must be a number > 0, got {value!r}")
        if fuse not in _FUSE_MODES:
            raise ValueError(f"{_NAME}: fuse must be one of {_FUSE_MODES}, got {fuse!r}")
        if gate_input not in _GATE_INPUTS:
            raise ValueError(f"{_NAME}: gate_input must be one of {_GATE_INPUTS}, got {gate_input!r}")
        kernel_sizes = _int_tuple(kernel_sizes, "kernel_sizes")
        dilations = _int_tuple(dilations, "dilations")
        if len(kernel_sizes) != len(dilations):
            raise ValueError(f"{_NAME}: kernel_sizes and dilations must have the same length, got "
                             f"{kernel_sizes} and {dilations}")
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"{_NAME}: kernel_sizes must be positive odd ints, got {kernel_sizes}")
        if any(d < 1 for d in dilations):
            raise ValueError(f"{_NAME}: dilations must be ints >= 1, got {dilations}")
        med = int(expansion_ratio * dim)
        n = len(kernel_sizes)
        if med < (n if fuse == "split" else 1):
            need = f">= {n} (one channel per kernel under fuse='split')" if fuse == "split" else ">= 1"
            raise ValueError(f"{_NAME}: int(expansion_ratio * dim) must be {need}, got "
                             f"int({expansion_ratio} * {dim}) = {med}")

        self.dim = dim
        self.med_channels = med
        self.fuse = fuse
        self.gate_input = gate_input
        self.kernel_sizes = kernel_sizes
        self.dilations = dilations
        self.splits = split_channels(med, n) if fuse == "split" else [med] * n
        fused = med * n if fuse == "concat" else med
        self.fused_channels = fused
        self.se_hidden = max(1, int(se_ratio * dim))

        self.expand = nn.Linear(dim, med, bias=bias)
        self.dwconvs = nn.ModuleList(
            nn.Conv2d(c, c, k, padding=d * (k - 1) // 2, dilation=d, groups=c, bias=False)
            for c, k, d in zip(self.splits, kernel_sizes, dilations))
        self.norm = nn.BatchNorm2d(fused)
        self.act = nn.ReLU()
        self.reduce = nn.Linear(fused, dim, bias=bias)
        self.gate_fc1 = nn.Linear(dim, self.se_hidden)
        self.gate_act = nn.ReLU()
        self.gate_fc2 = nn.Linear(self.se_hidden, dim)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, med_channels={self.med_channels}, fuse={self.fuse!r}, "
                f"gate_input={self.gate_input!r}, kernel_sizes={self.kernel_sizes}, dilations={self.dilations}")

    def gate(self, pooled: torch.Tensor) -> torch.Tensor:
        """SE gate ``sigmoid(fc2(relu(fc1(pooled))))`` for a (B, C) pooled vector."""
        return torch.sigmoid(self.gate_fc2(self.gate_act(self.gate_fc1(pooled))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.expand(x).permute(0, 3, 1, 2)                      # (B, E, H, W) view, channels_last memory
        if self.fuse == "split":
            parts = torch.split(e, self.splits, dim=1)
            outs: list[torch.Tensor] = []
            for i, conv in enumerate(self.dwconvs):  # enumerate, not zip: TorchScript-friendly
                outs.append(conv(parts[i]))
            m = torch.cat(outs, dim=1)
        elif self.fuse == "sum":
            m = self.dwconvs[0](e)
            for i, conv in enumerate(self.dwconvs):
                if i > 0:
                    m = m + conv(e)
        else:
            outs = []
            for conv in self.dwconvs:
                outs.append(conv(e))
            m = torch.cat(outs, dim=1)
        m = self.act(self.norm(m))
        y = self.reduce(m.permute(0, 2, 3, 1))                      # (B, H, W, C)
        g = self.gate((x if self.gate_input == "input" else y).mean(dim=(1, 2)))
        return y * g[:, None, None, :].to(y.dtype)
