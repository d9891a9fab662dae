"""``hybrid_metaformer`` keeps the contract timm's own ``tests/test_models.py`` checks, with every mixer.

Re-implemented from timm's test file (forward, grad checkpointing, backward, default cfg,
features_only, forward_intermediates, torch.fx forward/backward) on one small architecture per
mixer: that mixer in all four stages, widths a multiple of 32, built at the size it runs at.
"""
from __future__ import annotations

import pytest
import timm
import torch
from timm.models import get_notrace_functions, get_notrace_modules
from torchvision.models.feature_extraction import (
    NodePathTracer,
    create_feature_extractor,
    get_graph_node_names,
)

from mixers import MIXER_NAMES

IMG_SIZE = 64
DIMS = [32, 64, 96, 128]
REDUCTIONS = [4, 8, 16, 32]
BATCH = 2


def _create(mixer: str, **kwargs) -> torch.nn.Module:
    return timm.create_model("hybrid_metaformer", pretrained=False, mixers=[mixer] * 4, depths=[1, 1, 1, 1],
                             dims=DIMS, img_size=IMG_SIZE, **kwargs)


def _input(model: torch.nn.Module) -> torch.Tensor:
    return torch.randn(BATCH, *model.pretrained_cfg["input_size"])


def _assert_all_params_have_grads(model: torch.nn.Module) -> None:
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.fixture(params=MIXER_NAMES)
def mixer(request: pytest.FixtureRequest) -> str:
    return request.param


def test_forward_and_grad_checkpointing(mixer: str) -> None:
    model = _create(mixer).eval()
    assert model.pretrained_cfg["input_size"] == (3, IMG_SIZE, IMG_SIZE)
    x = _input(model)
    with torch.no_grad():
        out = model(x)
        model.set_grad_checkpointing()
        out_ckpt = model(x)
    assert out.shape == (BATCH, model.num_classes)
    assert not torch.isnan(out).any()
    torch.testing.assert_close(out_ckpt, out, rtol=1e-4, atol=1e-5)


def test_backward_with_42_classes(mixer: str) -> None:
    model = _create(mixer, num_classes=42).train()
    out = model(_input(model))
    out.mean().backward()
    _assert_all_params_have_grads(model)
    assert out.shape[-1] == 42
    assert not torch.isnan(out).any()


def test_default_cfg_consistency(mixer: str) -> None:
    model = _create(mixer).eval()
    cfg = model.pretrained_cfg
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    state = model.state_dict()
    assert cfg["classifier"] + ".weight" in state
    assert cfg["first_conv"] + ".weight" in state
    x = _input(model)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape[1] == model.num_features
        assert tuple(features.shape[-2:]) == tuple(cfg["pool_size"])
        pre_logits = model.forward_head(features, pre_logits=True)
        assert pre_logits.shape == (BATCH, model.head_hidden_size)

        model.reset_classifier(0)
        assert model.num_classes == 0
        assert model(x).shape == pre_logits.shape
        model.reset_classifier(0, "")
        assert model(x).shape == features.shape
    unpooled = _create(mixer, num_classes=0, global_pool="").eval()
    with torch.no_grad():
        assert unpooled(x).shape == features.shape


def test_features_only(mixer: str) -> None:
    model = timm.create_model("hybrid_metaformer", pretrained=False, features_only=True, mixers=[mixer] * 4,
                              depths=[1, 1, 1, 1], dims=DIMS, img_size=IMG_SIZE).eval()
    assert model.feature_info.channels() == DIMS
    assert model.feature_info.reduction() == REDUCTIONS
    with torch.no_grad():
        maps = model(torch.randn(BATCH, 3, IMG_SIZE, IMG_SIZE))
    assert len(maps) == 4
    for fmap, chs, red in zip(maps, DIMS, REDUCTIONS):
        assert fmap.shape == (BATCH, chs, IMG_SIZE // red, IMG_SIZE // red)
        assert not torch.isnan(fmap).any()


def test_forward_intermediates(mixer: str) -> None:
    model = _create(mixer).eval()
    x = _input(model)
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x, output_fmt="NCHW")
        features = model.forward_features(x)
    assert [t.shape[1] for t in intermediates] == [info["num_chs"] for info in model.feature_info]
    assert [IMG_SIZE // t.shape[-1] for t in intermediates] == REDUCTIONS
    torch.testing.assert_close(final, features, rtol=0, atol=0)

    getter = _create(mixer, features_only=True, feature_cls="getter").eval()
    with torch.no_grad():
        maps = getter(x)
    assert [m.shape[1] for m in maps] == DIMS


def _fx_model(model: torch.nn.Module, train: bool) -> torch.nn.Module:
    """timm's ``_create_fx_model``: trace with timm's leaf modules/functions, return the output node(s)."""
    tracer_kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(),
                         param_shapes_constant=True)
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    train_return_nodes = [train_nodes[-1]]
    if train:
        graph_nodes = list(reversed(NodePathTracer(**tracer_kwargs).trace(model).nodes))
        output_inputs = [n.name for n in graph_nodes[0]._input_nodes.keys()]
        names = [n.name for n in graph_nodes]
        train_return_nodes = [train_nodes[-names.index(name)] for name in output_inputs]
    return create_feature_extractor(model, train_return_nodes=train_return_nodes,
                                    eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=tracer_kwargs)


def test_fx_forward_is_bit_identical(mixer: str) -> None:
    model = _create(mixer).eval()
    x = _input(model)
    with torch.no_grad():
        eager = model(x)
        fx_out = tuple(_fx_model(model, train=False)(x).values())
    assert len(fx_out) == 1
    assert torch.equal(fx_out[0], eager)


def test_fx_backward(mixer: str) -> None:
    model = _create(mixer, num_classes=42).train()
    fx_model = _fx_model(model, train=True)
    out = torch.cat(tuple(fx_model(_input(model)).values()))
    out.mean().backward()
    _assert_all_params_have_grads(model)
    assert out.shape[-1] == 42


def test_unknown_mixer_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no_such_mixer"):
        timm.create_model("hybrid_metaformer", pretrained=False, mixers=["sepconv", "no_such_mixer", "mhsa", "mhsa"])


@pytest.mark.parametrize("mixer", MIXER_NAMES)
def test_torchscript_and_fx_torchscript(mixer: str) -> None:
    """timm's test_model_forward_torchscript / _fx_torchscript.  TorchScript is deprecated upstream
    (torch >= 2.11), but every mixer stays scriptable (dynamic_filter skips its eager-only autocast
    guard when scripted; hilo compiles only the branches that have heads)."""
    from timm.layers import set_scriptable

    with set_scriptable(True):
        model = _create(mixer).eval()
    x = _input(model)
    with torch.inference_mode():
        eager = model(x)
        scripted = torch.jit.script(model)(x)
        fx_scripted = tuple(torch.jit.script(_fx_model(model, train=False))(x).values())[0]
    torch.testing.assert_close(scripted, eager)
    torch.testing.assert_close(fx_scripted, eager)
