"""backbones.flops: analytic MAC counts for single mixers and ops, and paper totals for whole models."""
from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import mixers
from backbones.flops import FlopProfile, profile


def _mixer_profile(name: str, dim: int, hw: tuple[int, int], **hparams) -> FlopProfile:
    mixer = mixers.create_mixer(name, dim, input_size=hw, **hparams)
    return profile(mixer, (dim, *hw), channels_last=True)


def test_mhsa_is_four_c2n_plus_two_n2c() -> None:
    c, hw = 64, (14, 14)  # attention_dim == C (2 heads of 32)
    n = hw[0] * hw[1]
    p = _mixer_profile("mhsa", c, hw)
    assert p.by_operator["scaled_dot_product_attention"] == 2 * n * n * c
    assert sum(p.by_operator.values()) == 4 * c * c * n + 2 * n * n * c
    assert p.gmacs == pytest.approx((4 * c * c * n + 2 * n * n * c) / 1e9)
    assert p.params == 4 * c * c
    assert p.uncounted_ops == {}


def test_sepconv_is_pointwise_plus_depthwise() -> None:
    c, hw = 32, (9, 13)
    n = hw[0] * hw[1]
    p = _mixer_profile("sepconv", c, hw)
    assert p.by_operator == {"linear": 4 * c * c * n, "conv": 2 * c * 49 * n}
    assert p.uncounted_ops == {}


def test_pooling_counts_kernel_area_per_output_element() -> None:
    c, hw = 16, (7, 5)
    p = _mixer_profile("pooling", c, hw)
    assert p.by_operator == {"avg_pool2d": c * hw[0] * hw[1] * 9}
    assert p.uncounted_ops == {}


def test_dynamic_filter_pointwise_fft_and_filter_terms() -> None:
    c, (h, w), k = 32, (14, 10), 4  # non-square: a wrong FFT dim would change the count
    n, med, hidden, freq = h * w, 2 * c, c // 4, w // 2 + 1
    p = _mixer_profile("dynamic_filter", c, (h, w))
    fft = med * n * math.ceil(math.log2(n))  # per-plane n*ceil(log2 n), one plane per channel
    assert p.by_operator["fft_rfft2"] == fft
    assert p.by_operator["fft_irfft2"] == fft
    pointwise = 2 * c * med * n + c * hidden + hidden * k * med  # pwconv1, pwconv2, routing MLP
    # Filter generation (K complex MACs per spectral element and channel) and the complex product.
    filtering_at_most = 4 * k * h * freq * med + 4 * h * freq * med
    rest = sum(p.by_operator.values()) - 2 * fft
    assert pointwise < rest <= pointwise + filtering_at_most
    assert p.uncounted_ops == {}


def test_msda_is_projections_plus_nine_keys_per_query() -> None:
    c, hw = 96, (14, 10)  # zero-padded border keys count, as in the official nn.Unfold version
    n = hw[0] * hw[1]
    p = _mixer_profile("msda", c, hw)
    assert sum(p.by_operator.values()) == 4 * c * c * n + 2 * 9 * c * n
    assert p.uncounted_ops == {}


def test_dynamixer_matches_its_cost_formula() -> None:
    """seed_mixers.md C5: 4C^2N + 2CSdN + SdN(H^2+W^2) + CN(H+W) (+ the pooled reweight MLP)."""
    c, (h, w), s, d = 96, (56, 56), 8, 2
    n = h * w
    p = _mixer_profile("dynamixer", c, (h, w))
    expected = 4 * c * c * n + 2 * c * s * d * n + s * d * n * (h * h + w * w) + c * n * (h + w)
    assert p.gmacs * 1e9 == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("name", mixers.MIXER_NAMES)
def test_every_mixer_is_fully_counted(name: str) -> None:
    """A mixer whose ops lack a handle would look cheaper than it is."""
    p = _mixer_profile(name, 64, (15, 9))
    assert p.uncounted_ops == {}
    assert p.gmacs > 0


