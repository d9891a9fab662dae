"""``hybrid_metaformer``: a MetaFormer backbone whose token mixer, depth and width are chosen per stage.

Layout follows sail-sg/metaformer (``metaformer_baselines.py``) and timm's port
(``timm/models/metaformer.py``): a 7x7/stride-4 conv stem with a bias-free LayerNorm,
downsampling (bias-free LayerNorm + 3x3/stride-2 conv) at the start of stages 2-4, blocks
``x = res_scale(x) + mixer(LN(x))`` and ``x = res_scale(x) + MLP(LN(x))`` with a StarReLU MLP,
learnable residual scaling in stages 3-4, and timm's ``MlpHead`` classifier.

Deviations from timm's MetaFormer, on purpose:
- Blocks run channels-last (NHWC) because every mixer in ``mixers`` takes NHWC; stage
  outputs are NCHW (timm's feature convention).
- Stages 2-4 always downsample (sail-sg semantics). timm skips downsampling when two
  consecutive widths are equal, which would silently change the feature strides of a
  searched architecture.
- Each stage's mixer gets the stage's build-time token grid (``input_size``), as DFFormer's
  MetaFormer does, because some mixers' parameters depend on it.

The architecture is fully described by JSON-serialisable kwargs (``mixers``, ``depths``,
``dims``, ``mixer_kwargs``), so ``timm.models.save_for_hf`` exports it without help.
"""

from collections import OrderedDict
from functools import partial
from typing import Any, Sequence

import torch
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, LayerNorm, LayerNorm2d, Mlp, SelectAdaptivePool2d, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq
from timm.models.metaformer import (
    Downsampling,
    LayerNorm2dNoBias,
    LayerNormNoBias,
    MlpHead,
    Scale,
    StarReLU,
    Stem,
)

from mixers import create_mixer

__all__ = ["HybridMetaFormer", "stage_input_sizes", "DEFAULT_ARCH"]

# CAFormer-S18: the default architecture when no per-stage choices are given.
DEFAULT_ARCH: dict[str, Any] = dict(
    mixers=["sepconv", "sepconv", "mhsa", "mhsa"], depths=[3, 3, 9, 3], dims=[64, 128, 320, 512]
)


def stage_input_sizes(img_size: int | Sequence[int], num_stages: int = 4) -> list[tuple[int, int]]:
    """Token grid of every stage for an input of ``img_size`` (stem k7/s4/p2, then k3/s2/p1 per stage)."""
    h, w = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
    h, w = (h + 4 - 7) // 4 + 1, (w + 4 - 7) // 4 + 1
    sizes = [(h, w)]
    for _ in range(num_stages - 1):
        h, w = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
        sizes.append((h, w))
    return sizes


