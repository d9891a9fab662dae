"""The seed papers' own models by name: DFFormer/CDFFormer, DynaMixer (exact) and DMFormer (unverified).

Parameter counts are the official code's (okojoalg/dfformer, ziyuwwang/DynaMixer) at 224x224 and
1000 classes; GMACs are the official models' fvcore counts (which exclude FFTs).  Logit agreement
with the official modules after a weight copy was checked once outside the test suite (the official
code is not a dependency); ``checkpoint_filter_fn`` is tested against key names read from it.
"""
from __future__ import annotations

import json

import pytest
import timm
import torch
from timm.models import get_notrace_functions, get_notrace_modules, save_for_hf
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import backbones
from backbones import dfformer, dynamixer_net
from backbones.flops import profile

OFFICIAL_PARAMS = {
    "dfformer_s18": 30_324_372, "dfformer_s36": 45_610_656, "dfformer_m36": 65_316_064, "dfformer_b36": 114_989_344,
    "cdfformer_s18": 30_193_512, "cdfformer_s36": 45_230_658, "cdfformer_m36": 64_433_218,
    "cdfformer_b36": 113_368_642,
    "dynamixer_s": 26_265_960, "dynamixer_m": 57_128_264, "dynamixer_l": 97_818_088,
}
# No official code: these are our own counts (as documented in backbones/dmformer.py), a regression guard.
DMFORMER_PARAMS = {"dmformer_s18": 31_179_372, "dmformer_s36": 47_074_560, "dmformer_m36": 67_308_328,
                   "dmformer_b36": 118_135_504}
# fvcore on the official models at 224 (FFTs not counted), GMACs.
OFFICIAL_GMACS = {
    "dfformer_s18": 3.800, "dfformer_s36": 7.364, "dfformer_m36": 12.463, "dfformer_b36": 22.128,
    "cdfformer_s18": 3.885, "cdfformer_s36": 7.533, "cdfformer_m36": 12.716, "cdfformer_b36": 22.465,
    "dynamixer_s": 7.324, "dynamixer_m": 17.022, "dynamixer_l": 27.402,
}
FAST_GMACS = ("dfformer_s18", "cdfformer_s18", "dynamixer_s")
SMALL = {"dfformer_s18": 64, "cdfformer_s18": 64, "dmformer_s18": 64, "dynamixer_s": 112}  # cheap build sizes


def _count(name: str, **kwargs) -> int:
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, **kwargs)
    return sum(p.numel() for p in model.parameters())


def test_every_name_is_registered() -> None:
    names = set(timm.list_models(["dfformer_*", "cdfformer_*", "dynamixer_*", "dmformer_*"]))
    assert names == set(OFFICIAL_PARAMS) | set(DMFORMER_PARAMS)


@pytest.mark.parametrize("name", [*OFFICIAL_PARAMS, *DMFORMER_PARAMS])
def test_parameter_count(name: str) -> None:
    assert _count(name) == {**OFFICIAL_PARAMS, **DMFORMER_PARAMS}[name]


def test_parameter_count_follows_the_filter_grid() -> None:
    """The official ``load_weights(model, (3, 384, 384))`` builds DFFormer-S18 with 30,432,756 parameters."""
    assert _count("dfformer_s18", img_size=384) == 30_432_756
    assert _count("dfformer_s18", num_classes=10) == OFFICIAL_PARAMS["dfformer_s18"] - 990 * (2048 + 1)


def _gmacs_without_fft(name: str) -> float:
    torch.manual_seed(0)
    p = profile(timm.create_model(name, pretrained=False), 224)
    assert p.uncounted_ops == {}
    fft = p.by_operator.get("fft_rfft2", 0) + p.by_operator.get("fft_irfft2", 0)
    return p.gmacs - fft / 1e9


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n in FAST_GMACS else pytest.mark.slow) for n in OFFICIAL_GMACS])
def test_gmacs_match_the_official_fvcore_count(name: str) -> None:
    assert _gmacs_without_fft(name) == pytest.approx(OFFICIAL_GMACS[name], rel=0.02)


