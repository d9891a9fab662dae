"""DFFormer's dynamic filter (mixers.dynamic_filter): parameter counts, numerics against an independent
reference, resolution changes, precision."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import timm

from mixers import create_mixer
from mixers.dynamic_filter import DynamicFilter, resize_filter_grid


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# seed_mixers.md section G (official DynamicFilter, K=4, expansion 2, reweight 0.25).
@pytest.mark.parametrize("dim,res,expected", [
    (64, 56, 38_596), (128, 28, 105_764), (320, 14, 640_900), (512, 7, 1_638_628),
    (96, 56, 70_596), (192, 28, 233_764), (384, 14, 922_500), (576, 7, 2_073_828),
])
def test_param_count_matches_official(dim, res, expected):
    m = create_mixer("dynamic_filter", dim, input_size=(res, res))
    assert n_params(m) == expected
    hidden = int(0.25 * dim)
    assert expected == 4 * dim * dim + dim * hidden + hidden * 8 * dim + 8 * res * (res // 2 + 1) + 4


@pytest.mark.parametrize("mixers,expected", [
    (["dynamic_filter"] * 4, 30_324_372),                                     # DFFormer-S18
    (["sepconv", "sepconv", "dynamic_filter", "dynamic_filter"], 30_193_512),  # CDFFormer-S18
])
def test_whole_model_param_count(mixers, expected):
    with torch.device("meta"):
        model = timm.create_model("hybrid_metaformer", mixers=mixers, depths=[3, 3, 9, 3],
                                  dims=[64, 128, 320, 512], img_size=224)
    assert n_params(model) == expected


def test_official_parameter_names_and_shapes():
    m = DynamicFilter(64, input_size=(56, 56))
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "pwconv1.weight": (128, 64), "act1.scale": (1,), "act1.bias": (1,),
        "reweight.fc1.weight": (16, 64), "reweight.act.scale": (1,), "reweight.act.bias": (1,),
        "reweight.fc2.weight": (512, 16), "complex_weights": (56, 29, 4, 2), "pwconv2.weight": (64, 128),
    }


def test_default_grid_is_14x14_and_init():
    torch.manual_seed(0)
    m = DynamicFilter(32)
    assert m.complex_weights.shape == (14, 8, 4, 2)
    big = DynamicFilter(8, input_size=(64, 64))
    assert abs(big.complex_weights.std().item() - 0.02) < 0.002
    assert abs(big.complex_weights.mean().item()) < 0.002


def reference_forward(m: DynamicFilter, x: torch.Tensor, grid: np.ndarray | None = None) -> np.ndarray:
    """Straightforward float64 numpy version of the paper's equations, one image and channel at a time."""
    xd = x.detach().double().numpy()
    B, H, W, C = xd.shape
    K, Cm = m.num_filters, m.med_channels
    w1 = m.pwconv1.weight.detach().double().numpy()
    w2 = m.pwconv2.weight.detach().double().numpy()
    f1 = m.reweight.fc1.weight.detach().double().numpy()
    f2 = m.reweight.fc2.weight.detach().double().numpy()
    bias1 = 0.0 if m.pwconv1.bias is None else m.pwconv1.bias.detach().double().numpy()
    bias2 = 0.0 if m.pwconv2.bias is None else m.pwconv2.bias.detach().double().numpy()
    s1, b1 = m.act1.scale.item(), m.act1.bias.item()
    sr, br = m.reweight.act.scale.item(), m.reweight.act.bias.item()

    def star_relu(v, s, b):
        return s * np.maximum(v, 0.0) ** 2 + b

    if grid is None:
        grid = m.complex_weights.detach().double().numpy()
    basis = [grid[:, :, k, 0] + 1j * grid[:, :, k, 1] for k in range(K)]   # K complex (Hf, Ff) filters
    out = np.zeros((B, H, W, C))
    for b in range(B):
        logits = f2 @ star_relu(f1 @ xd[b].mean(axis=(0, 1)), sr, br)      # (K*C',)
        logits = logits.reshape(K, Cm)
        routing = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
        y = star_relu(xd[b] @ w1.T + bias1, s1, b1)                               # (H, W, C')
        z = np.zeros((H, W, Cm))
        for c in range(Cm):
            filt = sum(routing[k, c] * basis[k] for k in range(K))
            spec = np.fft.rfft2(y[:, :, c], norm="ortho")
            assert spec.shape == filt.shape
            z[:, :, c] = np.fft.irfft2(spec * filt, s=(H, W), norm="ortho")
        out[b] = z @ w2.T + bias2
    return out


