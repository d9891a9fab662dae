"""LITv2 (``litv2_s``, ``litv2_m``, ``litv2_b``) as timm models, HiLo attention from ``mixers``.

Paper: Pan, Cai, Zhuang, "Fast Vision Transformers with HiLo Attention", NeurIPS 2022
(arXiv 2205.13213).  Official code: zip-group/LITv2 (``classification/models/litv2.py``,
``layers.py``, ``blocks.py``, ``patch_embed.py``, ``attentions.py``; configs
``classification/configs/litv2-{small,medium,base}.yaml``).

Architecture (same parameters, same computation as the official classification model):

- Stem: 4x4/stride-4 conv (bias) + LayerNorm over channels.
- Four stages of widths ``C * (1, 2, 4, 8)``.  Stages 1-2 have *no token mixer*: each block is
  ``x + ConvFFN(LN(x))``.  Stages 3-4 are ``x + HiLo(LN(x))`` then ``x + ConvFFN(LN(x))``;
  HiLo uses window ``s = 2`` and ``alpha = 0.9`` in stage 3 and ``s = 1`` (plain global
  multi-head attention) in stage 4; head width 32, qkv bias.
- ConvFFN: Linear(C, 4C) -> depthwise 3x3 conv (bias) -> GELU -> Linear(4C, C).
- Downsampling (stages 2-4): deformable token merging, a 2x2/stride-2 deformable convolution
  (``torchvision.ops.DeformConv2d``, bias) whose offsets come from a zero-initialised 2x2/stride-2
  conv, then BatchNorm and GELU.
- Head: LayerNorm per token, global average pool, Linear.  LayerNorm eps 1e-5 everywhere.

Deviations from the official code, all deliberate:

- Any input size.  The official classification model asserts the build size and square maps
  (its HiLo and depthwise conv infer ``H = W = sqrt(N)``) and even maps before each merge.  Here,
  as in the official detection/segmentation backbone, the stem zero-pads the image right/bottom
  to a multiple of 4 and each merge floors odd sizes; HiLo handles any grid through
  ``mixers.hilo`` (padded positions are masked, see that module).  At sizes the official model
  accepts, outputs are the same.
- Downsampling sits at the start of stages 2-4 instead of the end of stages 1-3 (see
  ``backbones.staged``), so ``features_only`` maps have strides 4, 8, 16, 32.
- The deformable convolution is torchvision's operator instead of the official CUDA extension
  (same sampling: bilinear, zero outside the map, offsets ordered (dy, dx) per kernel tap).  The
  official recipe trains the offset conv at 0.01x the learning rate (``OFFSET_LR_MULTI``);
  that is an optimiser setting, not part of the model: select ``*.downsample.offset_conv.*``.
- Stochastic depth defaults to 0 (timm convention); the official recipe uses 0.2 / 0.3 / 0.5
  for S / M / B.  ``attn_drop``/``proj_drop`` are not exposed (the official HiLo ignores them).
- ``checkpoint_filter_fn`` converts official checkpoints (``{"model": state_dict}``) to this
  layout; load one with ``pretrained=True, pretrained_cfg_overlay=dict(file=PATH)``.
"""
import math
import re
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, register_notrace_function, register_notrace_module, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torchvision.ops import DeformConv2d

from backbones.staged import Stage, StagedBackbone, stage_drop_path_rates
from mixers import create_mixer

__all__ = ["LITv2", "checkpoint_filter_fn", "litv2_stage_sizes"]

PATCH_SIZE = 4


