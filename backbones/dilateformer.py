"""DilateFormer (``dilateformer_tiny``, ``_small``, ``_base``) as timm models, mixers from ``mixers``.

Paper: Jiao et al., "DilateFormer: Multi-Scale Dilated Transformer for Visual Recognition",
IEEE TMM 2023 (arXiv 2302.01791).  Official code: JIAOJIAYUASD/dilateformer
(``models/dilateformer.py``: ``Dilateformer``, ``DilateBlock``, ``GlobalBlock``, ``PatchEmbed``,
``PatchMerging``).

Architecture (same parameters, same computation as the official model):

- Overlapping stem: 3x3 convs 3->16 (stride 1), 16->32 (stride 2), 32->64 (stride 1),
  64->C (stride 2), no bias; BatchNorm + GELU after the first three, nothing after the last.
- Four stages of widths ``C * (1, 2, 4, 8)`` with 3, 6, 12, 24 heads.  Every block starts with a
  conditional position encoding ``x + dwconv3x3(x)`` (bias), then ``x + mixer(LN(x))`` and
  ``x + MLP(LN(x))`` (GELU, ratio 4, biases; LayerNorm eps 1e-6).  The mixer is multi-scale
  dilated attention (``msda``: 3x3 neighbourhoods with dilations 1, 2, 3, qkv bias) in stages 1-2
  and global multi-head self-attention (``mhsa``: qkv and projection biases, head width C/heads)
  in stages 3-4.
- Downsampling (stages 2-4): 3x3/stride-2 conv (bias) + BatchNorm.
- Head: LayerNorm per token (eps 1e-6), global average pool, Linear.

Deviations from the official code, all deliberate:

- Any input size; the official stem asserts the build size.  Nothing in the model depends on it.
- Downsampling sits at the start of stages 2-4 instead of the end of stages 1-3 (see
  ``backbones.staged``), so ``features_only`` maps have strides 4, 8, 16, 32.
- MSDA's qkv projection is an ``nn.Linear`` on NHWC tokens instead of the official 1x1 conv
  (same map, same initialisation; ``checkpoint_filter_fn`` drops the 1x1 of official weights) and
  never materialises unfolded keys and values (see ``mixers.msda``).
- Nothing is written in place.  The official MSDA writes each dilation group's output into a view
  of its own input; with PyTorch 2.14 on CPU its backward then fails with an autograd version
  error (float32, and bfloat16 autocast too).
- Stochastic depth defaults to 0 (timm convention); the official default is 0.1.
  ``qk_scale``, ``attn_drop``/``drop`` (all unset by the official models) are not exposed.
- ``checkpoint_filter_fn`` converts official checkpoints (``{"model": state_dict}``); load one
  with ``pretrained=True, pretrained_cfg_overlay=dict(file=PATH)``.
"""
import re
from collections import OrderedDict
from typing import Any, Sequence

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from backbones.staged import Stage, StagedBackbone, stage_drop_path_rates
from mixers import create_mixer, get_mixer_class

__all__ = ["DilateFormer", "checkpoint_filter_fn", "dilateformer_stage_sizes"]


def dilateformer_stage_sizes(img_size: int | Sequence[int], num_stages: int = 4) -> list[tuple[int, int]]:
    """Token grid of every stage: ceil(/2) per stride-2 conv (two in the stem, one per downsampling)."""
    h, w = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
    h, w = (h + 1) // 2, (w + 1) // 2
    sizes = [((h + 1) // 2, (w + 1) // 2)]
    for _ in range(num_stages - 1):
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    return sizes


def overlapping_stem(in_chans: int, hidden_dim: int, dim: int) -> nn.Sequential:
    """Four 3x3 convs (strides 1, 2, 1, 2), BN + GELU after the first three; NCHW."""
    widths = [in_chans, hidden_dim, 2 * hidden_dim, 4 * hidden_dim, dim]
    layers: list[tuple[str, nn.Module]] = []
    for i, stride in enumerate((1, 2, 1, 2)):
        layers.append((f"conv{i + 1}", nn.Conv2d(widths[i], widths[i + 1], 3, stride=stride, padding=1, bias=False)))
        if i < 3:
            layers += [(f"norm{i + 1}", nn.BatchNorm2d(widths[i + 1])), (f"act{i + 1}", nn.GELU())]
    return nn.Sequential(OrderedDict(layers))


def conv_downsample(in_dim: int, out_dim: int) -> nn.Sequential:
    """3x3/stride-2 conv (bias) + BatchNorm; NCHW (the official ``PatchMerging``, ``conv3_2``)."""
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1)),
        ("norm", nn.BatchNorm2d(out_dim)),
    ]))


