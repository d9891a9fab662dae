"""DMFormer's DMA mixer (mixers.dma): parameter counts, numerics against an F.conv2d reference built from
the module's own weights, BatchNorm train/eval behaviour, determinism, hyperparameter validation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixers import create_mixer
from mixers.dma import DynamicMultiLevelAttention, split_channels

KERNELS, DILATIONS = (3, 5, 7), (1, 2, 3)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_params(C: int, ratio: float = 3, se_ratio: float = 0.25, fuse: str = "split",
                    bias: bool = True, kernels=KERNELS) -> int:
    E = int(ratio * C)
    n = len(kernels)
    groups = split_channels(E, n) if fuse == "split" else [E] * n
    fused = E * n if fuse == "concat" else E
    h = max(1, int(se_ratio * C))
    expand = C * E + (E if bias else 0)
    dw = sum(g * k * k for g, k in zip(groups, kernels))
    bn = 2 * fused
    reduce = fused * C + (C if bias else 0)
    gate = C * h + h + h * C + C
    return expand + dw + bn + reduce + gate


def test_split_channels_like_mixconv():
    assert split_channels(192, 3) == [64, 64, 64]
    assert split_channels(100, 3) == [34, 33, 33]
    assert split_channels(7, 3) == [3, 2, 2]


@pytest.mark.parametrize("C", [8, 64, 96, 320])
@pytest.mark.parametrize("fuse", ["split", "sum", "concat"])
def test_param_count_formula(C, fuse):
    m = create_mixer("dma", C, input_size=(14, 14), fuse=fuse)
    assert n_params(m) == expected_params(C, fuse=fuse)


def test_param_count_defaults_and_variants():
    # Defaults at C=64: expand 12,480 + depthwise 5,312 + BN 384 + reduce 12,352 + gate 2,128.
    assert n_params(DynamicMultiLevelAttention(64)) == 32_656
    for kw in [dict(expansion_ratio=2), dict(expansion_ratio=4.5, se_ratio=1 / 16), dict(bias=False),
               dict(expansion_ratio=1, fuse="sum"), dict(se_ratio=0.01)]:
        m = DynamicMultiLevelAttention(96, **kw)
        assert n_params(m) == expected_params(96, **{("ratio" if k == "expansion_ratio" else k): v
                                                     for k, v in kw.items()}), kw
    m = DynamicMultiLevelAttention(32, kernel_sizes=(3, 9), dilations=(1, 1))
    assert n_params(m) == expected_params(32, kernels=(3, 9))


def reference_forward(m: DynamicMultiLevelAttention, x: torch.Tensor) -> torch.Tensor:
    """The DMA equations with F.conv2d on NCHW tensors and the module's weights (eval or train BN)."""
    xc = x.permute(0, 3, 1, 2)                                                   # NCHW
    e = F.conv2d(xc, m.expand.weight[:, :, None, None], m.expand.bias)          # 1x1 conv
    branches = []
    if m.fuse == "split":
        start = 0
        for conv, g, k, d in zip(m.dwconvs, m.splits, KERNELS, DILATIONS):
            branches.append(F.conv2d(e[:, start:start + g], conv.weight, None, padding=d * (k // 2),
                                     dilation=d, groups=g))
            start += g
        z = torch.cat(branches, 1)
    else:
        for conv, k, d in zip(m.dwconvs, KERNELS, DILATIONS):
            branches.append(F.conv2d(e, conv.weight, None, padding=d * (k // 2), dilation=d, groups=e.shape[1]))
        z = sum(branches) if m.fuse == "sum" else torch.cat(branches, 1)
    bn = m.norm
    if m.training:
        mean = z.mean(dim=(0, 2, 3), keepdim=True)
        var = z.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    else:
        mean, var = bn.running_mean[None, :, None, None], bn.running_var[None, :, None, None]
    z = (z - mean) / torch.sqrt(var + bn.eps) * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    z = torch.relu(z)
    y = F.conv2d(z, m.reduce.weight[:, :, None, None], m.reduce.bias)           # 1x1 conv, (B, C, H, W)
    pooled = (xc if m.gate_input == "input" else y).mean(dim=(2, 3))
    v = torch.relu(F.linear(pooled, m.gate_fc1.weight, m.gate_fc1.bias))
    attn = torch.sigmoid(F.linear(v, m.gate_fc2.weight, m.gate_fc2.bias))
    return (attn[:, :, None, None] * y).permute(0, 2, 3, 1)


def _randomise_bn(m: DynamicMultiLevelAttention) -> None:
    with torch.no_grad():
        m.norm.running_mean.uniform_(-0.2, 0.2)
        m.norm.running_var.uniform_(0.5, 2.0)
        m.norm.weight.uniform_(0.5, 1.5)
        m.norm.bias.uniform_(-0.3, 0.3)


@pytest.mark.parametrize("fuse", ["split", "sum", "concat"])
@pytest.mark.parametrize("gate_input", ["input", "output"])
@pytest.mark.parametrize("hw", [(14, 14), (15, 9), (7, 7)])
def test_matches_conv2d_reference(fuse, gate_input, hw):
    torch.manual_seed(0)
    m = DynamicMultiLevelAttention(16, fuse=fuse, gate_input=gate_input)
    _randomise_bn(m)
    x = torch.randn(3, *hw, 16)
    with torch.no_grad():
        m.eval()
        torch.testing.assert_close(m(x), reference_forward(m, x), atol=1e-5, rtol=1e-4)
        m.train()
        ref = reference_forward(m, x)             # batch statistics (before the module updates them)
        torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-4)


def test_same_padding_keeps_any_size_and_receptive_field():
    m = DynamicMultiLevelAttention(8).eval()
    for hw in [(1, 1), (2, 5), (13, 13), (56, 56)]:
        assert m(torch.randn(2, *hw, 8)).shape == (2, *hw, 8)
    # The largest branch (7x7, dilation 3) reaches 9 pixels away and no further.
    m = DynamicMultiLevelAttention(4).eval()
    with torch.no_grad():
        m.gate_fc2.weight.zero_()   # constant gate: no global path through the pooled input
        m.norm.bias.fill_(10.0)     # ReLU open everywhere
    x = torch.randn(1, 21, 21, 4, requires_grad=True)
    m(x)[0, 10, 10].sum().backward()
    rows = x.grad[0].abs().sum(dim=(1, 2)).nonzero().flatten()
    assert rows.min().item() == 1 and rows.max().item() == 19


def test_eval_mode_is_deterministic_and_per_sample():
    torch.manual_seed(1)
    m = DynamicMultiLevelAttention(24).eval()
    _randomise_bn(m)
    x = torch.randn(4, 9, 11, 24)
    with torch.no_grad():
        a, b = m(x), m(x)
        single = torch.cat([m(x[i:i + 1]) for i in range(4)])
    assert torch.equal(a, b)
    torch.testing.assert_close(a, single, atol=1e-6, rtol=1e-5)


def test_batchnorm_train_and_eval_behaviour():
    torch.manual_seed(2)
    m = DynamicMultiLevelAttention(12)
    x = torch.randn(4, 10, 10, 12) * 3 + 1
    bn = m.norm
    assert bn.num_batches_tracked.item() == 0
    running = bn.running_mean.clone()
    m.train()
    out_train = m(x)
    assert bn.num_batches_tracked.item() == 1
    assert not torch.equal(bn.running_mean, running)          # running stats updated
    # Train mode normalises with the batch: the output of one sample depends on the rest of the batch.
    with torch.no_grad():
        alone = m(x[:1])
    assert not torch.allclose(alone, out_train[:1].detach(), atol=1e-4)
    # Eval mode uses (and does not touch) the running statistics.
    m.eval()
    frozen = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    with torch.no_grad():
        a = m(x)
        b = m(x[:1])
    assert torch.equal(bn.running_mean, frozen[0]) and torch.equal(bn.running_var, frozen[1])
    assert bn.num_batches_tracked.item() == frozen[2].item()
    torch.testing.assert_close(a[:1], b, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(a, reference_forward(m, x), atol=1e-5, rtol=1e-4)


def test_gate_multiplies_output():
    torch.manual_seed(3)
    m = DynamicMultiLevelAttention(8).eval()
    x = torch.randn(2, 6, 6, 8)
    with torch.no_grad():
        m.gate_fc2.weight.zero_()
        m.gate_fc2.bias.fill_(-1e4)         # gate -> 0
        assert m(x).abs().max().item() == 0.0
        m.gate_fc2.bias.fill_(1e4)          # gate -> 1: plain reduce(relu(bn(dw(expand(x)))))
        g1 = m(x)
        m.gate_fc2.bias.fill_(0.0)          # gate -> 0.5
        torch.testing.assert_close(m(x), 0.5 * g1)


def test_bf16_autocast_and_gradients():
    torch.manual_seed(4)
    m = DynamicMultiLevelAttention(16)
    x = torch.randn(2, 14, 14, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert torch.isfinite(y.float()).all()
    y.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize("kwargs,match", [
    (dict(expansion_ratio=0), "expansion_ratio"),
    (dict(expansion_ratio=-2.0), "expansion_ratio"),
    (dict(expansion_ratio=0.01), "expansion_ratio"),
    (dict(se_ratio=0), "se_ratio"),
    (dict(fuse="mean"), "fuse"),
    (dict(gate_input="x"), "gate_input"),
    (dict(kernel_sizes=(3, 5, 8)), "kernel_sizes"),
    (dict(kernel_sizes=(3, 5)), "same length"),
    (dict(dilations=(1, 0, 3)), "dilations"),
    (dict(kernel_sizes=()), "kernel_sizes"),
    (dict(input_size=(0, 5)), "input_size"),
])
def test_invalid_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=f"dma.*{match}"):
        DynamicMultiLevelAttention(64, **kwargs)
    if "input_size" not in kwargs:
        with pytest.raises(ValueError, match="dma"):
            create_mixer("dma", 64, **kwargs)