def litv2_stage_sizes(img_size: int | Sequence[int], num_stages: int = 4) -> list[tuple[int, int]]:
    """Token grid of every stage: stem ceil(size / 4) (right/bottom padding), then floor(/2) per merge."""
    h, w = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
    sizes = [(-(-h // PATCH_SIZE), -(-w // PATCH_SIZE))]
    for _ in range(num_stages - 1):
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
    return sizes


@register_notrace_function
def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad an NCHW tensor right/bottom so H and W are multiples of ``multiple``."""
    pad_h = (multiple - x.shape[-2] % multiple) % multiple
    pad_w = (multiple - x.shape[-1] % multiple) % multiple
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x


class PatchEmbed(nn.Module):
    """4x4/stride-4 conv + LayerNorm over channels; NCHW in and out (channels-last memory).

    The image is made channels-last before the conv, so the conv's output is already laid out as the
    NHWC tokens the LayerNorm and the blocks read (no copy), and the conv's weight gradient sees input
    and output gradient in one layout: forward+backward of the whole model ~2% faster on CPU.
    """

    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.patch_size = PATCH_SIZE
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(pad_to_multiple(x, self.patch_size).contiguous(memory_format=torch.channels_last))
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@register_notrace_module  # torchvision's deform_conv2d unpacks shapes: an fx leaf
class DeformableTokenMerging(nn.Module):
    """2x2/stride-2 deformable conv (offsets from a zero-initialised 2x2/stride-2 conv) + BN + GELU; NCHW."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 2):
        super().__init__()
        self.offset_conv = nn.Conv2d(in_dim, 2 * kernel_size * kernel_size, kernel_size, stride=kernel_size)
        nn.init.zeros_(self.offset_conv.weight)
        nn.init.zeros_(self.offset_conv.bias)
        self.deform_conv = DeformConv2d(in_dim, out_dim, kernel_size, stride=kernel_size)
        self.norm = nn.BatchNorm2d(out_dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.deform_conv(x, self.offset_conv(x))))


class ConvFFN(nn.Module):
    """Linear -> depthwise 3x3 conv -> GELU -> Linear on NHWC tokens (LITv2's ``DWMlp``)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        nn.init.normal_(self.dwconv.weight, 0.0, math.sqrt(2.0 / 9))  # official: fan_out of a 3x3 depthwise
        nn.init.zeros_(self.dwconv.bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        x = self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.fc2(self.act(x))


class ConvFFNBlock(nn.Module):
    """Stages 1-2: no token mixer, ``x + ConvFFN(LN(x))``; NHWC."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio))
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class HiLoBlock(nn.Module):
    """Stages 3-4: ``x + HiLo(LN(x))`` then ``x + ConvFFN(LN(x))``; NHWC."""

    def __init__(self, dim: int, num_heads: int, window_size: int, alpha: float, mlp_ratio: float, qkv_bias: bool,
                 drop_path: float, input_size: tuple[int, int]):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = create_mixer("hilo", dim, input_size=input_size, num_heads=num_heads,
                                 head_dim=dim // num_heads, qkv_bias=qkv_bias, window_size=window_size, alpha=alpha)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio))
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class LITv2(StagedBackbone):
    """LITv2: ConvFFN-only stages 1-2, HiLo stages 3-4, deformable token merging (module docstring)."""

    def __init__(
        self,
        depths: Sequence[int] = (2, 2, 6, 2),
        embed_dim: int = 96,
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_sizes: Sequence[int] = (0, 0, 2, 1),
        alpha: float = 0.9,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        **kwargs: Any,
    ):
        """``window_sizes[i]`` is stage i's HiLo window ``s``; 0 means ConvFFN-only blocks (no mixer)."""
        super().__init__()
        if kwargs:
            raise ValueError(f"litv2: unknown argument(s) {sorted(kwargs)}")
        depths, num_heads, window_sizes = list(depths), list(num_heads), list(window_sizes)
        num_stages = len(depths)
        if not num_stages or len(num_heads) != num_stages or len(window_sizes) != num_stages:
            raise ValueError(f"litv2: depths, num_heads and window_sizes need one entry per stage, got "
                             f"{depths}, {num_heads}, {window_sizes}")
        dims = [embed_dim * 2 ** i for i in range(num_stages)]
        for dim, heads in zip(dims, num_heads):
            if heads < 1 or dim % heads:
                raise ValueError(f"litv2: num_heads {num_heads} must divide the stage widths {dims}")
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(int(s) for s in img_size)
        self.stage_sizes = litv2_stage_sizes(self.img_size, num_stages)

        self.stem = PatchEmbed(in_chans, embed_dim)
        rates = stage_drop_path_rates(drop_path_rate, depths)
        stages = []
        for i in range(num_stages):
            downsample = DeformableTokenMerging(dims[i - 1], dims[i]) if i > 0 else nn.Identity()
            if window_sizes[i] > 0:
                blocks = [HiLoBlock(dims[i], num_heads[i], window_sizes[i], alpha, mlp_ratio, qkv_bias, rate,
                                    self.stage_sizes[i]) for rate in rates[i]]
            else:
                blocks = [ConvFFNBlock(dims[i], mlp_ratio, rate) for rate in rates[i]]
            stages.append(Stage(downsample, blocks))
        self.stages = nn.Sequential(*stages)
        self._finish(dims, num_classes, global_pool, drop_rate, norm_eps=1e-5)
        self.apply(_init_linear)


def _init_linear(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# Official key -> this layout.  Official stages hold their downsampling at the end (layers.i.downsample),
# here it starts stage i + 1.
_OFFICIAL_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^patch_embed\.", "stem."),
    (r"^layers\.(\d+)\.blocks\.", r"stages.\1.blocks."),
    (r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv."),
    (r"^head\.", "head.fc."),
)
_OFFICIAL_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.(dconv\.conv_offset|dconv|norm_layer)\.(.+)$")
_DOWNSAMPLE_PARTS = {"dconv.conv_offset": "offset_conv", "dconv": "deform_conv", "norm_layer": "norm"}


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Convert an official LITv2 checkpoint; a state dict already in this layout passes unchanged."""
    state_dict = state_dict.get("model", state_dict)
    if "patch_embed.proj.weight" not in state_dict:
        return state_dict
    out = {}
    for key, value in state_dict.items():
        match = _OFFICIAL_DOWNSAMPLE.match(key)
        if match:
            key = f"stages.{int(match[1]) + 1}.downsample.{_DOWNSAMPLE_PARTS[match[2]]}.{match[3]}"
        else:
            for pattern, repl in _OFFICIAL_RENAMES:
                key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _cfg(**kwargs: Any) -> dict:
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.proj", "classifier": "head.fc", "license": "apache-2.0",
        "paper_ids": "arXiv:2205.13213", "paper_name": "Fast Vision Transformers with HiLo Attention",
        "origin_url": "https://github.com/ziplab/LITv2", **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "litv2_s": _cfg(),
    "litv2_m": _cfg(),
    "litv2_b": _cfg(),
})

_VARIANTS: dict[str, dict[str, Any]] = {
    "litv2_s": dict(depths=(2, 2, 6, 2), embed_dim=96, num_heads=(3, 6, 12, 24)),
    "litv2_m": dict(depths=(2, 2, 18, 2), embed_dim=96, num_heads=(3, 6, 12, 24)),
    "litv2_b": dict(depths=(2, 2, 18, 2), embed_dim=128, num_heads=(4, 8, 16, 32)),
}


def _create(variant: str, pretrained: bool, **kwargs: Any) -> LITv2:
    model_args = {**_VARIANTS[variant], **kwargs}
    img_size = model_args.get("img_size", 224)
    h, w = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
    overlay = {"input_size": (model_args.get("in_chans", 3), h, w),
               "pool_size": litv2_stage_sizes((h, w), len(model_args["depths"]))[-1]}
    overlay.update(model_args.pop("pretrained_cfg_overlay", None) or {})
    return build_model_with_cfg(
        LITv2, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        pretrained_cfg_overlay=overlay,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True),
        **model_args,
    )


@register_model
def litv2_s(pretrained: bool = False, **kwargs: Any) -> LITv2:
    """LITv2-S: depths 2-2-6-2, width 96, 27.8M parameters, 3.7 GMACs at 224."""
    return _create("litv2_s", pretrained, **kwargs)


@register_model
def litv2_m(pretrained: bool = False, **kwargs: Any) -> LITv2:
    """LITv2-M: depths 2-2-18-2, width 96, 48.8M parameters, 7.5 GMACs at 224."""
    return _create("litv2_m", pretrained, **kwargs)


@register_model
def litv2_b(pretrained: bool = False, **kwargs: Any) -> LITv2:
    """LITv2-B: depths 2-2-18-2, width 128, 86.5M parameters, 13.2 GMACs at 224."""
    return _create("litv2_b", pretrained, **kwargs)