def test_fixed_architecture_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="fixed by the model name"):
        timm.create_model("dfformer_s18", dims=[32, 64, 96, 128])
    with pytest.raises(ValueError, match="fixed by the model name"):
        timm.create_model("dynamixer_s", depths=[1, 1, 1, 1])


@pytest.mark.parametrize("name", ["dfformer_s18", "cdfformer_s18", "dmformer_s18", "dynamixer_s"])
def test_forward_at_224(name: str) -> None:
    model = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["dfformer_s18", "cdfformer_s18", "dmformer_s18"])
def test_metaformers_run_at_odd_sizes(name: str) -> None:
    """Built at 224 and run at 97x75, or built there; the feature map follows the conv arithmetic."""
    x = torch.randn(1, 3, 97, 75)
    expected = backbones.stage_input_sizes((97, 75))[-1]
    for model in (timm.create_model(name, num_classes=0, global_pool=""),
                  timm.create_model(name, num_classes=0, global_pool="", img_size=(97, 75))):
        with torch.no_grad():
            out = model.eval()(x)
        assert out.shape == (1, 512, *expected) and torch.isfinite(out).all()
    assert model.pretrained_cfg["input_size"] == (3, 97, 75)
    assert tuple(model.pretrained_cfg["pool_size"]) == expected


def test_dynamixer_builds_for_any_size_and_refuses_others() -> None:
    model = timm.create_model("dynamixer_s", img_size=(121, 98), num_classes=3).eval()
    assert model.grids == [(17, 14), (8, 7), (8, 7), (8, 7)]
    assert model.pretrained_cfg["input_size"] == (3, 121, 98)
    assert model.pretrained_cfg["fixed_input_size"] is True
    assert tuple(model.pretrained_cfg["pool_size"]) == (8, 7)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 121, 98)).shape == (2, 3)
        with pytest.raises(ValueError, match=r"built for 121x98 images, got 126x98; create it with img_size"):
            model(torch.randn(1, 3, 126, 98))
    with pytest.raises(ValueError, match="too small"):
        timm.create_model("dynamixer_s", img_size=13)


@pytest.mark.parametrize("name", list(SMALL))
def test_gradients_reach_every_parameter(name: str) -> None:
    model = timm.create_model(name, img_size=SMALL[name], num_classes=7).train()
    out = model(torch.randn(2, 3, SMALL[name], SMALL[name]))
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"
    assert out.shape == (2, 7)


@pytest.mark.parametrize("name, channels, reductions", [
    ("dfformer_s18", [64, 128, 320, 512], [4, 8, 16, 32]),
    ("dmformer_s18", [64, 128, 320, 512], [4, 8, 16, 32]),
    ("dynamixer_s", [192, 384, 384, 384], [7, 14, 14, 14]),
])
def test_features_only_and_intermediates(name: str, channels: list[int], reductions: list[int]) -> None:
    size = SMALL[name]
    x = torch.randn(1, 3, size, size)
    features = timm.create_model(name, img_size=size, features_only=True).eval()
    assert features.feature_info.channels() == channels
    assert features.feature_info.reduction() == reductions
    model = timm.create_model(name, img_size=size).eval()
    with torch.no_grad():
        maps = features(x)
        final, intermediates = model.forward_intermediates(x)
        pooled_features = model.forward_features(x)
    assert [m.shape[1] for m in maps] == channels
    assert [size // m.shape[-1] for m in maps] == reductions
    assert [t.shape for t in intermediates] == [m.shape for m in maps]
    torch.testing.assert_close(final, pooled_features, rtol=0, atol=0)
    assert model.forward_intermediates(x, indices=[1], intermediates_only=True)[0].shape == maps[1].shape


def test_dynamixer_head_contract() -> None:
    model = timm.create_model("dynamixer_s", img_size=56).eval()
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 384, *model.pretrained_cfg["pool_size"])
        pre_logits = model.forward_head(features, pre_logits=True)
        assert pre_logits.shape == (2, model.head_hidden_size)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pre_logits)
        model.reset_classifier(0, "")
        torch.testing.assert_close(model(x), features)
        model.reset_classifier(5, "avg")
        assert model(x).shape == (2, 5)