class HybridMetaFormerBlock(nn.Module):
    """One MetaFormer block on NHWC tokens with a mixer from the ``mixers`` registry."""

    def __init__(self, dim: int, mixer: str, mixer_kwargs: dict, input_size: tuple[int, int],
                 mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 layer_scale_init_value: float | None = None, res_scale_init_value: float | None = None):
        super().__init__()
        self.norm1 = LayerNormNoBias(dim, eps=1e-6)
        self.token_mixer = create_mixer(mixer, dim, input_size=input_size, **mixer_kwargs)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.layer_scale1 = _scale_or_identity(dim, layer_scale_init_value)
        self.res_scale1 = _scale_or_identity(dim, res_scale_init_value)

        self.norm2 = LayerNormNoBias(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(mlp_ratio * dim), act_layer=StarReLU, bias=False)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.layer_scale2 = _scale_or_identity(dim, layer_scale_init_value)
        self.res_scale2 = _scale_or_identity(dim, res_scale_init_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res_scale1(x) + self.layer_scale1(self.drop_path1(self.token_mixer(self.norm1(x))))
        x = self.res_scale2(x) + self.layer_scale2(self.drop_path2(self.mlp(self.norm2(x))))
        return x


def _scale_or_identity(dim: int, init_value: float | None) -> nn.Module:
    return Scale(dim, init_value=init_value, use_nchw=False) if init_value is not None else nn.Identity()


class HybridMetaFormerStage(nn.Module):
    """Optional downsampling (NCHW) followed by blocks that run channels-last; NCHW in and out."""

    def __init__(self, in_dim: int, dim: int, depth: int, mixer: str, mixer_kwargs: dict,
                 input_size: tuple[int, int], downsample: bool, drop_path_rates: Sequence[float],
                 mlp_ratio: float, layer_scale_init_value: float | None, res_scale_init_value: float | None):
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = (
            Downsampling(in_dim, dim, kernel_size=3, stride=2, padding=1, norm_layer=LayerNorm2dNoBias)
            if downsample else nn.Identity()
        )
        self.blocks = nn.Sequential(*[
            HybridMetaFormerBlock(dim, mixer, mixer_kwargs, input_size, mlp_ratio=mlp_ratio,
                                  drop_path=drop_path_rates[i], layer_scale_init_value=layer_scale_init_value,
                                  res_scale_init_value=res_scale_init_value)
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


class HybridMetaFormer(nn.Module):
    """MetaFormer with one registered token mixer per stage (see module docstring)."""

    def __init__(
        self,
        mixers: Sequence[str] = DEFAULT_ARCH["mixers"],
        depths: Sequence[int] = DEFAULT_ARCH["depths"],
        dims: Sequence[int] = DEFAULT_ARCH["dims"],
        mixer_kwargs: Sequence[dict | None] | None = None,
        img_size: int | Sequence[int] = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        mlp_ratios: float | Sequence[float] = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        layer_scale_init_values: float | Sequence[float | None] | None = None,
        res_scale_init_values: Sequence[float | None] = (None, None, 1.0, 1.0),
        head_mlp_ratio: float = 4.0,
        head_norm_eps: float = 1e-6,
        **kwargs: Any,
    ):
        super().__init__()
        if kwargs:
            raise ValueError(f"hybrid_metaformer: unknown argument(s) {sorted(kwargs)}")
        mixers, depths, dims = list(mixers), [int(d) for d in depths], [int(d) for d in dims]
        num_stages = len(mixers)
        if not (num_stages == len(depths) == len(dims)) or num_stages == 0:
            raise ValueError(
                f"hybrid_metaformer: mixers, depths and dims need one entry per stage, got "
                f"{len(mixers)}, {len(depths)}, {len(dims)}")
        if any(d < 1 for d in depths) or any(c < 1 for c in dims):
            raise ValueError(f"hybrid_metaformer: depths and dims must be >= 1, got {depths}, {dims}")
        mixer_kwargs = list(mixer_kwargs) if mixer_kwargs is not None else [{}] * num_stages
        if len(mixer_kwargs) != num_stages:
            raise ValueError(f"hybrid_metaformer: mixer_kwargs needs {num_stages} entries, got {len(mixer_kwargs)}")
        mixer_kwargs = [dict(k or {}) for k in mixer_kwargs]
        mlp_ratios = _per_stage(mlp_ratios, num_stages)
        layer_scales = _per_stage(layer_scale_init_values, num_stages)
        res_scales = _per_stage(res_scale_init_values, num_stages)

        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = dims[-1]
        self.drop_rate = drop_rate
        self.head_mlp_ratio = head_mlp_ratio
        # eps of the LayerNorm inside the MLP head: 1e-6 as timm's MetaFormer port, 1e-5 in sail-sg's and
        # DFFormer's official code (torch's nn.LayerNorm default); the named DFFormer models pass 1e-5.
        self.head_norm_eps = head_norm_eps
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(int(s) for s in img_size)
        self.stage_sizes = stage_input_sizes(self.img_size, num_stages)

        self.stem = Stem(in_chans, dims[0], norm_layer=LayerNorm2dNoBias)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, in_dim, start = [], dims[0], 0
        self.feature_info = []
        for i in range(num_stages):
            stages.append(HybridMetaFormerStage(
                in_dim, dims[i], depths[i], mixers[i], mixer_kwargs[i], self.stage_sizes[i],
                downsample=i > 0, drop_path_rates=rates[start:start + depths[i]], mlp_ratio=mlp_ratios[i],
                layer_scale_init_value=layer_scales[i], res_scale_init_value=res_scales[i]))
            self.feature_info.append(dict(num_chs=dims[i], reduction=4 * 2 ** i, module=f"stages.{i}"))
            in_dim, start = dims[i], start + depths[i]
        self.stages = nn.Sequential(*stages)

        self.head = nn.Sequential(OrderedDict([
            ("global_pool", SelectAdaptivePool2d(pool_type=global_pool)),
            ("norm", LayerNorm2d(self.num_features, eps=1e-6)),
            ("flatten", nn.Flatten(1) if global_pool else nn.Identity()),
            ("drop", nn.Dropout(drop_rate)),
            ("fc", self._make_classifier(num_classes)),
        ]))
        self.apply(self._init_weights)

    def _make_classifier(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        return MlpHead(self.num_features, num_classes, mlp_ratio=self.head_mlp_ratio, drop_rate=self.drop_rate,
                       norm_layer=partial(LayerNorm, eps=self.head_norm_eps))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else [
            (r"^stages\.(\d+)\.downsample", (0,)), (r"^stages\.(\d+)\.blocks\.(\d+)", None)])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None, **kwargs: Any) -> None:
        if global_pool is not None:
            self.head.global_pool = SelectAdaptivePool2d(pool_type=global_pool)
            self.head.flatten = nn.Flatten(1) if global_pool else nn.Identity()
        self.num_classes = num_classes
        self.head.fc = self._make_classifier(num_classes)
        self.head.fc.apply(self._init_weights)

    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """Return ``(final_features, [stage outputs at indices])`` as timm's feature getter expects."""
        if output_fmt != "NCHW":
            raise ValueError(f"hybrid_metaformer: output_fmt must be 'NCHW', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        intermediates = []
        x = self.stem(x)
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[: max_index + 1]
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[: max_index + 1]
        if prune_norm:
            self.head.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head.flatten(self.head.norm(self.head.global_pool(x)))
        x = self.head.drop(x)
        return x if pre_logits else self.head.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _per_stage(value: Any, num_stages: int) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != num_stages:
            raise ValueError(f"hybrid_metaformer: expected {num_stages} per-stage values, got {list(value)}")
        return list(value)
    return [value] * num_stages


def _cfg(**kwargs: Any) -> dict:
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 1.0, "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.conv", "classifier": "head.fc.fc2", "license": "apache-2.0", **kwargs,
    }


default_cfgs = generate_default_cfgs({"hybrid_metaformer": _cfg()})


def _size_overlay(kwargs: dict) -> dict:
    """pretrained_cfg entries that follow from the build arguments (input size, pool size, fixed size)."""
    img_size = kwargs.get("img_size", 224)
    h, w = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
    num_stages = len(kwargs.get("mixers", DEFAULT_ARCH["mixers"]))
    pool = stage_input_sizes((h, w), num_stages)[-1]
    fixed = "dynamixer" in list(kwargs.get("mixers", []))  # DynaMixer's matrices fix the token grid
    overlay = {"input_size": (kwargs.get("in_chans", 3), h, w), "pool_size": pool}
    if fixed:
        overlay["fixed_input_size"] = True
    return overlay


@register_model
def hybrid_metaformer(pretrained: bool = False, **kwargs: Any) -> HybridMetaFormer:
    """MetaFormer with per-stage mixers; defaults to CAFormer-S18 (sepconv, sepconv, mhsa, mhsa)."""
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    overlay = {**_size_overlay(kwargs), **overlay}
    return build_model_with_cfg(
        HybridMetaFormer, "hybrid_metaformer", pretrained,
        pretrained_cfg_overlay=overlay,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True),
        **kwargs,
    )
