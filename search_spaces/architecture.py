"""``Architecture``: one point of a search space, the per-stage ``hybrid_metaformer`` kwargs."""
from __future__ import annotations

import dataclasses
import copy
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from search_spaces.canonical import canonical_json, json_hash
from search_spaces.values import plain_json_dict, positive_int_tuple, str_tuple

__all__ = ["ARCH_KEYS", "Architecture"]

ARCH_KEYS = ("mixers", "depths", "dims", "mixer_kwargs")


@dataclasses.dataclass(frozen=True, eq=False)
class Architecture:
    """One point of a space: the per-stage ``hybrid_metaformer`` kwargs.

    Equality and hashing go through the canonical JSON, so equal architectures built from
    lists, tuples or NumPy integers collapse in sets and dicts.  The kwargs dicts are private
    copies; treat them as read-only (``to_dict()`` hands out fresh ones).
    """

    mixers: tuple[str, ...]
    depths: tuple[int, ...]
    dims: tuple[int, ...]
    mixer_kwargs: tuple[dict, ...] = ()

    def __post_init__(self) -> None:
        mixers = str_tuple("architecture: mixers", self.mixers)
        depths = positive_int_tuple("architecture: depths", self.depths)
        dims = positive_int_tuple("architecture: dims", self.dims)
        kwargs = self.mixer_kwargs
        if isinstance(kwargs, (str, bytes, Mapping)) or not isinstance(kwargs, Sequence):
            raise ValueError(f"architecture: mixer_kwargs must be a list of dicts, got {kwargs!r}")
        kwargs = tuple(plain_json_dict(f"architecture: mixer_kwargs[{i}]", k)
                       for i, k in enumerate(kwargs or [{}] * len(mixers)))
        if not mixers or not len(mixers) == len(depths) == len(dims) == len(kwargs):
            raise ValueError(
                "architecture: mixers, depths, dims and mixer_kwargs need one entry per stage (at least one), "
                f"got {len(mixers)}, {len(depths)}, {len(dims)}, {len(kwargs)}")
        for name, value in zip(ARCH_KEYS, (mixers, depths, dims, kwargs)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Architecture:
        """Parse ``to_dict()`` output (or hand-written JSON); ValueError names what is malformed."""
        if not isinstance(d, Mapping):
            raise ValueError(f"architecture: expected a mapping with keys {list(ARCH_KEYS)}, got {d!r}")
        unknown = sorted(set(d) - set(ARCH_KEYS))
        missing = [k for k in ARCH_KEYS[:3] if k not in d]
        if unknown or missing:
            raise ValueError(f"architecture: unknown key(s) {unknown}, missing key(s) {missing}; "
                             f"expected {list(ARCH_KEYS)}")
        return cls(d["mixers"], d["depths"], d["dims"], d.get("mixer_kwargs", ()))

    def to_dict(self) -> dict[str, list]:
        """Plain JSON types; exactly the kwargs of ``timm.create_model("hybrid_metaformer", ...)``."""
        return {"mixers": list(self.mixers), "depths": list(self.depths), "dims": list(self.dims),
                "mixer_kwargs": copy.deepcopy(list(self.mixer_kwargs))}

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @functools.cached_property
    def _identity(self) -> str:
        return self.to_json()

    @property
    def hash(self) -> str:
        """Stable 16-hex-digit identity (the store's key)."""
        return json_hash(self.to_dict())

    def label(self) -> str:
        """Short human form, e.g. ``sepconv-3x64 | sepconv-3x128 | mhsa-9x320 | mhsa-3x512``."""
        return " | ".join(f"{m}-{d}x{c}" for m, d, c in zip(self.mixers, self.depths, self.dims))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Architecture):
            return NotImplemented
        return self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)
