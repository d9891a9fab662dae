"""Dynamic Filter token mixer (DFFormer / CDFFormer).

Paper: Tatsunami & Taki, "FFT-based Dynamic Token Mixer for Vision", AAAI 2024 (arXiv 2303.03932).
Official code: okojoalg/dfformer, ``models/dfformer.py`` class ``DynamicFilter`` (snapshot 2b757c5).

Computation (NHWC in, NHWC out; the input is the block's LayerNorm output)::

    r = softmax_K( reweight(mean_HW(x)).view(B, K, C') )       # routing, per image and channel
    y = StarReLU(pwconv1(x))                                    # (B, H, W, C'),  C' = expansion_ratio * C
    Y = rfft2(y, norm="ortho")                                  # (B, H, W//2+1, C'), float32
    G[b, h, f, c] = sum_k r[b, k, c] * basis[h, f, k]          # K complex global filters shared by channels
    out = pwconv2(irfft2(Y * G, s=(H, W), norm="ortho"))

Parameters and their names/layout match the official module, so official state dicts load unchanged:
``pwconv1`` Linear(C, C', no bias), ``act1`` StarReLU, ``reweight`` MLP (fc1 Linear(C, int(r*C)) ->
StarReLU -> fc2 Linear(int(r*C), K*C'), no biases; timm's ``Mlp`` with the official names),
``complex_weights`` real (H0, W0//2+1, K, 2) initialised ``randn * 0.02``, ``pwconv2`` Linear(C', C).
Per-block parameters: ``2*C*C' + C*int(r*C) + int(r*C)*K*C' + 2*K*H0*(W0//2+1) + 4``
(e.g. C=64 at 56x56: 38,596).

Deliberate deviations from the official module (none changes the result at the build resolution):

- Any resolution.  The filter grid is built for ``input_size`` (H0, W0) (14x14 when None, the official
  ``size=14`` default).  When the spectrum of the actual input is not (H0, W0//2+1) the grid is resized
  bicubically (``align_corners=True``) to (H, W//2+1) on every forward, exactly like the official
  ``weight_resize=True`` path of the detection/segmentation backbones.  The official classification
  module (``weight_resize=False``) raises at other sizes instead; at the build size both paths agree.
  There is therefore no ``weight_resize`` switch.
- Precision.  The routing softmax, the filter and both FFTs run with autocast disabled in float32
  (float64 when the module runs in float64), as the official code casts to float32 (cuFFT's half
  precision is limited to power-of-two sizes and 56/28/14/7 are not).  The inverse FFT's output is cast
  back to the input's dtype before ``pwconv2``: under autocast the input is float32 (LayerNorm output)
  so nothing changes; a model converted wholesale to bf16/fp16 works (the official one fails there:
  ``view_as_complex`` rejects its bf16 ``complex_weights``, and its float32 FFT output would then meet
  bf16 ``pwconv2`` weights).  The bf16 ``complex_weights`` of such a model are upcast per forward.
- Layout, for speed (same arithmetic).  The official module runs everything NHWC, so each FFT over
  (H, W) makes the FFT library gather the channels-last tensor into a channels-first copy, and
  ``pwconv2`` copies the FFT output back.  Here the spectral part runs channel-major, (C', B, H, W):
  ``pwconv1`` is one matrix product ``W1 @ X^T`` that reads the NHWC input transposed (a BLAS flag,
  no copy) and writes (C', B*H*W) directly, the FFTs run over the contiguous trailing dims, the
  per-image filter is one real matrix product (routing (C'*B, K) x basis (K, H*F*2)) whose result is
  already the (re, im)-interleaved layout of a complex64 tensor (no complex einsum), and ``pwconv2`` is
  one matrix product reading the channel-major result transposed and writing NHWC.  All three are
  single ``mm`` calls, so each weight gradient is one product over all B*H*W positions (a batched
  matmul with an expanded weight would form B per-image gradients and sum them, 2x slower at 14x14
  and below), and their backward passes keep the operands' layouts (no transposing copies).
  Consequences: ``pwconv1``/``pwconv2`` are ``nn.Linear`` modules used through their weights (forward
  hooks on them do not fire; a tracer sees ``mm``, not ``linear``, with the same MACs).
- ``act1_layer``/``act2_layer`` are fixed to StarReLU/Identity (the official defaults used by every
  DFFormer/CDFFormer model); the ``_gelu``/``_relu`` ablations are not exposed.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import Mlp
from timm.models.metaformer import StarReLU

__all__ = ["DynamicFilter", "resize_filter_grid"]

_NAME = "dynamic_filter"


def resize_filter_grid(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubically resize a real ``(H0, F0, K, 2)`` filter grid to ``(height, width, K, 2)``.

    Same operation as the official ``resize_complex_weight`` (real and imaginary planes of all K filters
    resized as 2K channels, ``align_corners=True``).
    """
    h0, f0, k, two = weight.shape
    grid = weight.reshape(1, h0, f0, k * two).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=True)
    return grid.permute(0, 2, 3, 1).reshape(height, width, k, two)


