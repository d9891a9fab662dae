"""MSDA (DilateFormer) against an explicit ``F.unfold`` reference: parameters, head split, values, gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixers import create_mixer, validate_mixer

# seed_mixers.md section G, MSDA column (official module, heads = C/32); 4C^2 + 4C where it fails (C % 3).
PARAMS_PER_BLOCK = [
    (96, 37_248), (192, 148_224), (384, 591_360), (576, 1_329_408),
    (64, 16_640), (128, 66_048), (320, 410_880), (512, 1_050_624),
]


def _msda(dim: int, **hparams):
    torch.manual_seed(0)
    m = create_mixer("msda", dim, **hparams).eval()
    with torch.no_grad():  # non-zero biases so that bias handling is checked too
        m.qkv.bias.normal_()
    return m


def _unfold_reference(m, x: torch.Tensor, heads_per_dilation: list[tuple[int, int]]) -> torch.Tensor:
    """The official algorithm: per dilation group, ``F.unfold`` keys/values (zero padding, no mask).

    ``heads_per_dilation`` spells out the documented split as (dilation, heads), groups in channel order.
    """
    B, H, W, C = x.shape
    hd, ks = m.head_dim, m.kernel_size
    q, k, v = F.linear(x, m.qkv.weight, m.qkv.bias).permute(0, 3, 1, 2).chunk(3, dim=1)  # NCHW
    outs, start = [], 0
    for rate, heads in heads_per_dilation:
        stop = start + heads * hd

        def unfold(t: torch.Tensor) -> torch.Tensor:
            cols = F.unfold(t[:, start:stop], ks, dilation=rate, padding=rate * (ks // 2))
            return cols.reshape(B, heads, hd, ks * ks, H * W)

        qg = q[:, start:stop].reshape(B, heads, hd, H * W)
        attn = (torch.einsum("bhdn,bhdkn->bhnk", qg, unfold(k)) * hd ** -0.5).softmax(dim=-1)
        outs.append(torch.einsum("bhnk,bhdkn->bhdn", attn, unfold(v)).reshape(B, heads * hd, H, W))
        start = stop
    y = torch.cat(outs, dim=1).permute(0, 2, 3, 1)
    return F.linear(y, m.proj.weight, m.proj.bias)


@pytest.mark.parametrize("dim,expected", PARAMS_PER_BLOCK)
def test_params_per_block(dim, expected):
    with torch.device("meta"):
        m = create_mixer("msda", dim)
    assert sum(p.numel() for p in m.parameters()) == expected == 4 * dim * dim + 4 * dim


@pytest.mark.parametrize("dim,split", [
    (96, [(1, 1), (2, 1), (3, 1)]),    # official: 3 heads, one per dilation
    (384, [(1, 4), (2, 4), (3, 4)]),
    (128, [(1, 2), (2, 1), (3, 1)]),   # 4 heads: the first dilation takes the extra head
    (320, [(1, 4), (2, 3), (3, 3)]),
    (64, [(1, 1), (2, 1)]),            # 2 heads: fewer groups, dilation 3 unused
])
def test_heads_split_over_dilations(dim, split):
    m = create_mixer("msda", dim)
    assert [(g.dilation, g.num_heads) for g in m.groups] == split
    assert m.head_dim == 32 and m.groups[-1].stop == dim


@pytest.mark.parametrize("dim,hparams,split", [
    (96, {}, [(1, 1), (2, 1), (3, 1)]),
    (128, {}, [(1, 2), (2, 1), (3, 1)]),
    (64, {"num_heads": 8, "kernel_size": 5, "dilation": (2, 1, 3)}, [(2, 3), (1, 3), (3, 2)]),
])
@pytest.mark.parametrize("size", [(15, 9), (7, 7)])
def test_matches_unfold_reference_values_and_gradients(dim, hparams, split, size):
    m = _msda(dim, **hparams)
    x = torch.randn(2, *size, dim, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = m(x), _unfold_reference(m, x_ref, split)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)

    probe = torch.randn_like(y)
    grads = torch.autograd.grad((y * probe).sum(), [x, m.qkv.weight, m.qkv.bias])
    grads_ref = torch.autograd.grad((y_ref * probe).sum(), [x_ref, m.qkv.weight, m.qkv.bias])
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, atol=1e-4, rtol=1e-4)


def test_outside_keys_are_zero_logits_not_masked():
    """On a 1x1 map each head's 9 keys are the pixel plus 8 zero keys: weight e^s / (e^s + 8) on v."""
    m = _msda(96)
    x = torch.randn(1, 1, 1, 96)
    q, k, v = F.linear(x, m.qkv.weight, m.qkv.bias).reshape(3, 3, 32)  # (q/k/v, head, channel)
    score = (q * k).sum(-1) / 32 ** 0.5
    weight = score.exp() / (score.exp() + 8)
    expected = F.linear((weight[:, None] * v).reshape(96), m.proj.weight, m.proj.bias)
    torch.testing.assert_close(m(x).reshape(96), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dim,hparams,words", [
    (64, {"num_heads": 3}, ["num_heads", "3", "dim=64"]),
    (100, {}, ["num_heads", "3", "dim // head_dim"]),
    (96, {"kernel_size": 4}, ["kernel_size", "4", "odd"]),
    (96, {"kernel_size": 0}, ["kernel_size", "0"]),
    (96, {"dilation": ()}, ["dilation", "()", "non-empty"]),
    (96, {"dilation": (1, 0)}, ["dilation", "(1, 0)", "positive"]),
    (96, {"head_dim": 0}, ["head_dim", "0"]),
])
def test_invalid_hparams_raise_value_error(dim, hparams, words):
    with pytest.raises(ValueError) as info:
        validate_mixer("msda", dim, **hparams)
    assert str(info.value).startswith("msda:")
    for word in words:
        assert word in str(info.value)
