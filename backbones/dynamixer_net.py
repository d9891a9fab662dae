"""DynaMixer-S/M/L (Wang et al., ICML 2022) as timm models, in the official Permutator/ViP layout.

Layout of the official ``VisionModel`` (ziyuwwang/DynaMixer ``models/vision_model.py`` and
``models/configs/conf_dynamixer.py``):

- Patch embedding: a 7x7/stride-7 convolution (224 -> a 32x32 token grid), no norm.
- Four "stages" of blocks ``x = x + DropPath(mixer(LN(x)))``, ``x = x + DropPath(MLP(LN(x)))``
  (LayerNorm eps 1e-5 with bias, MLP ratio 3 with GELU and biases).  The mixer is
  ``mixers.create_mixer("dynamixer", ...)`` with the stage's segments S and reduced dim d.
- One transition (2x2/stride-2 convolution: 32x32 -> 16x16 tokens) between two stages; a stage
  whose width differs from the previous one without a transition gets a 1x1 convolution.
- Head: LayerNorm, mean over tokens, Linear.  Drop path grows linearly over all blocks.

=============  ============  ====================  =========  ===================  ===  ===========
name           depths        widths                transit.   segments S           d    parameters
=============  ============  ====================  =========  ===================  ===  ===========
dynamixer_s    4, 3, 8, 3    192, 384, 384, 384    after 1    8, 16, 16, 16        2     26,265,960
dynamixer_m    4, 3, 14, 3   256, 256, 512, 512    after 2    8, 8, 16, 16         2     57,128,264
dynamixer_l    8, 8, 16, 4   256, 512, 512, 512    after 1    8, 16, 16, 16        8     97,818,088
=============  ============  ====================  =========  ===================  ===  ===========

(parameters at 224x224 and 1000 classes: the mixing-matrix generators depend on the token grid.)

The token grids are fixed when the model is built: ``img_size`` chooses them (``H // 7`` and
``W // 7``, then halved by the transition; non-square sizes work, the mixer builds its row and
column generators separately), and an input of another size is refused with a ``ValueError``
(the ``pretrained_cfg`` says ``fixed_input_size``).

Deviations from the official model, none of which changes the result at 224:
- Stage outputs are NCHW (timm's feature convention; blocks run channels-last as in the official
  code), the transition sits at the start of the stage after it (same module order), and
  ``forward_features`` returns the final LayerNorm's output as an NCHW map (pooled in the head).
- ``drop_rate`` is dropout before the classifier (timm's meaning); the official model accepts and
  ignores it.  Default 0, so the official behaviour.
- The official ``skip_lam`` (residual divisor) is always 1.0 in its configs and is not exposed.
Weight init is the official one: truncated normal (std 0.02) for Linear weights, zero biases,
PyTorch defaults for the convolutions.  Official state dicts load through ``checkpoint_filter_fn``
(``pretrained_cfg_overlay=dict(file=PATH)``; no weights were released, ``url`` is empty).
"""
from typing import Any, Sequence

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, SelectAdaptivePool2d, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models._features_fx import register_notrace_function
from timm.models._manipulate import checkpoint_seq

from mixers import create_mixer

__all__ = ["DynaMixerNet", "DYNAMIXER_ARCHS", "checkpoint_filter_fn", "token_grids"]

DYNAMIXER_ARCHS: dict[str, dict[str, Any]] = {
    "dynamixer_s": dict(depths=[4, 3, 8, 3], dims=[192, 384, 384, 384], transitions=[True, False, False],
                        num_segments=[8, 16, 16, 16], reduced_dims=[2, 2, 2, 2]),
    "dynamixer_m": dict(depths=[4, 3, 14, 3], dims=[256, 256, 512, 512], transitions=[False, True, False],
                        num_segments=[8, 8, 16, 16], reduced_dims=[2, 2, 2, 2]),
    "dynamixer_l": dict(depths=[8, 8, 16, 4], dims=[256, 512, 512, 512], transitions=[True, False, False],
                        num_segments=[8, 16, 16, 16], reduced_dims=[8, 8, 8, 8]),
}


