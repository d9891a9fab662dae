"""The proxy-training recipe: how a candidate is trained cheaply to rank it.

The recipe is part of a trial's identity: results are reused only for the same architecture
*and* the same recipe, so the recipe has a canonical dict form and a stable ``hash``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from nas.trial.datasets import validate_dataset_spec
from search_spaces.canonical import json_hash

__all__ = ["ProxyRecipe"]


@dataclass(frozen=True)
class ProxyRecipe:
    """Dataset, resolution and optimisation settings of one proxy training run."""

    dataset: str = "glyphs"  # generated in memory, offline (nas.trial.synthetic)
    epochs: int = 4
    img_size: int = 32  # proxy resolution (the speed target resolution is separate)
    subset: int | None = None  # max number of training images; None = all
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    seed: int = 0
    val_fraction: float = 0.2  # held-out share for datasets without a validation split (digits, glyphs)

    def __post_init__(self) -> None:
        validate_dataset_spec(self.dataset)
        for name in ("epochs", "img_size", "batch_size", "seed", "subset"):
            value = getattr(self, name)
            if value is None and name == "subset":
                continue
            if not _is_int(value):
                raise ValueError(f"recipe.{name} must be an integer, got {value!r}")
        for name in ("lr", "weight_decay", "warmup_epochs", "label_smoothing", "val_fraction"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"recipe.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        _require(self.epochs >= 1, "recipe.epochs must be >= 1", self.epochs)
        _require(self.img_size >= 8, "recipe.img_size must be >= 8", self.img_size)
        _require(self.subset is None or self.subset >= 1, "recipe.subset must be >= 1 or None", self.subset)
        _require(self.batch_size >= 1, "recipe.batch_size must be >= 1", self.batch_size)
        _require(self.lr > 0, "recipe.lr must be > 0", self.lr)
        _require(self.weight_decay >= 0, "recipe.weight_decay must be >= 0", self.weight_decay)
        _require(self.warmup_epochs >= 0, "recipe.warmup_epochs must be >= 0", self.warmup_epochs)
        _require(0 <= self.label_smoothing < 1, "recipe.label_smoothing must be in [0, 1)", self.label_smoothing)
        _require(0 < self.val_fraction < 1, "recipe.val_fraction must be in (0, 1)", self.val_fraction)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProxyRecipe:
        """Build from a (possibly partial) dict; unknown keys are an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"recipe: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**data)

    @property
    def hash(self) -> str:
        return json_hash(self.to_dict())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(ok: bool, message: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{message}, got {value!r}")
