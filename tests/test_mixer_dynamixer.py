"""DynaMixer against a per-sequence, per-segment loop reference: parameters, values (H != W), size errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixers import create_mixer, get_mixer_class, validate_mixer

# seed_mixers.md section G, DynaMixer column (S = 8 below 256 channels else 16, d = 2, L = stage size).
PARAMS_PER_BLOCK = [
    (64, 56, 731_696), (128, 28, 176_224), (320, 14, 545_912), (512, 7, 1_348_222),
    (96, 56, 758_520), (192, 28, 281_072), (384, 14, 775_688), (576, 7, 1_700_878),
]


def _mix_sequence_reference(op, seq: torch.Tensor) -> torch.Tensor:
    """One (L, C) sequence, one segment at a time: out[j] = sum_i softmax_i(G[i, j]) * x[i]."""
    L, C = seq.shape
    S = op.num_segments
    codes = F.linear(seq, op.compress.weight, op.compress.bias).reshape(L, S, -1)
    width = C // S
    mixed = []
    for s in range(S):
        logits = F.linear(codes[:, s].reshape(-1), op.generate.weight, op.generate.bias).reshape(L, L)
        weights = logits.softmax(dim=0)
        mixed.append(weights.T @ seq[:, s * width:(s + 1) * width])
    return F.linear(torch.cat(mixed, dim=1), op.out.weight, op.out.bias)


def _reference(m, x: torch.Tensor) -> torch.Tensor:
    B, H, W, C = x.shape
    h = torch.stack([torch.stack([_mix_sequence_reference(m.mix_h, x[b, :, j]) for j in range(W)], dim=1)
                     for b in range(B)])
    w = torch.stack([torch.stack([_mix_sequence_reference(m.mix_w, x[b, i]) for i in range(H)])
                     for b in range(B)])
    c = F.linear(x, m.mlp_c.weight)
    out = []
    for b in range(B):
        pooled = (h[b] + w[b] + c[b]).mean(dim=(0, 1))
        hidden = F.gelu(F.linear(pooled, m.reweight.fc1.weight, m.reweight.fc1.bias))
        a = F.linear(hidden, m.reweight.fc2.weight, m.reweight.fc2.bias).reshape(C, 3).softmax(dim=1)
        out.append(h[b] * a[:, 0] + w[b] * a[:, 1] + c[b] * a[:, 2])
    return F.linear(torch.stack(out), m.proj.weight, m.proj.bias)


@pytest.mark.parametrize("dim,res,expected", PARAMS_PER_BLOCK)
def test_params_per_block_match_official(dim, res, expected):
    with torch.device("meta"):
        m = create_mixer("dynamixer", dim, input_size=(res, res))
    assert sum(p.numel() for p in m.parameters()) == expected


@pytest.mark.parametrize("size", [(6, 4), (5, 5)])
def test_matches_loop_reference(size):
    torch.manual_seed(0)
    m = create_mixer("dynamixer", 32, input_size=size, num_segments=4, reduced_dim=3).eval()
    assert (m.mix_h.generate.in_features, m.mix_w.generate.in_features) == (size[0] * 3, size[1] * 3)
    x = torch.randn(2, *size, 32)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _reference(m, x), atol=1e-5, rtol=1e-5)


def test_wrong_size_raises_naming_both_sizes():
    m = create_mixer("dynamixer", 32, input_size=(6, 4))
    with pytest.raises(ValueError, match=r"dynamixer: built for input_size \(H, W\)=\(6, 4\), got \(H, W\)=\(4, 6\)"):
        m(torch.randn(1, 4, 6, 32))


def test_wrong_size_raises_under_fx_leaf_tracing():
    """The registry makes the mixer an fx leaf, so the check runs when the traced graph is called."""
    from timm.models._features_fx import create_feature_extractor

    get_mixer_class("dynamixer")  # registers the class as an fx leaf
    model = nn.Sequential(nn.Identity(), create_mixer("dynamixer", 32, input_size=(6, 4)))
    traced = create_feature_extractor(model, return_nodes={"1": "out"})
    assert traced(torch.randn(1, 6, 4, 32))["out"].shape == (1, 6, 4, 32)
    with pytest.raises(ValueError, match=r"\(6, 4\).*\(7, 4\)"):
        traced(torch.randn(1, 7, 4, 32))


@pytest.mark.parametrize("hparams,words", [
    ({"input_size": None}, ["input_size", "required"]),
    ({"input_size": (7, 7), "num_segments": 5}, ["num_segments", "5", "dim=64"]),
    ({"input_size": (7, 7), "num_segments": 0}, ["num_segments", "0"]),
    ({"input_size": (7, 7), "reduced_dim": 0}, ["reduced_dim", "0"]),
])
def test_invalid_hparams_raise_value_error(hparams, words):
    with pytest.raises(ValueError) as info:
        validate_mixer("dynamixer", 64, **hparams)
    assert str(info.value).startswith("dynamixer:")
    for word in words:
        assert word in str(info.value)