def token_grids(img_size: int | Sequence[int], transitions: Sequence[bool],
                patch_size: int = 7) -> list[tuple[int, int]]:
    """Token grid (H, W) of every stage: patch embedding k=s=patch_size, each transition k=s=2."""
    h, w = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
    grid = (h // patch_size, w // patch_size)
    grids = [grid]
    for transition in transitions:
        if transition:
            grid = (grid[0] // 2, grid[1] // 2)
        grids.append(grid)
    return grids


@register_notrace_function
def check_image_size(x: torch.Tensor, expected: tuple[int, int]) -> torch.Tensor:
    """Pass ``x`` through if its spatial size is the build size; a ``ValueError`` otherwise."""
    height, width = x.shape[-2], x.shape[-1]
    if height != expected[0] or width != expected[1]:
        raise ValueError(
            "DynaMixer token grids are fixed at construction: this model was built for "
            + str(expected[0]) + "x" + str(expected[1]) + " images, got " + str(height) + "x" + str(width)
            + "; create it with img_size=(" + str(height) + ", " + str(width) + ")")
    return x


class DynaMixerBlock(nn.Module):
    """``x + DropPath(dynamixer(LN(x)))``, then ``x + DropPath(MLP(LN(x)))`` on NHWC tokens."""

    def __init__(self, dim: int, grid: tuple[int, int], num_segments: int, reduced_dim: int,
                 mlp_ratio: float, qkv_bias: bool, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mixer = create_mixer("dynamixer", dim, input_size=grid, num_segments=num_segments,
                                        reduced_dim=reduced_dim, qkv_bias=qkv_bias)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.token_mixer(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class DynaMixerStage(nn.Module):
    """Optional transition (NCHW conv) then blocks on NHWC tokens; NCHW in and out."""

    def __init__(self, in_dim: int, dim: int, depth: int, grid: tuple[int, int], transition: bool,
                 num_segments: int, reduced_dim: int, mlp_ratio: float, qkv_bias: bool,
                 drop_path_rates: Sequence[float]):
        super().__init__()
        self.grad_checkpointing = False
        if transition or in_dim != dim:
            stride = 2 if transition else 1
            self.downsample: nn.Module = nn.Conv2d(in_dim, dim, kernel_size=stride, stride=stride)
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[
            DynaMixerBlock(dim, grid, num_segments, reduced_dim, mlp_ratio, qkv_bias, drop_path_rates[i])
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # contiguous NHWC once per stage, not a copy in every LayerNorm/Linear of a permuted NCHW map
        x = self.downsample(x).permute(0, 2, 3, 1).contiguous()
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return x.permute(0, 3, 1, 2)


class DynaMixerNet(nn.Module):
    """DynaMixer backbone (see module docstring); a fixed token grid per stage, chosen by ``img_size``."""

    def __init__(
        self,
        depths: Sequence[int] = DYNAMIXER_ARCHS["dynamixer_s"]["depths"],
        dims: Sequence[int] = DYNAMIXER_ARCHS["dynamixer_s"]["dims"],
        transitions: Sequence[bool] = DYNAMIXER_ARCHS["dynamixer_s"]["transitions"],
        num_segments: Sequence[int] = DYNAMIXER_ARCHS["dynamixer_s"]["num_segments"],
        reduced_dims: Sequence[int] = DYNAMIXER_ARCHS["dynamixer_s"]["reduced_dims"],
        mlp_ratio: float = 3.0,
        patch_size: int = 7,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        qkv_bias: bool = False,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        depths, dims = [int(d) for d in depths], [int(c) for c in dims]
        transitions = [bool(t) for t in transitions]
        num_stages = len(depths)
        if num_stages == 0 or not (len(dims) == len(num_segments) == len(reduced_dims) == num_stages):
            raise ValueError(f"DynaMixerNet: depths, dims, num_segments and reduced_dims need one entry per stage, "
                             f"got {len(depths)}, {len(dims)}, {len(num_segments)}, {len(reduced_dims)}")
        if len(transitions) != num_stages - 1:
            raise ValueError(f"DynaMixerNet: transitions needs {num_stages - 1} entries (one between two stages), "
                             f"got {len(transitions)}")
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
        grids = token_grids(self.img_size, transitions, patch_size)
        if min(min(g) for g in grids) < 1:
            raise ValueError(f"DynaMixerNet: img_size {self.img_size} is too small for patch size {patch_size} "
                             f"and {sum(transitions)} transition(s): token grids {grids}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_features = self.head_hidden_size = dims[-1]
        self.drop_rate = drop_rate
        self.grids = grids

        self.stem = nn.Conv2d(in_chans, dims[0], kernel_size=patch_size, stride=patch_size)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, in_dim, start, reduction = [], dims[0], 0, patch_size
        self.feature_info = []
        for i in range(num_stages):
            transition = i > 0 and transitions[i - 1]
            reduction *= 2 if transition else 1
            stages.append(DynaMixerStage(
                in_dim, dims[i], depths[i], grids[i], transition, int(num_segments[i]), int(reduced_dims[i]),
                mlp_ratio, qkv_bias, rates[start:start + depths[i]]))
            self.feature_info.append(dict(num_chs=dims[i], reduction=reduction, module=f"stages.{i}"))
            in_dim, start = dims[i], start + depths[i]
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dims[-1])
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else [
            (r"^stages\.(\d+)\.downsample", (0,)), (r"^stages\.(\d+)\.blocks\.(\d+)", None), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(self._init_weights)

    def _normed(self, x: torch.Tensor) -> torch.Tensor:
        """Final LayerNorm over channels of an NCHW map."""
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """``(final_features, [stage outputs at indices])``; ``norm=True`` applies the final LayerNorm to
        the last stage's output among them (the others have no norm of their own)."""
        if output_fmt != "NCHW":
            raise ValueError(f"DynaMixerNet: output_fmt must be 'NCHW', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last = len(self.stages) - 1
        intermediates = []
        x = self.stem(check_image_size(x, self.img_size))
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[: max_index + 1]
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                intermediates.append(self._normed(x) if norm and i == last else x)
        if intermediates_only:
            return intermediates
        return self._normed(x), intermediates

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[: max_index + 1]
        if prune_norm or max_index < len(self.grids) - 1:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(check_image_size(x, self.img_size)))
        return self._normed(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: DynaMixerNet) -> dict[str, torch.Tensor]:
    """Official ``VisionModel`` state dict (``patch_embed``/``network``) -> this layout; ours passes unchanged.

    The official ``network`` list interleaves block stages and transitions; they are assigned to our
    stages in order (a transition belongs to the stage after it).
    """
    state_dict = state_dict.get("state_dict", state_dict.get("model", state_dict))
    if "patch_embed.proj.weight" not in state_dict:
        return state_dict
    # official network index -> our prefix
    prefixes: dict[str, str] = {}
    index = 0
    for i, stage in enumerate(model.stages):
        if not isinstance(stage.downsample, nn.Identity):
            prefixes[str(index)] = f"stages.{i}.downsample"
            index += 1
        prefixes[str(index)] = f"stages.{i}.blocks"
        index += 1
    out = {}
    for key, value in state_dict.items():
        if key.startswith("patch_embed.proj."):
            key = "stem." + key[len("patch_embed.proj."):]
        elif key.startswith("network."):
            position, rest = key[len("network."):].split(".", 1)
            if rest.startswith("proj."):  # transition conv
                rest = rest[len("proj."):]
            key = f"{prefixes[position]}.{rest.replace('.attn.', '.token_mixer.', 1)}"
        out[key] = value
    return out


def _cfg(**kwargs: Any) -> dict:
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (16, 16),
        "crop_pct": 0.9, "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "fixed_input_size": True, "first_conv": "stem", "classifier": "head",
        "paper_ids": "arXiv:2201.12083", "paper_name": "DynaMixer: A Vision MLP Architecture with Dynamic Mixing",
        "origin_url": "https://github.com/ziyuwwang/DynaMixer", **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "dynamixer_s": _cfg(crop_pct=0.9),
    "dynamixer_m": _cfg(crop_pct=0.9),
    "dynamixer_l": _cfg(crop_pct=0.875),
})


def _create(variant: str, pretrained: bool, **kwargs: Any) -> DynaMixerNet:
    arch = DYNAMIXER_ARCHS[variant]
    fixed = sorted(set(kwargs) & set(arch))
    if fixed:
        raise ValueError(f"{variant}: {fixed} are fixed by the model name; build DynaMixerNet directly "
                         f"for other architectures")
    img_size = kwargs.get("img_size", 224)
    h, w = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
    overlay = {"input_size": (kwargs.get("in_chans", 3), h, w),
               "pool_size": token_grids((h, w), arch["transitions"], kwargs.get("patch_size", 7))[-1],
               **(kwargs.pop("pretrained_cfg_overlay", None) or {})}
    return build_model_with_cfg(
        DynaMixerNet, variant, pretrained,
        pretrained_cfg_overlay=overlay,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True),
        **arch, **kwargs,
    )


@register_model
def dynamixer_s(pretrained: bool = False, **kwargs: Any) -> DynaMixerNet:
    """DynaMixer-S: 4+3+8+3 blocks, 192 -> 384 channels, 32x32 -> 16x16 tokens after stage 1."""
    return _create("dynamixer_s", pretrained, **kwargs)


@register_model
def dynamixer_m(pretrained: bool = False, **kwargs: Any) -> DynaMixerNet:
    """DynaMixer-M: 4+3+14+3 blocks, 256 -> 512 channels, 32x32 -> 16x16 tokens after stage 2."""
    return _create("dynamixer_m", pretrained, **kwargs)


@register_model
def dynamixer_l(pretrained: bool = False, **kwargs: Any) -> DynaMixerNet:
    """DynaMixer-L: 8+8+16+4 blocks, 256 -> 512 channels, 32x32 -> 16x16 tokens after stage 1, d=8."""
    return _create("dynamixer_l", pretrained, **kwargs)
