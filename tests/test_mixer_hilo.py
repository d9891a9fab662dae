"""HiLo (LITv2) against hand-written references: parameter counts, plain MHSA, Hi-Fi, Lo-Fi, padding."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mixers import create_mixer

# seed_mixers.md section G, HiLo column (head_dim 32, alpha 0.9, s=2, qkv_bias).
PARAMS_PER_BLOCK = [
    (64, 56, 14_592), (128, 28, 59_904), (320, 14, 392_448), (512, 7, 993_280),
    (96, 56, 33_152), (192, 28, 137_984), (384, 14, 550_400), (576, 7, 1_263_872),
]


def _hilo(dim: int, **hparams):
    torch.manual_seed(0)
    return create_mixer("hilo", dim, **hparams).eval()


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention written out: (..., Lq, d), (..., Lk, d) -> (..., Lq, d)."""
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v


def _heads(t: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(N, heads*head_dim) -> (heads, N, head_dim)."""
    return t.reshape(t.shape[0], -1, head_dim).transpose(0, 1)


def _lofi_reference(m, x: torch.Tensor) -> torch.Tensor:
    """Loop over images; keys/values from explicit means of the real pixels of every s x s cell."""
    s, d = m.window_size, m.head_dim
    out = []
    for img in x:
        H, W, C = img.shape
        cells = torch.stack([img[i:i + s, j:j + s].reshape(-1, C).mean(0)
                             for i in range(0, H, s) for j in range(0, W, s)])
        q = _heads(F.linear(img.reshape(-1, C), m.l_q.weight, m.l_q.bias), d)
        k, v = F.linear(cells, m.l_kv.weight, m.l_kv.bias).chunk(2, dim=-1)
        y = _attend(q, _heads(k, d), _heads(v, d)).transpose(0, 1).reshape(H, W, m.l_dim)
        out.append(F.linear(y, m.l_proj.weight, m.l_proj.bias))
    return torch.stack(out)


def _hifi_reference(m, x: torch.Tensor) -> torch.Tensor:
    """Loop over images and windows; a border window holds only its real pixels."""
    s, d = m.window_size, m.head_dim
    out = torch.zeros(*x.shape[:3], m.h_dim)
    for b, img in enumerate(x):
        H, W, C = img.shape
        for i in range(0, H, s):
            for j in range(0, W, s):
                win = img[i:i + s, j:j + s]
                q, k, v = F.linear(win.reshape(-1, C), m.h_qkv.weight, m.h_qkv.bias).chunk(3, dim=-1)
                y = _attend(_heads(q, d), _heads(k, d), _heads(v, d)).transpose(0, 1)
                out[b, i:i + s, j:j + s] = y.reshape(*win.shape[:2], m.h_dim)
    return F.linear(out, m.h_proj.weight, m.h_proj.bias)


@pytest.mark.parametrize("dim,res,expected", PARAMS_PER_BLOCK)
def test_params_per_block_match_official(dim, res, expected):
    with torch.device("meta"):
        m = create_mixer("hilo", dim, input_size=(res, res))
    assert sum(p.numel() for p in m.parameters()) == expected


def test_head_split_floors_alpha():
    m = _hilo(320)  # 10 heads, alpha 0.9 -> 9 Lo-Fi + 1 Hi-Fi
    assert (m.l_heads, m.h_heads, m.l_dim, m.h_dim) == (9, 1, 288, 32)
    m = _hilo(128, alpha=0.5, head_dim=16)  # 8 heads
    assert (m.l_heads, m.h_heads) == (4, 4)


def test_window_one_is_plain_multi_head_attention():
    m = _hilo(96, window_size=1, alpha=0.3)  # alpha is ignored: all 3 heads global
    assert (m.l_heads, m.h_heads, m.l_dim) == (3, 0, 96)
    x = torch.randn(2, 5, 6, 96)
    with torch.no_grad():
        y = m(x)
        tokens = x.reshape(2, 30, 96)
        q = (tokens @ m.l_q.weight.T + m.l_q.bias).reshape(2, 30, 3, 32).transpose(1, 2)
        k, v = (tokens @ m.l_kv.weight.T + m.l_kv.bias).reshape(2, 30, 2, 3, 32).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * 32 ** -0.5, dim=-1)
        ref = (attn @ v).transpose(1, 2).reshape(2, 5, 6, 96) @ m.l_proj.weight.T + m.l_proj.bias
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hw", [(8, 12), (7, 7), (15, 9), (1, 3)])
def test_hifi_only_equals_per_window_attention(hw):
    m = _hilo(64, alpha=0.0, window_size=4, head_dim=16)
    assert (m.l_heads, m.h_heads) == (0, 4) and not hasattr(m, "l_q")
    x = torch.randn(2, *hw, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _hifi_reference(m, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hw", [(8, 6), (7, 7), (15, 9), (1, 1)])
def test_lofi_only_equals_attention_to_pooled_keys(hw):
    m = _hilo(64, alpha=1.0, window_size=2)
    assert (m.l_heads, m.h_heads) == (2, 0) and not hasattr(m, "h_qkv")
    x = torch.randn(2, *hw, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _lofi_reference(m, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hw", [(6, 6), (7, 7), (15, 9)])
def test_mixed_heads_concatenate_hifi_then_lofi(hw):
    m = _hilo(128, alpha=0.5, window_size=3)  # 2 Hi-Fi + 2 Lo-Fi heads
    x = torch.randn(1, *hw, 128)
    with torch.no_grad():
        ref = torch.cat((_hifi_reference(m, x), _lofi_reference(m, x)), dim=-1)
        torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-5)


def test_hifi_border_window_sees_only_its_own_pixels():
    """A 7x7 map with s=4: the bottom-right window holds 3x3 real pixels plus masked padding."""
    m = _hilo(32, alpha=0.0, window_size=4)
    x = torch.randn(1, 7, 7, 32)
    x_changed = x.clone()
    x_changed[:, :4] = torch.randn(1, 4, 7, 32)
    x_changed[:, :, :4] = torch.randn(1, 7, 4, 32)
    with torch.no_grad():
        y, y_changed = m(x), m(x_changed)
    torch.testing.assert_close(y[:, 4:, 4:], y_changed[:, 4:, 4:], atol=0, rtol=0)
    assert not torch.allclose(y[:, :4], y_changed[:, :4])


def test_padded_positions_do_not_act_as_keys():
    """Unlike the official det/seg zero padding, the odd-size result ignores the padding entirely:
    a 3x3 map with s=4 is one window, i.e. global attention over the 9 real tokens only."""
    m = _hilo(32, alpha=0.0, window_size=4)
    x = torch.randn(1, 3, 3, 32)
    with torch.no_grad():
        q, k, v = F.linear(x.reshape(9, 32), m.h_qkv.weight, m.h_qkv.bias).chunk(3, dim=-1)
        ref = F.linear(_attend(q, k, v), m.h_proj.weight, m.h_proj.bias).reshape(1, 3, 3, 32)
        torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hparams,message", [
    (dict(dim=80), "multiple of head_dim 32"),
    (dict(dim=96, num_heads=4), "num_heads * head_dim must equal dim"),
    (dict(dim=64, head_dim=0), "head_dim must be a positive int"),
    (dict(dim=64, alpha=1.5), "alpha must be in [0, 1], got 1.5"),
    (dict(dim=64, alpha=-0.1), "alpha must be in [0, 1], got -0.1"),
    (dict(dim=64, window_size=0), "window_size must be an int >= 1, got 0"),
    (dict(dim=64, window_size=8, input_size=(7, 7)), "window_size 8 must not exceed"),
])
def test_invalid_hparams_raise_value_error(hparams, message):
    with pytest.raises(ValueError, match=r"^hilo: ") as err:
        create_mixer("hilo", **hparams)
    assert message in str(err.value)


def test_explicit_heads_consistent_with_head_dim_are_accepted():
    m = create_mixer("hilo", 96, num_heads=6, head_dim=16, window_size=7, input_size=(7, 7))
    assert (m.l_heads, m.h_heads) == (5, 1)
