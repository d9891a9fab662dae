"""LITv2 and DilateFormer as timm models: exact parameter counts, GMACs, shapes, gradients, features,
export, and agreement with an independent functional re-statement of the official forward passes.

The functional references below are written in the official code's layout (token sequences, 1x1
conv qkv and unfolded neighbourhoods for MSDA, downsampling at the end of a stage, the deformable
conv as the official CUDA kernel samples) and read *official* checkpoint keys: a random
official-layout state dict is loaded into our model through ``checkpoint_filter_fn`` (strict), so
the key mapping and the mathematics are checked together.
"""
import math

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models import save_for_hf

import backbones  # noqa: F401  (registers the models)
from backbones import profile
from backbones.dilateformer import checkpoint_filter_fn as dilateformer_filter
from backbones.litv2 import checkpoint_filter_fn as litv2_filter

# Official code, 224x224, 1000 classes: parameters exact; GMACs = LITv2's own ``flops()`` and
# DilateFormer's fvcore count (both from the official code; papers: 3.7/7.5/13.2 and 3.2/4.8/10.0).
REFERENCE = {
    "litv2_s": (27_844_000, 3.734),
    "litv2_m": (48_830_368, 7.479),
    "litv2_b": (86_520_704, 13.194),
    "dilateformer_tiny": (17_238_744, 3.177),
    "dilateformer_small": (24_057_504, 4.613),
    "dilateformer_base": (47_432_376, 9.962),
}
SMALL_NAMES = ("litv2_s", "dilateformer_tiny")
TINY = dict(depths=(1, 1, 1, 1))  # one block per stage: fast, every block type still present


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parameter_count_equals_official(name: str) -> None:
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE[name][0]


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n in SMALL_NAMES else pytest.mark.slow) for n in sorted(REFERENCE)])
def test_gmacs_within_two_percent_of_official(name: str) -> None:
    cost = profile(timm.create_model(name, pretrained=False), 224)
    assert cost.uncounted_ops == {}
    assert cost.gmacs == pytest.approx(REFERENCE[name][1], rel=0.02)


@pytest.fixture(scope="module", params=SMALL_NAMES)
def small_model(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module]:
    """The smallest real variant of each family, built once for this module."""
    return request.param, timm.create_model(request.param, pretrained=False).eval()


