"""The shared attention helper: its matmul path computes exactly what SDPA computes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixers import _attention
from mixers._attention import attention


def _operands(q_shape, k_shape):
    q = torch.randn(q_shape, dtype=torch.float64, requires_grad=True)
    k = torch.randn(k_shape, dtype=torch.float64, requires_grad=True)
    v = torch.randn(k_shape[:-1] + (k_shape[-1] + 3,), dtype=torch.float64, requires_grad=True)
    return q, k, v


@pytest.mark.parametrize("q_shape, k_shape", [
    ((6, 2, 4, 8), (6, 2, 4, 8)),        # HiLo Hi-Fi windows
    ((2, 3, 49, 16), (2, 3, 49, 16)),    # MHSA at 7x7
    ((2, 3, 196, 16), (2, 3, 49, 16)),   # HiLo Lo-Fi at 14x14 (the largest matmul-path problem)
    ((2, 3, 12, 16), (2, 3, 5, 16)),     # queries != keys, v wider than q
])
@pytest.mark.parametrize("masked", [False, True])
def test_matmul_path_equals_sdpa_values_and_gradients(q_shape, k_shape, masked):
    q, k, v = _operands(q_shape, k_shape)
    mask = None
    if masked:  # per-batch key mask broadcast over heads and queries (the HiLo border-window mask)
        mask = torch.rand(q_shape[0], 1, 1, k_shape[-2]) > 0.4
        mask[..., 0] = True
    ours = attention(q, k, v, 0.3, attn_mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ours, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_size_decides_the_kernel(monkeypatch):
    calls = []
    fused = F.scaled_dot_product_attention
    monkeypatch.setattr(_attention.F, "scaled_dot_product_attention",
                        lambda *a, **kw: calls.append(a[0].shape) or fused(*a, **kw))
    attention(*_operands((1, 1, 196, 4), (1, 1, 49, 4)), 1.0)   # 9604 pairs: matmuls
    assert calls == []
    attention(*_operands((1, 1, 196, 4), (1, 1, 50, 4)), 1.0)   # 9800 pairs: fused kernel
    assert len(calls) == 1


def test_dropout_applies_to_the_weights():
    torch.manual_seed(0)
    q, k, v = (t.detach() for t in _operands((2, 2, 9, 4), (2, 2, 9, 4)))
    out = attention(q, k, v, 0.5, dropout_p=1.0)
    assert torch.count_nonzero(out) == 0  # every weight dropped
    torch.testing.assert_close(attention(q, k, v, 0.5, dropout_p=0.0),
                               F.scaled_dot_product_attention(q, k, v, scale=0.5))


def test_torchscript_compiles_the_helper():
    scripted = torch.jit.script(attention)
    q, k, v = (t.detach() for t in _operands((2, 2, 9, 4), (2, 2, 9, 4)))
    mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    torch.testing.assert_close(scripted(q, k, v, 0.5, mask), attention(q, k, v, 0.5, attn_mask=mask))