def _positive_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{_NAME}: {what} must be a number > 0, got {value!r}")
    return float(value)


class DynamicFilter(nn.Module):
    """DFFormer's dynamic filter: K global Fourier filters mixed per channel by a routing MLP (NHWC in/out)."""

    def __init__(self, dim: int, *, input_size: int | tuple[int, int] | None = None,
                 expansion_ratio: float = 2, reweight_expansion_ratio: float = 0.25, num_filters: int = 4,
                 bias: bool = False):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"{_NAME}: dim must be a positive int, got {dim!r}")
        if isinstance(num_filters, bool) or not isinstance(num_filters, int) or num_filters < 1:
            raise ValueError(f"{_NAME}: num_filters must be an int >= 1, got {num_filters!r}")
        expansion_ratio = _positive_number(expansion_ratio, "expansion_ratio")
        reweight_expansion_ratio = _positive_number(reweight_expansion_ratio, "reweight_expansion_ratio")
        med = int(expansion_ratio * dim)
        if med < 1:
            raise ValueError(f"{_NAME}: int(expansion_ratio * dim) must be >= 1, got "
                             f"int({expansion_ratio} * {dim}) = {med}")
        hidden = int(reweight_expansion_ratio * dim)
        if hidden < 1:
            raise ValueError(f"{_NAME}: int(reweight_expansion_ratio * dim) must be >= 1, got "
                             f"int({reweight_expansion_ratio} * {dim}) = {hidden}")
        if input_size is None:
            input_size = (14, 14)  # official default size=14
        elif isinstance(input_size, int) and not isinstance(input_size, bool):
            input_size = (input_size, input_size)
        try:
            h0, w0 = (int(v) for v in input_size)
        except (TypeError, ValueError):
            raise ValueError(f"{_NAME}: input_size must be (H, W) of positive ints, got {input_size!r}") from None
        if h0 < 1 or w0 < 1:
            raise ValueError(f"{_NAME}: input_size must be positive, got {input_size!r}")

        self.dim = dim
        self.med_channels = med
        self.num_filters = num_filters
        self.input_size = (h0, w0)
        self.size = h0                      # official attribute names
        self.filter_size = w0 // 2 + 1

        self.pwconv1 = nn.Linear(dim, med, bias=bias)
        self.act1 = StarReLU()
        # timm Mlp has the official Mlp's parameter names (fc1, act, fc2); its `norm` is an Identity.
        self.reweight = Mlp(dim, hidden, num_filters * med, act_layer=StarReLU, bias=False)
        self.complex_weights = nn.Parameter(
            torch.randn(h0, self.filter_size, num_filters, 2, dtype=torch.float32) * 0.02)
        self.act2 = nn.Identity()
        self.pwconv2 = nn.Linear(med, dim, bias=bias)
        self._register_load_state_dict_pre_hook(self._resize_loaded_filters)

    def _resize_loaded_filters(self, state_dict: dict, prefix: str, *args) -> None:
        """Weights from a model built at another resolution load with their filter grid resized
        bicubically, as the official ``load_weights`` does (e.g. proxy-trained at 64 px, fine-tuned at 224)."""
        key = prefix + "complex_weights"
        loaded = state_dict.get(key)
        target = self.complex_weights.shape
        if loaded is not None and loaded.shape != target and loaded.shape[2:] == target[2:] and loaded.dim() == 4:
            state_dict[key] = resize_filter_grid(loaded.float(), target[0], target[1]).to(loaded.dtype)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, med_channels={self.med_channels}, num_filters={self.num_filters}, "
                f"input_size={self.input_size}")

    def filter_grid(self, height: int, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The K basis filters as a real ``(height, width, K, 2)`` tensor (resized if not the build grid)."""
        weight = self.complex_weights.to(dtype)
        if (height, width) != (self.size, self.filter_size):
            weight = resize_filter_grid(weight, height, width)
        return weight

    def _spectral_filter(self, y: torch.Tensor, routing_logits: torch.Tensor, B: int, H: int, W: int,
                         fdtype: torch.dtype) -> torch.Tensor:
        """Routing softmax, rfft2, per-image filter and irfft2 in ``fdtype``; (C', B*H*W) -> (C', B, H, W)."""
        K, Cm = self.num_filters, self.med_channels
        routing = routing_logits.to(fdtype).view(B, K, Cm).softmax(dim=1)            # (B, K, C')
        routing = routing.permute(2, 0, 1).reshape(Cm * B, K)                        # channel-major rows
        spec = torch.fft.rfft2(y.to(fdtype).view(Cm, B, H, W), norm="ortho")        # (C', B, H, F)
        Hf, Ff = spec.shape[2], spec.shape[3]
        basis = self.filter_grid(Hf, Ff, fdtype).permute(2, 0, 1, 3).reshape(K, Hf * Ff * 2)
        # filt[c, b] = sum_k routing[b, k, c] * basis[k]: real (re, im)-interleaved -> complex view
        filt = torch.mm(routing, basis).view(Cm, B, Hf, Ff, 2)
        spec = spec * torch.view_as_complex(filt)
        return torch.fft.irfft2(spec, s=(H, W), norm="ortho")                       # (C', B, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        Cm = self.med_channels
        routing_logits = self.reweight(x.mean(dim=(1, 2)))                          # (B, K*C')
        # pwconv1 as W1 @ X^T: the NHWC input is read transposed and the result is channel-major
        # (C', B*H*W), so the FFT runs over the two contiguous trailing dims with no layout copy.
        y = torch.mm(self.pwconv1.weight, x.reshape(B * H * W, C).t())
        b1 = self.pwconv1.bias
        if b1 is not None:
            y = y + b1[:, None]
        y = self.act1(y)
        fdtype = torch.promote_types(y.dtype, torch.float32)  # float32, or float64 for double modules
        if torch.jit.is_scripting():
            # TorchScript needs a constant autocast device; scripted code does not run under eager
            # autocast, so the guard is only needed (and only used) in eager mode.
            y = self._spectral_filter(y, routing_logits, B, H, W, fdtype)
        else:
            with torch.autocast(device_type=x.device.type, enabled=False):
                y = self._spectral_filter(y, routing_logits, B, H, W, fdtype)
        y = self.act2(y.to(x.dtype)).view(Cm, B * H * W)
        # pwconv2 reads the channel-major result transposed and writes NHWC (B*H*W, C): no copy.
        out = torch.mm(y.t(), self.pwconv2.weight.t())
        b2 = self.pwconv2.bias
        if b2 is not None:
            out = out + b2
        return out.view(B, H, W, C)