@pytest.mark.parametrize("size", [(224, 224), (220, 199)])
def test_logits_and_features_shapes(small_model, size) -> None:
    """220 x 199 is odd everywhere: LITv2 pads the stem to 220 x 200 and runs HiLo on a 13 x 12 grid."""
    name, model = small_model
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
    if name.startswith("litv2"):
        grid = [(-(-size[0] // 4), -(-size[1] // 4))]
        grid += [(grid[-1][0] >> k, grid[-1][1] >> k) for k in (1, 2, 3)]
    else:
        grid = [(math.ceil(size[0] / 4), math.ceil(size[1] / 4))]
        for _ in range(3):
            grid.append((math.ceil(grid[-1][0] / 2), math.ceil(grid[-1][1] / 2)))
    assert features.shape == (1, model.num_features, *grid[-1])
    assert logits.shape == (1, 1000)
    assert torch.isfinite(logits).all()
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
    assert [tuple(m.shape[-2:]) for m in maps] == grid
    assert [m.shape[1] for m in maps] == [i["num_chs"] for i in model.feature_info]
    torch.testing.assert_close(final, features, rtol=0, atol=0)


@pytest.mark.parametrize("name", SMALL_NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    model = timm.create_model(name, pretrained=False, num_classes=7, img_size=64, drop_path_rate=0.1, **TINY)
    model.train()
    model(torch.randn(2, 3, 64, 64)).logsumexp(-1).sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead}"


@pytest.mark.parametrize("name", SMALL_NAMES)
def test_features_only_and_intermediates(name: str) -> None:
    widths = [72 * 2 ** i for i in range(4)] if name.startswith("dilate") else [96 * 2 ** i for i in range(4)]
    x = torch.randn(2, 3, 64, 64)
    for feature_cls in (None, "getter"):
        kwargs = {} if feature_cls is None else dict(feature_cls=feature_cls)
        extractor = timm.create_model(name, pretrained=False, features_only=True, img_size=64, **TINY, **kwargs)
        assert extractor.feature_info.channels() == widths
        assert extractor.feature_info.reduction() == [4, 8, 16, 32]
        with torch.no_grad():
            maps = extractor.eval()(x)
        assert [tuple(m.shape) for m in maps] == [(2, c, 64 // r, 64 // r) for c, r in zip(widths, [4, 8, 16, 32])]

    model = timm.create_model(name, pretrained=False, img_size=64, **TINY).eval()
    with torch.no_grad():
        only = model.forward_intermediates(x, indices=[1, 3], norm=True, intermediates_only=True)
        final, _ = model.forward_intermediates(x)
    assert [m.shape[1] for m in only] == [widths[1], widths[3]]
    torch.testing.assert_close(only[1], final)  # norm=True normalises the last stage like forward_features
    assert model.prune_intermediate_layers([0, 1]) == [0, 1]
    assert len(model.stages) == 2 and model.num_classes == 0


@pytest.mark.parametrize("name", SMALL_NAMES)
def test_classifier_reset_and_pre_logits(name: str) -> None:
    model = timm.create_model(name, pretrained=False, img_size=64, **TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        pre = model.forward_head(features, pre_logits=True)
        assert pre.shape == (2, model.head_hidden_size)
        model.reset_classifier(5)
        assert model(x).shape == (2, 5)
        model.reset_classifier(0, "")
        assert model(x).shape == features.shape
    assert model.pretrained_cfg["input_size"] == (3, 64, 64) and model.pretrained_cfg["pool_size"] == (2, 2)


@pytest.mark.parametrize("name", SMALL_NAMES)
def test_hf_local_dir_round_trip(name: str, tmp_path) -> None:
    model_args = dict(img_size=64, num_classes=10, **TINY)
    model = timm.create_model(name, pretrained=False, **model_args).eval()
    _randomise(model)
    save_for_hf(model, str(tmp_path), model_args=model_args, safe_serialization=True)
    loaded = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.pretrained_cfg["input_size"] == (3, 64, 64)


# ---- agreement with the official forward pass, restated functionally ----------------------------

def _randomise(model: torch.nn.Module) -> None:
    """Non-trivial values everywhere (offset convs, norms, BN statistics) so every path matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "offset_conv" in name:
                p.normal_(0.0, 0.05)
            elif p.dim() == 1:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)


def _random_official(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Random float64 tensors for an official state dict: scaled weights, norms near 1, offsets of ~1 px."""
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, dtype=torch.float64) + 0.5
        elif "conv_offset" in key:
            out[key] = torch.randn(shape, dtype=torch.float64) * 0.05
        elif len(shape) == 1:
            out[key] = float(key.endswith("weight")) + 0.1 * torch.randn(shape, dtype=torch.float64)
        else:
            out[key] = torch.randn(shape, dtype=torch.float64) / math.sqrt(math.prod(shape[1:]))
    return out


def _bn(sd: dict, p: str, x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return F.batch_norm(x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"],
                        False, 0.0, eps)


def _ln(sd: dict, p: str, t: torch.Tensor, eps: float) -> torch.Tensor:
    return F.layer_norm(t, t.shape[-1:], sd[p + "weight"], sd[p + "bias"], eps)


def _linear(sd: dict, p: str, t: torch.Tensor) -> torch.Tensor:
    return F.linear(t, sd[p + "weight"], sd[p + "bias"])


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1) @ v


def _bilinear_zero_outside(img: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The official DCN kernel's sampling: 0 unless -1 < h < H and -1 < w < W; missing corners are 0."""
    B, C, H, W = img.shape
    h0, w0 = torch.floor(h), torch.floor(w)
    lh, lw = h - h0, w - w0
    h0, w0 = h0.long(), w0.long()
    flat = img.reshape(B, C, H * W)

    def corner(hh: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
        ok = (hh >= 0) & (ww >= 0) & (hh < H) & (ww < W)
        index = (hh.clamp(0, H - 1) * W + ww.clamp(0, W - 1)).reshape(B, 1, -1).expand(B, C, -1)
        return torch.gather(flat, 2, index).reshape(B, C, *hh.shape[1:]) * ok[:, None]

    value = (((1 - lh) * (1 - lw))[:, None] * corner(h0, w0) + ((1 - lh) * lw)[:, None] * corner(h0, w0 + 1)
             + (lh * (1 - lw))[:, None] * corner(h0 + 1, w0) + (lh * lw)[:, None] * corner(h0 + 1, w0 + 1))
    return value * ((h > -1) & (w > -1) & (h < H) & (w < W))[:, None]


def _deform_conv_2x2(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """2x2/stride-2 deformable conv; offset channel 2k is dy, 2k+1 is dx of tap k = 2i + j."""
    oh, ow = offset.shape[-2:]
    rows = (torch.arange(oh, dtype=x.dtype) * 2)[:, None]
    cols = (torch.arange(ow, dtype=x.dtype) * 2)[None, :]
    taps = [_bilinear_zero_outside(x, rows + i + offset[:, 2 * (2 * i + j)], cols + j + offset[:, 2 * (2 * i + j) + 1])
            for i in range(2) for j in range(2)]
    out = torch.einsum("bckhw,ock->bohw", torch.stack(taps, 2), weight.flatten(2))
    return out + bias.view(1, -1, 1, 1)


LITV2_SMALL = dict(depths=(1, 2, 1, 1), embed_dim=32, num_heads=(1, 2, 4, 8), window_sizes=(0, 0, 2, 1))


def _litv2_official_shapes(depths, embed_dim, num_heads, window_sizes, alpha=0.9, classes=10) -> dict:
    """Official ``LITv2`` state-dict keys and shapes (``layers.i.blocks.j`` / ``layers.i.downsample``)."""
    s = {"patch_embed.proj.weight": (embed_dim, 3, 4, 4), "patch_embed.proj.bias": (embed_dim,),
         "patch_embed.norm.weight": (embed_dim,), "patch_embed.norm.bias": (embed_dim,)}
    for i, depth in enumerate(depths):
        c = embed_dim * 2 ** i
        hd = c // num_heads[i]
        ws = window_sizes[i]
        l_heads = num_heads[i] if ws == 1 else int(num_heads[i] * alpha)
        l_dim, h_dim = l_heads * hd, (num_heads[i] - l_heads) * hd
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            if ws:
                s.update({p + "norm1.weight": (c,), p + "norm1.bias": (c,)})
                if l_dim:
                    s.update({p + "attn.l_q.weight": (l_dim, c), p + "attn.l_q.bias": (l_dim,),
                              p + "attn.l_kv.weight": (2 * l_dim, c), p + "attn.l_kv.bias": (2 * l_dim,),
                              p + "attn.l_proj.weight": (l_dim, l_dim), p + "attn.l_proj.bias": (l_dim,)})
                if h_dim:
                    s.update({p + "attn.h_qkv.weight": (3 * h_dim, c), p + "attn.h_qkv.bias": (3 * h_dim,),
                              p + "attn.h_proj.weight": (h_dim, h_dim), p + "attn.h_proj.bias": (h_dim,)})
            s.update({p + "norm2.weight": (c,), p + "norm2.bias": (c,),
                      p + "mlp.fc1.weight": (4 * c, c), p + "mlp.fc1.bias": (4 * c,),
                      p + "mlp.dwconv.dwconv.weight": (4 * c, 1, 3, 3), p + "mlp.dwconv.dwconv.bias": (4 * c,),
                      p + "mlp.fc2.weight": (c, 4 * c), p + "mlp.fc2.bias": (c,)})
        if i < len(depths) - 1:
            p = f"layers.{i}.downsample."
            s.update({p + "dconv.weight": (2 * c, c, 2, 2), p + "dconv.bias": (2 * c,),
                      p + "dconv.conv_offset.weight": (8, c, 2, 2), p + "dconv.conv_offset.bias": (8,)})
            s.update({p + f"norm_layer.{k}": (2 * c,) for k in ("weight", "bias", "running_mean", "running_var")})
            s[p + "norm_layer.num_batches_tracked"] = ()
    c = embed_dim * 2 ** (len(depths) - 1)
    s.update({"norm.weight": (c,), "norm.bias": (c,), "head.weight": (classes, c), "head.bias": (classes,)})
    return s


def _litv2_official_forward(sd: dict, x: torch.Tensor, depths, embed_dim, num_heads, window_sizes,
                            alpha: float = 0.9) -> torch.Tensor:
    """Official LITv2 classification forward on (B, N, C) tokens (H, W even at every merge)."""
    x = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=4)
    B, C, H, W = x.shape
    t = _ln(sd, "patch_embed.norm.", x.flatten(2).transpose(1, 2), 1e-5)
    for i, depth in enumerate(depths):
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            if window_sizes[i]:
                t = t + _hilo_official(sd, p + "attn.", _ln(sd, p + "norm1.", t, 1e-5), H, W, num_heads[i],
                                       window_sizes[i], alpha)
            y = _linear(sd, p + "mlp.fc1.", _ln(sd, p + "norm2.", t, 1e-5))
            y = F.conv2d(y.transpose(1, 2).reshape(B, -1, H, W), sd[p + "mlp.dwconv.dwconv.weight"],
                         sd[p + "mlp.dwconv.dwconv.bias"], padding=1, groups=y.shape[-1])
            t = t + _linear(sd, p + "mlp.fc2.", F.gelu(y.flatten(2).transpose(1, 2)))
        if i < len(depths) - 1:
            p = f"layers.{i}.downsample."
            grid = t.transpose(1, 2).reshape(B, C, H, W)
            offset = F.conv2d(grid, sd[p + "dconv.conv_offset.weight"], sd[p + "dconv.conv_offset.bias"], stride=2)
            y = _deform_conv_2x2(grid, offset, sd[p + "dconv.weight"], sd[p + "dconv.bias"])
            y = F.gelu(_bn(sd, p + "norm_layer.", y))
            B, C, H, W = y.shape
            t = y.flatten(2).transpose(1, 2)
    t = _ln(sd, "norm.", t, 1e-5)
    return _linear(sd, "head.", t.mean(1))


def _hilo_official(sd: dict, p: str, t: torch.Tensor, H: int, W: int, heads: int, ws: int,
                   alpha: float) -> torch.Tensor:
    """HiLo: Hi-Fi attention in ws x ws windows (first channels), Lo-Fi attention to ws-pooled keys (last)."""
    B, N, C = t.shape
    hd = C // heads
    l_heads = heads if ws == 1 else int(heads * alpha)
    h_heads = heads - l_heads
    x = t.reshape(B, H, W, C)
    outs = []
    if h_heads:
        windows = x.reshape(B, H // ws, ws, W // ws, ws, C).transpose(2, 3).reshape(B, -1, ws * ws, C)
        qkv = _linear(sd, p + "h_qkv.", windows).reshape(B, -1, ws * ws, 3, h_heads, hd).permute(3, 0, 1, 4, 2, 5)
        y = _attend(qkv[0], qkv[1], qkv[2]).transpose(2, 3).reshape(B, H // ws, W // ws, ws, ws, h_heads * hd)
        outs.append(_linear(sd, p + "h_proj.", y.transpose(2, 3).reshape(B, H, W, h_heads * hd)))
    if l_heads:
        q = _linear(sd, p + "l_q.", x).reshape(B, N, l_heads, hd).transpose(1, 2)
        source = F.avg_pool2d(x.permute(0, 3, 1, 2), ws).flatten(2).transpose(1, 2) if ws > 1 else t
        kv = _linear(sd, p + "l_kv.", source).reshape(B, -1, 2, l_heads, hd).permute(2, 0, 3, 1, 4)
        y = _attend(q, kv[0], kv[1]).transpose(1, 2).reshape(B, H, W, l_heads * hd)
        outs.append(_linear(sd, p + "l_proj.", y))
    return torch.cat(outs, dim=-1).reshape(B, N, C)


def test_deformable_merging_samples_like_the_official_kernel() -> None:
    """torchvision's deform_conv2d inside our DTM vs the official kernel's sampling, offsets up to +-6 px."""
    from backbones.litv2 import DeformableTokenMerging

    dtm = DeformableTokenMerging(6, 12).double().eval()
    with torch.no_grad():
        dtm.offset_conv.weight.normal_(0.0, 1.0)
        dtm.offset_conv.bias.normal_(0.0, 2.0)
    x = torch.randn(2, 6, 9, 11, dtype=torch.float64)
    offset = dtm.offset_conv(x)
    assert offset.abs().max() > 4  # samples leave the map: the zero-outside rule is exercised
    expected = _deform_conv_2x2(x, offset, dtm.deform_conv.weight, dtm.deform_conv.bias)
    torch.testing.assert_close(dtm.deform_conv(x, offset), expected, rtol=1e-10, atol=1e-10)


def test_litv2_matches_official_forward_after_official_checkpoint_load() -> None:
    official = _random_official(_litv2_official_shapes(**LITV2_SMALL))
    model = timm.create_model("litv2_s", pretrained=False, num_classes=10, img_size=64, **LITV2_SMALL).double()
    model.load_state_dict(litv2_filter({"model": official}, model), strict=True)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ours = model.eval()(x)
        expected = _litv2_official_forward(official, x, **LITV2_SMALL)
    torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-9)


DILATE_SMALL = dict(depths=(1, 2, 1, 1), embed_dim=24, num_heads=(3, 6, 12, 24))


def _dilateformer_official_shapes(depths, embed_dim, num_heads, classes=10) -> dict:
    """Official ``Dilateformer`` keys and shapes (``patch_embed.proj.N``, ``stages.i.downsample.proj.N``)."""
    s: dict = {}

    def bn(p: str, c: int) -> None:
        s.update({p + k: (c,) for k in ("weight", "bias", "running_mean", "running_var")})
        s[p + "num_batches_tracked"] = ()

    widths = [3, 16, 32, 64]
    for n, (cin, cout) in enumerate(zip(widths, widths[1:] + [embed_dim])):
        s[f"patch_embed.proj.{3 * n}.weight"] = (cout, cin, 3, 3)
        if n < 3:
            bn(f"patch_embed.proj.{3 * n + 1}.", cout)
    for i, depth in enumerate(depths):
        c = embed_dim * 2 ** i
        for j in range(depth):
            p = f"stages.{i}.blocks.{j}."
            s.update({p + "pos_embed.weight": (c, 1, 3, 3), p + "pos_embed.bias": (c,),
                      p + "norm1.weight": (c,), p + "norm1.bias": (c,),
                      p + "attn.qkv.weight": (3 * c, c, 1, 1) if i < 2 else (3 * c, c), p + "attn.qkv.bias": (3 * c,),
                      p + "attn.proj.weight": (c, c), p + "attn.proj.bias": (c,),
                      p + "norm2.weight": (c,), p + "norm2.bias": (c,),
                      p + "mlp.fc1.weight": (4 * c, c), p + "mlp.fc1.bias": (4 * c,),
                      p + "mlp.fc2.weight": (c, 4 * c), p + "mlp.fc2.bias": (c,)})
        if i < len(depths) - 1:
            s.update({f"stages.{i}.downsample.proj.0.weight": (2 * c, c, 3, 3),
                      f"stages.{i}.downsample.proj.0.bias": (2 * c,)})
            bn(f"stages.{i}.downsample.proj.1.", 2 * c)
    c = embed_dim * 2 ** (len(depths) - 1)
    s.update({"norm.weight": (c,), "norm.bias": (c,), "head.weight": (classes, c), "head.bias": (classes,)})
    return s


def _msda_official(sd: dict, p: str, t: torch.Tensor, heads: int, dilations=(1, 2, 3), k: int = 3) -> torch.Tensor:
    """MSDA on NHWC ``t``: 1x1-conv qkv, one dilation per channel group, unfolded k x k neighbourhoods."""
    B, H, W, C = t.shape
    groups, hd = len(dilations), C // heads
    qkv = F.conv2d(t.permute(0, 3, 1, 2), sd[p + "qkv.weight"], sd[p + "qkv.bias"])
    qkv = qkv.reshape(B, 3, groups, C // groups, H, W)
    outs = []
    for g, r in enumerate(dilations):
        gh = C // groups // hd
        q = qkv[:, 0, g].reshape(B, gh, hd, 1, H * W).permute(0, 1, 4, 3, 2)
        key = F.unfold(qkv[:, 1, g], k, dilation=r, padding=r * (k - 1) // 2)
        key = key.reshape(B, gh, hd, k * k, H * W).permute(0, 1, 4, 2, 3)
        value = F.unfold(qkv[:, 2, g], k, dilation=r, padding=r * (k - 1) // 2)
        value = value.reshape(B, gh, hd, k * k, H * W).permute(0, 1, 4, 3, 2)
        attn = torch.softmax(q @ key * hd ** -0.5, dim=-1)
        outs.append((attn @ value).transpose(1, 2).reshape(B, H, W, C // groups))
    return _linear(sd, p + "proj.", torch.cat(outs, dim=-1))


def _global_attention_official(sd: dict, p: str, t: torch.Tensor, heads: int) -> torch.Tensor:
    B, H, W, C = t.shape
    qkv = _linear(sd, p + "qkv.", t).reshape(B, H * W, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    y = _attend(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(B, H, W, C)
    return _linear(sd, p + "proj.", y)


def _dilateformer_official_forward(sd: dict, x: torch.Tensor, depths, embed_dim, num_heads) -> torch.Tensor:
    for n, stride in enumerate((1, 2, 1, 2)):
        x = F.conv2d(x, sd[f"patch_embed.proj.{3 * n}.weight"], stride=stride, padding=1)
        if n < 3:
            x = F.gelu(_bn(sd, f"patch_embed.proj.{3 * n + 1}.", x))
    for i, depth in enumerate(depths):
        for j in range(depth):
            p = f"stages.{i}.blocks.{j}."
            x = x + F.conv2d(x, sd[p + "pos_embed.weight"], sd[p + "pos_embed.bias"], padding=1, groups=x.shape[1])
            t = x.permute(0, 2, 3, 1)
            normed = _ln(sd, p + "norm1.", t, 1e-6)
            mixed = (_msda_official(sd, p + "attn.", normed, num_heads[i]) if i < 2
                     else _global_attention_official(sd, p + "attn.", normed, num_heads[i]))
            t = t + mixed
            t = t + _linear(sd, p + "mlp.fc2.", F.gelu(_linear(sd, p + "mlp.fc1.", _ln(sd, p + "norm2.", t, 1e-6))))
            x = t.permute(0, 3, 1, 2)
        if i < len(depths) - 1:
            p = f"stages.{i}.downsample.proj."
            x = _bn(sd, p + "1.", F.conv2d(x, sd[p + "0.weight"], sd[p + "0.bias"], stride=2, padding=1))
    t = _ln(sd, "norm.", x.flatten(2).transpose(1, 2), 1e-6)
    return _linear(sd, "head.", t.mean(1))


@pytest.mark.parametrize("size", [(64, 64), (61, 45)])
def test_dilateformer_matches_official_forward_after_official_checkpoint_load(size) -> None:
    official = _random_official(_dilateformer_official_shapes(**DILATE_SMALL))
    model = timm.create_model("dilateformer_tiny", pretrained=False, num_classes=10, img_size=64, **DILATE_SMALL)
    model = model.double()
    model.load_state_dict(dilateformer_filter({"model": official}, model), strict=True)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        ours = model.eval()(x)
        expected = _dilateformer_official_forward(official, x, **DILATE_SMALL)
    torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", SMALL_NAMES)
def test_own_checkpoints_pass_the_official_filter_unchanged(name: str) -> None:
    model = timm.create_model(name, pretrained=False, img_size=64, **TINY)
    state = model.state_dict()
    filtered = (litv2_filter if name.startswith("litv2") else dilateformer_filter)(state, model)
    assert filtered.keys() == state.keys()