def _randomise_scalars(m: DynamicFilter) -> None:
    with torch.no_grad():  # non-default StarReLU scalars so they are exercised
        m.act1.scale.fill_(0.7), m.act1.bias.fill_(-0.1)
        m.reweight.act.scale.fill_(1.3), m.reweight.act.bias.fill_(0.2)
        m.complex_weights.mul_(25.0)  # O(1) filters: a stronger numerical test than 0.02


@pytest.mark.parametrize("hw", [(14, 14), (9, 12)])
def test_matches_independent_reference_at_build_size(hw):
    torch.manual_seed(1)
    m = DynamicFilter(12, input_size=hw).eval()
    _randomise_scalars(m)
    x = torch.randn(3, *hw, 12)
    with torch.no_grad():
        y = m(x)
    np.testing.assert_allclose(y.numpy(), reference_forward(m, x), atol=1e-5, rtol=1e-4)


def _resized_grid_reference(m: DynamicFilter, h: int, w: int) -> np.ndarray:
    """Official `resize_complex_weight` written out: (H0, F0, K, 2) -> 2K planes -> bicubic, align_corners."""
    cw = m.complex_weights.detach().double()
    H0, F0, K, _ = cw.shape
    planes = torch.stack([cw[:, :, k, t] for k in range(K) for t in range(2)])[None]   # (1, 2K, H0, F0)
    planes = F.interpolate(planes, size=(h, w // 2 + 1), mode="bicubic", align_corners=True)[0]
    return torch.stack([torch.stack([planes[2 * k], planes[2 * k + 1]], -1) for k in range(K)], 2).numpy()


@pytest.mark.parametrize("hw", [(16, 16), (15, 9), (7, 7)])
def test_resize_path_matches_reference(hw):
    torch.manual_seed(2)
    m = DynamicFilter(10, input_size=(14, 14)).eval()
    _randomise_scalars(m)
    x = torch.randn(2, *hw, 10)
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape
    ref = reference_forward(m, x, grid=_resized_grid_reference(m, *hw))
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-5, rtol=1e-4)


def test_resize_to_build_size_is_identity():
    torch.manual_seed(3)
    m = DynamicFilter(8, input_size=(14, 14))
    w = m.complex_weights.detach()
    torch.testing.assert_close(resize_filter_grid(w, 14, 8), w, atol=1e-6, rtol=0)
    torch.testing.assert_close(m.filter_grid(14, 8), w, atol=0, rtol=0)  # build size: no resize at all
    # Built at 14x14 and run at 14x14 equals the plain (no-resize) reference.
    x = torch.randn(2, 14, 14, 8)
    with torch.no_grad():
        np.testing.assert_allclose(m(x).numpy(), reference_forward(m, x), atol=1e-5, rtol=1e-4)


def test_model_built_at_224_runs_at_other_sizes():
    torch.manual_seed(4)
    model = timm.create_model("hybrid_metaformer", mixers=["dynamic_filter"] * 4, depths=[1, 1, 1, 1],
                              dims=[16, 32, 48, 64], img_size=224, num_classes=5).eval()
    with torch.no_grad():
        for size in (224, 256, 230):
            out = model(torch.randn(1, 3, size, size))
            assert out.shape == (1, 5) and torch.isfinite(out).all()


def test_bf16_autocast_runs_fft_in_float32(monkeypatch):
    torch.manual_seed(5)
    m = DynamicFilter(16, input_size=(14, 14))
    x = torch.randn(2, 14, 14, 16)
    seen = []

    def spy(fn):
        def wrapped(inp, *a, **k):
            seen.append(inp.dtype)
            return fn(inp, *a, **k)
        return wrapped

    monkeypatch.setattr(torch.fft, "rfft2", spy(torch.fft.rfft2))
    monkeypatch.setattr(torch.fft, "irfft2", spy(torch.fft.irfft2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert seen == [torch.float32, torch.complex64]
    assert torch.isfinite(y).all()
    y.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    # Close to the float32 result (bf16 only in the pointwise layers).
    ref = m(x)
    assert (y.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_pure_bf16_module_and_float64():
    torch.manual_seed(6)
    m = DynamicFilter(8, input_size=(6, 6))
    y = m.to(torch.bfloat16)(torch.randn(2, 6, 6, 8, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()
    md = DynamicFilter(4, input_size=(5, 6)).double()
    x = torch.randn(2, 5, 6, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(md, (x,), fast_mode=True)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_filters=0), "num_filters"),
    (dict(num_filters=2.0), "num_filters"),
    (dict(expansion_ratio=0), "expansion_ratio"),
    (dict(expansion_ratio=-1.0), "expansion_ratio"),
    (dict(reweight_expansion_ratio=0), "reweight_expansion_ratio"),
    (dict(reweight_expansion_ratio=0.01), "reweight_expansion_ratio"),
    (dict(input_size=(0, 14)), "input_size"),
    (dict(input_size=(-3, -3)), "input_size"),
])
def test_invalid_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=f"dynamic_filter.*{match}"):
        DynamicFilter(64, **kwargs)
    if "input_size" not in kwargs:  # the registry validates input_size itself, with its own message
        with pytest.raises(ValueError, match="dynamic_filter"):
            create_mixer("dynamic_filter", 64, input_size=(14, 14), **kwargs)


def test_other_hyperparameters():
    m = DynamicFilter(32, input_size=(8, 8), num_filters=2, expansion_ratio=1.5, bias=True)
    assert m.complex_weights.shape == (8, 5, 2, 2) and m.med_channels == 48
    assert m.pwconv1.bias is not None and m.pwconv2.bias is not None
    x = torch.randn(2, 8, 8, 32)
    with torch.no_grad():
        np.testing.assert_allclose(m(x).numpy(), reference_forward(m, x), atol=1e-5, rtol=1e-4)



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_autocast_matches_float32():
    torch.manual_seed(7)
    m = DynamicFilter(32, input_size=(14, 14)).cuda()
    for hw in [(14, 14), (15, 9), (56, 56)]:
        x = torch.randn(2, *hw, 32, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = m(x)
        ref = m(x)
        assert torch.isfinite(y).all()
        assert (y.float() - ref).abs().max() < 0.05 * ref.abs().max()
    cpu = DynamicFilter(32, input_size=(14, 14))
    cpu.load_state_dict(m.state_dict())
    x = torch.randn(2, 15, 9, 32)
    torch.testing.assert_close(m(x.cuda()).cpu(), cpu(x), atol=1e-5, rtol=1e-4)


def test_state_dict_from_another_resolution_loads_with_resized_filters():
    from mixers.dynamic_filter import resize_filter_grid

    small = create_mixer("dynamic_filter", 32, input_size=(8, 8))
    large = create_mixer("dynamic_filter", 32, input_size=(14, 14))
    large.load_state_dict(small.state_dict(), strict=True)
    expected = resize_filter_grid(small.complex_weights.detach(), 14, 8)
    assert torch.equal(large.complex_weights.detach(), expected)
    assert torch.equal(large.pwconv1.weight, small.pwconv1.weight)
