"""MetaFormer baseline mixers (mhsa, sepconv, pooling) against official counts, references and timm's CAFormer."""
from __future__ import annotations

import pytest
import timm
import torch

import backbones  # noqa: F401  (registers hybrid_metaformer)
from mixers import create_mixer

# seed_mixers.md section G: (C, stage resolution, Attention (hd 32), SepConv).
PARAMS_PER_BLOCK = [
    (64, 56, 16_384, 22_658), (128, 28, 65_536, 78_082), (320, 14, 409_600, 440_962), (512, 7, 1_048_576, 1_098_754),
    (96, 56, 36_864, 46_274), (192, 28, 147_456, 166_274), (384, 14, 589_824, 627_458), (576, 7, 1_327_104, 1_383_554),
]
CAFORMER_S18 = dict(mixers=["sepconv", "sepconv", "mhsa", "mhsa"], depths=[3, 3, 9, 3], dims=[64, 128, 320, 512])


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("dim,res,attention,sepconv", PARAMS_PER_BLOCK)
def test_params_per_block_match_official(dim, res, attention, sepconv):
    with torch.device("meta"):
        assert _num_params(create_mixer("mhsa", dim, input_size=(res, res))) == attention
        assert _num_params(create_mixer("sepconv", dim, input_size=(res, res))) == sepconv
        assert _num_params(create_mixer("pooling", dim, input_size=(res, res))) == 0


@pytest.mark.parametrize("dim,heads", [(64, 2), (80, 2)])  # 80: attention width 64 < dim, as in sail-sg
def test_mhsa_equals_explicit_softmax_attention(dim, heads):
    torch.manual_seed(0)
    m = create_mixer("mhsa", dim).eval()
    assert m.num_heads == heads
    x = torch.randn(2, 5, 7, dim)
    with torch.no_grad():
        tokens = x.reshape(2, 35, dim)
        q, k, v = (tokens @ m.qkv.weight.T).reshape(2, 35, 3, heads, 32).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) / 32 ** 0.5, dim=-1)
        ref = (attn @ v).transpose(1, 2).reshape(2, 5, 7, heads * 32) @ m.proj.weight.T
        torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-5)


def test_pooling_is_mean_of_real_neighbours_minus_input():
    """avgpool3x3(count_include_pad=False) - x, with the neighbourhood mean written out."""
    x = torch.randn(2, 4, 5, 3)
    ref = torch.empty_like(x)
    for i in range(4):
        for j in range(5):
            window = x[:, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
            ref[:, i, j] = window.mean(dim=(1, 2)) - x[:, i, j]
    torch.testing.assert_close(create_mixer("pooling", 3)(x), ref, atol=1e-6, rtol=1e-6)


def _random_caformer_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Random weights for every tensor, scales and norm weights near (not at) 1, so all paths matter."""
    torch.manual_seed(0)
    state = {}
    for name, meta in model.state_dict().items():
        if meta.ndim > 1 or name.endswith("bias"):
            state[name] = 0.02 * torch.randn(meta.shape)
        else:
            state[name] = 1 + 0.2 * torch.randn(meta.shape)
    return state


def test_hybrid_caformer_s18_reproduces_timm_caformer_s18():
    """Same parameter count as timm's caformer_s18 and, with its weights copied in, the same logits."""
    with torch.device("meta"):  # skip the (slow) weight init of 2 x 26M parameters
        timm_model = timm.create_model("caformer_s18")
        ours = timm.create_model("hybrid_metaformer", **CAFORMER_S18)
    assert _num_params(ours) == _num_params(timm_model) == 26_341_656

    timm_state = _random_caformer_state(timm_model)
    timm_model.load_state_dict(timm_state, assign=True)
    # Same names in the same order; timm's conv stages keep 1x1 convs where ours keep Linears.
    ours_shapes = {k: v.shape for k, v in ours.state_dict().items()}
    assert list(ours_shapes) == list(timm_state)
    ours.load_state_dict({k: v.reshape(ours_shapes[k]) for k, v in timm_state.items()}, assign=True)

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, actual = timm_model.eval()(x), ours.eval()(x)
    assert expected.std() > 0.1  # a meaningful signal, not a near-constant output
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)
