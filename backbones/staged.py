"""timm plumbing shared by the four-stage reference backbones (LITv2, DilateFormer).

Both papers' models are a stem, four stages of NHWC blocks and a per-token norm before global
pooling.  ``StagedBackbone`` holds what the timm contract needs on top of that layout
(``forward_features``/``forward_head``, ``forward_intermediates``, pruning, classifier reset,
gradient checkpointing) so each model file only describes its own stem, blocks and downsampling.

Layout: tensors are NCHW between the stem and the stages (timm's feature convention); a stage
downsamples in NCHW, runs its blocks channels-last (every mixer in ``mixers`` takes NHWC) and
returns NCHW.  Both papers downsample at the *end* of stages 1-3; here that downsampling is the
*start* of stages 2-4 (same computation, parameters move to the next stage) so that every stage
output has stride 4, 8, 16, 32, as ``features_only`` users expect.
"""
from typing import Any, Sequence

import torch
from torch import nn
from timm.layers import ClassifierHead, LayerNorm2d
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq

__all__ = ["Stage", "StagedBackbone", "stage_drop_path_rates"]


def stage_drop_path_rates(drop_path_rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Stochastic depth rising linearly from 0 to ``drop_path_rate`` over all blocks, split per stage."""
    total = sum(depths)
    rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
    out, start = [], 0
    for depth in depths:
        out.append(rates[start:start + depth])
        start += depth
    return out


class Stage(nn.Module):
    """``downsample`` (NCHW) then ``blocks`` on NHWC tokens; NCHW in and out.

    The tokens are made contiguous NHWC once, after the downsampling: a downsampling convolution
    returns NCHW memory, and its permuted view would otherwise be copied by every LayerNorm and
    Linear of the stage (the residual stream keeps the layout of its first tensor).  One copy per
    stage instead: forward+backward of LITv2-S / DilateFormer-T 1-2.5 % faster on CPU.
    """

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module]):
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x).permute(0, 2, 3, 1).contiguous()
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return x.permute(0, 3, 1, 2)


class StagedBackbone(nn.Module):
    """Base class: subclasses build ``self.stem`` and ``self.stages`` then call ``_finish``."""

    def _finish(self, dims: Sequence[int], num_classes: int, global_pool: str, drop_rate: float,
                norm_eps: float) -> None:
        """Final per-token norm, classifier head and ``feature_info`` for stages of widths ``dims``."""
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = dims[-1]
        self.drop_rate = drop_rate
        self.feature_info = [dict(num_chs=c, reduction=4 * 2 ** i, module=f"stages.{i}") for i, c in enumerate(dims)]
        self.norm = LayerNorm2d(dims[-1], eps=norm_eps)
        self.head = ClassifierHead(dims[-1], num_classes, pool_type=global_pool, drop_rate=drop_rate)

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
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None, **kwargs: Any) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)

    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False):
        """``(final features, [stage outputs at indices])``; ``norm`` applies the final norm to the last stage's."""
        if output_fmt != "NCHW":
            raise ValueError(f"{type(self).__name__}: output_fmt must be 'NCHW', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last = len(self.stages) - 1
        intermediates = []
        x = self.stem(x)
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[: max_index + 1]
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                intermediates.append(self.norm(x) if norm and i == last else x)
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[: max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
