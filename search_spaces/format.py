"""The search-space file format: allowed keys, constraint types, and parsing of stages, constraints and seeds."""
from __future__ import annotations

import dataclasses
import math
import copy
from collections.abc import Mapping
from typing import Any

from mixers import MIXER_NAMES
from search_spaces.values import plain_json_dict, positive_int, positive_int_tuple, str_tuple, unique_choices

SPACE_KEYS = ("name", "description", "target_res", "proxy_res", "stages", "constraints", "seeds")
STAGE_KEYS = ("mixer", "depth", "width", "mixer_kwargs")
SEED_KEYS = ("name", "mixers", "depths", "dims")
# constraint type -> (required keys, optional keys with defaults)
CONSTRAINT_TYPES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "nondecreasing_width": ((), {}),
    "max_params_m": (("limit",), {"num_classes": 1000}),
}


@dataclasses.dataclass(frozen=True)
class StageChoices:
    """The choices of one stage, and the fixed kwargs each mixer gets there."""

    mixers: tuple[str, ...]
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    mixer_kwargs: Mapping[str, dict]

    def kwargs_for(self, mixer: str) -> dict:
        return copy.deepcopy(self.mixer_kwargs.get(mixer, {}))


def parse_stage(where: str, raw: Any) -> StageChoices:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a mapping with keys {list(STAGE_KEYS)}, got {raw!r}")
    unknown = sorted(set(raw) - set(STAGE_KEYS))
    missing = [k for k in STAGE_KEYS[:3] if k not in raw]
    if unknown or missing:
        raise ValueError(f"{where}: unknown key(s) {unknown}, missing key(s) {missing}")
    mixer_choices = unique_choices(f"{where}.mixer", raw["mixer"], str_tuple)
    bad = [m for m in mixer_choices if m not in MIXER_NAMES]
    if bad:
        raise ValueError(f"{where}.mixer: unknown mixer(s) {bad}; registered mixers: {', '.join(MIXER_NAMES)}")
    kwargs = raw.get("mixer_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"{where}.mixer_kwargs: expected a mapping mixer -> kwargs, got {kwargs!r}")
    stray = sorted(set(kwargs) - set(mixer_choices))
    if stray:
        raise ValueError(f"{where}.mixer_kwargs: kwargs for mixer(s) {stray} that are not choices of this stage")
    return StageChoices(
        mixers=mixer_choices,
        depths=unique_choices(f"{where}.depth", raw["depth"], positive_int_tuple),
        widths=unique_choices(f"{where}.width", raw["width"], positive_int_tuple),
        mixer_kwargs={m: plain_json_dict(f"{where}.mixer_kwargs.{m}", k) for m, k in kwargs.items()},
    )


def parse_constraint(where: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or raw.get("type") not in CONSTRAINT_TYPES:
        raise ValueError(f"{where}: expected {{type: ...}} with a type in {list(CONSTRAINT_TYPES)}, got {raw!r}")
    required, optional = CONSTRAINT_TYPES[raw["type"]]
    keys = set(raw) - {"type"}
    if set(required) - keys or keys - set(required) - set(optional):
        raise ValueError(f"{where}: {raw['type']} takes keys {list(required)} (required) and "
                         f"{list(optional)} (optional), got {sorted(keys)}")
    out = {"type": raw["type"], **optional, **{k: raw[k] for k in keys}}
    if out["type"] == "max_params_m":
        limit = out["limit"]
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit <= 0:
            raise ValueError(f"{where}: limit must be a positive number of millions, got {limit!r}")
        out["num_classes"] = positive_int(f"{where}: num_classes", out["num_classes"])
    return out


def parse_seed(where: str, raw: Any, num_stages: int) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or set(raw) != set(SEED_KEYS):
        raise ValueError(f"{where}: expected exactly the keys {list(SEED_KEYS)}, got {raw!r}")
    if not isinstance(raw["name"], str) or not raw["name"]:
        raise ValueError(f"{where}: name must be a non-empty string, got {raw['name']!r}")
    seed = {"name": raw["name"], "mixers": list(str_tuple(f"{where}.mixers", raw["mixers"])),
            "depths": list(positive_int_tuple(f"{where}.depths", raw["depths"])),
            "dims": list(positive_int_tuple(f"{where}.dims", raw["dims"]))}
    if any(len(seed[k]) != num_stages for k in ("mixers", "depths", "dims")):
        raise ValueError(f"{where} ({raw['name']}): mixers, depths and dims need {num_stages} entries each")
    return seed