class _GlobalFilter(nn.Module):
    """GFNet-style static filter on NCHW: rfft2 over the last two dims, complex product, irfft2."""

    def __init__(self, c: int, h: int, w: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c, h, w // 2 + 1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.fft.rfft2(x, norm="ortho") * torch.view_as_complex(self.weight)
        return torch.fft.irfft2(spec, s=x.shape[-2:], norm="ortho")


def test_fft_over_last_dims_and_complex_product() -> None:
    c, h, w = 3, 8, 6
    p = profile(_GlobalFilter(c, h, w), (c, h, w), batch_size=2)
    fft = 2 * c * h * w * math.ceil(math.log2(h * w))
    assert p.by_operator == {"fft_rfft2": fft, "fft_irfft2": fft, "mul": 4 * 2 * c * h * (w // 2 + 1)}


class _Sdpa(nn.Module):
    """Cross attention with L != S and E != Ev, built from slices of an NHWC input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        q = x[..., :8].reshape(b, 1, h * w, 8)
        kv = x[:, ::2]
        k = kv[..., :8].reshape(b, 1, -1, 8)
        v = kv[..., 8:24].reshape(b, 1, -1, 16)
        return F.scaled_dot_product_attention(q, k, v)


def test_sdpa_counts_qk_and_av() -> None:
    p = profile(_Sdpa(), (24, 6, 5), batch_size=3, channels_last=True)
    L, S = 6 * 5, 3 * 5
    assert p.by_operator == {"scaled_dot_product_attention": 3 * L * S * (8 + 16)}


class _BroadcastMatmul(nn.Module):
    """(K, M) @ (B, M, N): fvcore's own matmul handle drops the batch of the second operand."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(5, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight @ x.flatten(2)


def test_broadcast_matmul_counts_every_batch() -> None:
    p = profile(_BroadcastMatmul(), (4, 3, 2), batch_size=6)
    assert p.by_operator == {"matmul": 6 * 5 * 4 * 6}


class _Mixed(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(F.gelu(x).softmax(-1) + x * 2, dim=1)


def test_elementwise_ops_are_ignored_but_unknown_ops_are_reported() -> None:
    p = profile(_Mixed(), 4)
    assert p.gmacs == 0 and p.params == 0
    assert p.uncounted_ops == {"aten::cumsum": 1}


def test_input_size_forms_and_mode_restored() -> None:
    model = nn.Conv2d(3, 8, 1)
    model.train()
    assert profile(model, 5).input_shape == (1, 3, 5, 5)
    assert profile(model, (5, 7), batch_size=2).input_shape == (2, 3, 5, 7)
    assert profile(model, (3, 5, 7)).by_operator == {"conv": 3 * 8 * 35}
    assert model.training
    with pytest.raises(ValueError):
        profile(model, (1, 2, 3, 4))
    assert profile(model, 4).to_dict() == {
        "params": 32, "gmacs": 3 * 8 * 16 / 1e9, "by_operator": {"conv": 384},
        "uncounted_ops": {}, "input_shape": [1, 3, 4, 4]}


S18 = dict(depths=[3, 3, 9, 3], dims=[64, 128, 320, 512])


def test_caformer_s18_matches_paper() -> None:
    model = timm.create_model("hybrid_metaformer", mixers=["sepconv", "sepconv", "mhsa", "mhsa"], **S18)
    p = profile(model, 224)
    assert p.params == 26_341_656  # official caformer_s18
    assert p.gmacs == pytest.approx(4.1, rel=0.02)  # README: 4.1 G, attention counted
    assert p.gmacs == pytest.approx(4.125, abs=1e-3)  # fvcore + attention on the official model
    assert p.uncounted_ops == {}


def test_dfformer_s18_matches_paper_without_fft() -> None:
    """Paper/fvcore value 3.8 G excludes the FFTs; with them (our default) it is ~2.8 % higher."""
    model = timm.create_model("hybrid_metaformer", mixers=["dynamic_filter"] * 4, **S18)
    p = profile(model, 224)
    assert p.params == 30_324_372  # official dfformer_s18
    fft_gmacs = (p.by_operator["fft_rfft2"] + p.by_operator["fft_irfft2"]) / 1e9
    assert p.gmacs - fft_gmacs == pytest.approx(3.8, rel=0.02)
    assert fft_gmacs == pytest.approx(0.0608, abs=1e-4)
    assert p.uncounted_ops == {}