def _fx(model: torch.nn.Module) -> torch.nn.Module:
    tracer_kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    _, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    return create_feature_extractor(model, return_nodes=[eval_nodes[-1]], tracer_kwargs=tracer_kwargs)


def test_dynamixer_fx_and_torchscript_keep_the_size_check() -> None:
    from timm.layers import set_scriptable

    with set_scriptable(True):
        model = timm.create_model("dynamixer_s", img_size=56).eval()
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        eager = model(x)
        fx_model = _fx(model)
        scripted = torch.jit.script(model)
        assert torch.equal(tuple(fx_model(x).values())[0], eager)
        torch.testing.assert_close(scripted(x), eager)
        for wrong in (fx_model, model):
            with pytest.raises(ValueError, match="built for 56x56 images"):
                wrong(torch.randn(1, 3, 63, 56))
        with pytest.raises(Exception, match="built for 56x56 images"):  # TorchScript re-raises its own type
            scripted(torch.randn(1, 3, 63, 56))


@pytest.mark.parametrize("name", list(SMALL))
def test_local_dir_export_round_trip(name: str, tmp_path) -> None:
    size = SMALL[name]
    model = timm.create_model(name, img_size=size, num_classes=6)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        model.train()(x)  # non-trivial BatchNorm running statistics (DMFormer)
        expected = model.eval()(x)
    save_for_hf(model, str(tmp_path), safe_serialization=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == name
    loaded = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    assert type(loaded) is type(model)
    assert loaded.pretrained_cfg["input_size"] == (3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


def test_official_dfformer_keys_are_renamed() -> None:
    """Key names of okojoalg/dfformer's MetaFormer (``downsample_layers``, ``stages.i.j``, ``norm``, ``head``)."""
    official = {k: torch.zeros(1) for k in (
        "downsample_layers.0.conv.weight", "downsample_layers.0.post_norm.weight",
        "downsample_layers.2.pre_norm.weight", "downsample_layers.2.conv.bias",
        "stages.2.3.token_mixer.complex_weights", "stages.3.0.res_scale1.scale", "stages.0.1.mlp.act.scale",
        "norm.bias", "head.fc1.weight", "head.norm.weight", "head.fc2.bias")}
    renamed = dfformer.checkpoint_filter_fn(official, None)
    assert list(renamed) == [
        "stem.conv.weight", "stem.norm.weight", "stages.2.downsample.norm.weight", "stages.2.downsample.conv.bias",
        "stages.2.blocks.3.token_mixer.complex_weights", "stages.3.blocks.0.res_scale1.scale",
        "stages.0.blocks.1.mlp.act.scale", "head.norm.bias", "head.fc.fc1.weight", "head.fc.norm.weight",
        "head.fc.fc2.bias"]
    ours = {"stem.conv.weight": torch.zeros(1)}
    assert dfformer.checkpoint_filter_fn(ours, None) is ours


def test_official_dynamixer_keys_are_renamed() -> None:
    """ziyuwwang/DynaMixer's ``VisionModel``: ``network`` = [stage, stage, Downsample, stage, stage] for M."""
    with torch.device("meta"):
        model = timm.create_model("dynamixer_m")
    official = {k: torch.zeros(1) for k in (
        "patch_embed.proj.weight", "network.1.2.attn.mix_w.generate.bias", "network.2.proj.weight",
        "network.3.0.attn.reweight.fc1.weight", "network.4.2.mlp.fc2.weight", "norm.weight", "head.bias")}
    assert list(dynamixer_net.checkpoint_filter_fn(official, model)) == [
        "stem.weight", "stages.1.blocks.2.token_mixer.mix_w.generate.bias", "stages.2.downsample.weight",
        "stages.2.blocks.0.token_mixer.reweight.fc1.weight", "stages.3.blocks.2.mlp.fc2.weight", "norm.weight",
        "head.bias"]
    expected_keys = set(model.state_dict())
    assert set(dynamixer_net.checkpoint_filter_fn(official, model)) <= expected_keys