class DilateFormerBlock(nn.Module):
    """CPE, then ``x + mixer(LN(x))`` and ``x + MLP(LN(x))``; NHWC."""

    def __init__(self, dim: int, mixer: nn.Module, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = mixer
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class DilateFormer(StagedBackbone):
    """DilateFormer: overlapping stem, CPE in every block, MSDA stages then MHSA stages (module docstring)."""

    def __init__(
        self,
        depths: Sequence[int] = (2, 2, 6, 2),
        embed_dim: int = 72,
        num_heads: Sequence[int] = (3, 6, 12, 24),
        dilate_attention: Sequence[bool] = (True, True, False, False),
        kernel_size: int = 3,
        dilation: Sequence[int] = (1, 2, 3),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        stem_hidden_dim: int = 16,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        **kwargs: Any,
    ):
        """``dilate_attention[i]`` picks MSDA (True) or global MHSA (False) for stage i."""
        super().__init__()
        if kwargs:
            raise ValueError(f"dilateformer: unknown argument(s) {sorted(kwargs)}")
        depths, num_heads, dilate_attention = list(depths), list(num_heads), [bool(d) for d in dilate_attention]
        num_stages = len(depths)
        if not num_stages or len(num_heads) != num_stages or len(dilate_attention) != num_stages:
            raise ValueError(f"dilateformer: depths, num_heads and dilate_attention need one entry per stage, got "
                             f"{depths}, {num_heads}, {dilate_attention}")
        dims = [embed_dim * 2 ** i for i in range(num_stages)]
        for dim, heads in zip(dims, num_heads):
            if heads < 1 or dim % heads:
                raise ValueError(f"dilateformer: num_heads {num_heads} must divide the stage widths {dims}")
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(int(s) for s in img_size)
        self.stage_sizes = dilateformer_stage_sizes(self.img_size, num_stages)

        self.stem = overlapping_stem(in_chans, stem_hidden_dim, embed_dim)
        rates = stage_drop_path_rates(drop_path_rate, depths)
        stages = []
        for i in range(num_stages):
            downsample = conv_downsample(dims[i - 1], dims[i]) if i > 0 else nn.Identity()
            blocks = [DilateFormerBlock(dims[i], self._mixer(dims[i], num_heads[i], dilate_attention[i], kernel_size,
                                                             dilation, qkv_bias, self.stage_sizes[i]),
                                        mlp_ratio, rate) for rate in rates[i]]
            stages.append(Stage(downsample, blocks))
        self.stages = nn.Sequential(*stages)
        self._finish(dims, num_classes, global_pool, drop_rate, norm_eps=1e-6)
        self.apply(_init_linear)
        msda_class = get_mixer_class("msda")
        for module in self.modules():  # the official qkv of MSDA is a 1x1 conv: PyTorch's default init
            if isinstance(module, msda_class):
                module.qkv.reset_parameters()

    @staticmethod
    def _mixer(dim: int, heads: int, dilated: bool, kernel_size: int, dilation: Sequence[int], qkv_bias: bool,
               input_size: tuple[int, int]) -> nn.Module:
        if dilated:
            return create_mixer("msda", dim, input_size=input_size, num_heads=heads, kernel_size=kernel_size,
                                dilation=tuple(dilation), qkv_bias=qkv_bias)
        return create_mixer("mhsa", dim, input_size=input_size, num_heads=heads, head_dim=dim // heads,
                            qkv_bias=qkv_bias, proj_bias=True)


def _init_linear(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


_STEM_INDEX = {"0": "conv1", "1": "norm1", "3": "conv2", "4": "norm2", "6": "conv3", "7": "norm3", "9": "conv4"}
_OFFICIAL_STEM = re.compile(r"^patch_embed\.proj\.(\d+)\.(.+)$")
_OFFICIAL_DOWNSAMPLE = re.compile(r"^stages\.(\d+)\.downsample\.proj\.([01])\.(.+)$")


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Convert an official DilateFormer checkpoint; a state dict already in this layout passes unchanged."""
    state_dict = state_dict.get("model", state_dict)
    if "patch_embed.proj.0.weight" not in state_dict:
        return state_dict
    out = {}
    for key, value in state_dict.items():
        stem, down = _OFFICIAL_STEM.match(key), _OFFICIAL_DOWNSAMPLE.match(key)
        if stem:
            key = f"stem.{_STEM_INDEX[stem[1]]}.{stem[2]}"
        elif down:
            key = f"stages.{int(down[1]) + 1}.downsample.{'conv' if down[2] == '0' else 'norm'}.{down[3]}"
        elif key.startswith("head."):
            key = "head.fc." + key[len("head."):]
        if key.endswith(".attn.qkv.weight") and value.dim() == 4:  # MSDA's 1x1 conv -> Linear
            value = value.flatten(1)
        out[key] = value
    return out


def _cfg(**kwargs: Any) -> dict:
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.conv1", "classifier": "head.fc",
        "paper_ids": "arXiv:2302.01791",
        "paper_name": "DilateFormer: Multi-Scale Dilated Transformer for Visual Recognition",
        "origin_url": "https://github.com/JIAOJIAYUASD/dilateformer", **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "dilateformer_tiny": _cfg(),
    "dilateformer_small": _cfg(),
    "dilateformer_base": _cfg(),
})

_VARIANTS: dict[str, dict[str, Any]] = {
    "dilateformer_tiny": dict(depths=(2, 2, 6, 2), embed_dim=72, num_heads=(3, 6, 12, 24)),
    "dilateformer_small": dict(depths=(3, 5, 8, 3), embed_dim=72, num_heads=(3, 6, 12, 24)),
    "dilateformer_base": dict(depths=(4, 8, 10, 3), embed_dim=96, num_heads=(3, 6, 12, 24)),
}


def _create(variant: str, pretrained: bool, **kwargs: Any) -> DilateFormer:
    model_args = {**_VARIANTS[variant], **kwargs}
    img_size = model_args.get("img_size", 224)
    h, w = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
    overlay = {"input_size": (model_args.get("in_chans", 3), h, w),
               "pool_size": dilateformer_stage_sizes((h, w), len(model_args["depths"]))[-1]}
    overlay.update(model_args.pop("pretrained_cfg_overlay", None) or {})
    return build_model_with_cfg(
        DilateFormer, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        pretrained_cfg_overlay=overlay,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True),
        **model_args,
    )


@register_model
def dilateformer_tiny(pretrained: bool = False, **kwargs: Any) -> DilateFormer:
    """DilateFormer-T: depths 2-2-6-2, width 72, 17.2M parameters, 3.2 GMACs at 224."""
    return _create("dilateformer_tiny", pretrained, **kwargs)


@register_model
def dilateformer_small(pretrained: bool = False, **kwargs: Any) -> DilateFormer:
    """DilateFormer-S: depths 3-5-8-3, width 72, 24.1M parameters, 4.6 GMACs at 224 (paper: 4.8)."""
    return _create("dilateformer_small", pretrained, **kwargs)


@register_model
def dilateformer_base(pretrained: bool = False, **kwargs: Any) -> DilateFormer:
    """DilateFormer-B: depths 4-8-10-3, width 96, 47.4M parameters, 10.0 GMACs at 224."""
    return _create("dilateformer_base", pretrained, **kwargs)
