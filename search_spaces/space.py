"""The search-space format and the ``Architecture`` points it contains.

A space is a plain dict (YAML/JSON on disk) with one entry of choices per stage::

    name: hybrid_metaformer_tiny
    description: ...
    target_res: 32           # resolution latency/accuracy are measured at
    proxy_res: 32            # resolution proxy training runs at (default: target_res)
    stages:                  # one entry per stage, all three choices searched independently
      - {mixer: [sepconv, mhsa], depth: [1, 2], width: [16, 32], mixer_kwargs: {mhsa: {head_dim: 16}}}
    constraints:             # declarative; every architecture must satisfy all of them
      - {type: nondecreasing_width}
      - {type: max_params_m, limit: 30, num_classes: 1000}   # counted at target_res
    seeds:                   # hand-designed points, evaluated first by every search
      - {name: CAFormer-like, mixers: [...], depths: [...], dims: [...]}

``mixer_kwargs`` are fixed (not searched) constructor arguments of a mixer at a stage.
An architecture is in the space when every stage's choices are listed, its kwargs are the
stage's kwargs for its mixer, every constraint holds, and every mixer can be built at its
stage's token grid for each checked input resolution (``mixers.validate_mixer``).
Choice labels are 1-based like the papers' stage numbers: ``stage1.mixer`` ... ``stage4.width``.
"""
from __future__ import annotations

import copy
import functools
import itertools
import json
import math
import numbers
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

import mixers
from backbones.hybrid_metaformer import HybridMetaFormer, stage_input_sizes
from search_spaces.architecture import Architecture
from search_spaces.canonical import canonical_json, json_hash
from search_spaces.format import (
    CONSTRAINT_TYPES, SPACE_KEYS, StageChoices, parse_constraint, parse_seed, parse_stage,
)
from search_spaces.values import list_of, positive_int

__all__ = ["Architecture", "SearchSpace", "CONSTRAINT_TYPES", "NUM_STAGES"]

# hybrid_metaformer's per-stage defaults (residual scaling in stages 3-4) assume four stages.
NUM_STAGES = 4
class SearchSpace:
    """A per-stage choice space with constraints and seeds; see the module docstring for the format.

    Build it with ``SearchSpace.from_dict`` (or ``search_spaces.get_space``). It is immutable, so
    mixer validity is cached per (mixer, width, token grid, kwargs) across all calls.
    """

    def __init__(self, name: str, description: str, target_res: int, proxy_res: int,
                 stages: Sequence[StageChoices], constraints: Sequence[Mapping[str, Any]],
                 seeds: Sequence[Mapping[str, Any]]):
        self.name = name
        self.description = description
        self.target_res = target_res
        self.proxy_res = proxy_res
        self.stages = tuple(stages)
        self.constraints = tuple(dict(c) for c in constraints)
        self._seed_specs = tuple(dict(s) for s in seeds)
        self._choices = {}
        for i, stage in enumerate(self.stages, start=1):
            self._choices[f"stage{i}.mixer"] = list(stage.mixers)
            self._choices[f"stage{i}.depth"] = list(stage.depths)
            self._choices[f"stage{i}.width"] = list(stage.widths)
        self._validated_seeds: list[tuple[str, Architecture]] | None = None

    # ---- format -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSpace:
        """Parse and check a space description; ValueError names the field and the problem."""
        if not isinstance(d, Mapping):
            raise ValueError(f"search space: expected a mapping, got {type(d).__name__}")
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"search space: 'name' must be a non-empty string, got {name!r}")
        where = f"search space {name!r}"
        unknown = sorted(set(d) - set(SPACE_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {list(SPACE_KEYS)}")
        description = d.get("description", "")
        if not isinstance(description, str):
            raise ValueError(f"{where}: 'description' must be a string")
        target_res = positive_int(f"{where}: target_res", d.get("target_res"))
        proxy_res = positive_int(f"{where}: proxy_res", d.get("proxy_res", target_res))
        raw_stages = d.get("stages")
        if not isinstance(raw_stages, Sequence) or isinstance(raw_stages, str) or not raw_stages:
            raise ValueError(f"{where}: 'stages' must be a non-empty list of per-stage choices")
        if len(raw_stages) != NUM_STAGES:
            raise ValueError(f"{where}: 'stages' needs {NUM_STAGES} entries (hybrid_metaformer's stage layout), "
                             f"got {len(raw_stages)}")
        stages = [parse_stage(f"{where}: stage{i}", s) for i, s in enumerate(raw_stages, start=1)]
        constraints = [parse_constraint(f"{where}: constraints[{i}]", c)
                       for i, c in enumerate(list_of(where, "constraints", d.get("constraints", [])))]
        seeds = [parse_seed(f"{where}: seeds[{i}]", s, len(stages))
                 for i, s in enumerate(list_of(where, "seeds", d.get("seeds", [])))]
        seed_names = [s["name"] for s in seeds]
        if len(set(seed_names)) != len(seed_names):
            raise ValueError(f"{where}: seed names must be unique, got {seed_names}")
        return cls(name, description, target_res, proxy_res, stages, constraints, seeds)

    def describe(self) -> dict[str, Any]:
        """The description dict; ``SearchSpace.from_dict(space.describe())`` rebuilds the space."""
        return {
            "name": self.name,
            "description": self.description,
            "target_res": self.target_res,
            "proxy_res": self.proxy_res,
            "stages": [{"mixer": list(s.mixers), "depth": list(s.depths), "width": list(s.widths),
                        "mixer_kwargs": copy.deepcopy(dict(s.mixer_kwargs))} for s in self.stages],
            "constraints": copy.deepcopy(list(self.constraints)),
            "seeds": copy.deepcopy(list(self._seed_specs)),
        }

    @property
    def hash(self) -> str:
        """Identity of the space definition (changes when any choice, constraint or seed does)."""
        return json_hash(self.describe())

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, {len(self.stages)} stages, {self.size()} combinations)"

    # ---- choices ------------------------------------------------------------------------

    def choices(self) -> dict[str, list]:
        """Flat NNI-style choices: ``{"stage1.mixer": [...], "stage1.depth": [...], ...}``."""
        return copy.deepcopy(self._choices)

    def arch_from_choices(self, choices: Mapping[str, Any]) -> Architecture:
        """The architecture picked by one value per label (values must be listed choices).

        Constraints and buildability are not checked here; use ``validate``/``is_valid``.
        """
        missing = [k for k in self._choices if k not in choices]
        unknown = sorted(set(choices) - set(self._choices))
        if missing or unknown:
            raise ValueError(f"{self.name}: choices need exactly the labels {list(self._choices)}; "
                             f"missing {missing}, unknown {unknown}")
        picked = {label: self._listed_value(label, choices[label]) for label in self._choices}
        mixers, depths, dims, kwargs = [], [], [], []
        for i, stage in enumerate(self.stages, start=1):
            mixers.append(picked[f"stage{i}.mixer"])
            depths.append(picked[f"stage{i}.depth"])
            dims.append(picked[f"stage{i}.width"])
            kwargs.append(stage.kwargs_for(mixers[-1]))
        return Architecture(tuple(mixers), tuple(depths), tuple(dims), tuple(kwargs))

    def choices_of(self, arch: Architecture) -> dict[str, Any]:
        """Inverse of ``arch_from_choices``; ValueError if ``arch`` uses anything the space does not list."""
        if len(arch.mixers) != len(self.stages):
            raise ValueError(f"{self.name}: architecture has {len(arch.mixers)} stages, the space has "
                             f"{len(self.stages)}")
        out = {}
        for i, stage in enumerate(self.stages):
            values = {"mixer": arch.mixers[i], "depth": arch.depths[i], "width": arch.dims[i]}
            for kind, value in values.items():
                out[f"stage{i + 1}.{kind}"] = self._listed_value(f"stage{i + 1}.{kind}", value)
            expected = stage.kwargs_for(arch.mixers[i])
            if arch.mixer_kwargs[i] != expected:
                raise ValueError(f"{self.name}: stage{i + 1}.mixer_kwargs={arch.mixer_kwargs[i]} differ from the "
                                 f"space's kwargs for {arch.mixers[i]!r} at that stage: {expected}")
        return out

    def _listed_value(self, label: str, value: Any) -> Any:
        for listed in self._choices[label]:
            if isinstance(listed, str):
                if isinstance(value, str) and value == listed:
                    return listed
            elif isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) == listed:
                return listed
        raise ValueError(f"{self.name}: {label}={value!r} is not a choice of the space "
                         f"(choices: {self._choices[label]})")

    def size(self) -> int:
        """Number of raw combinations (before constraints and mixer validity)."""
        return math.prod(len(v) for v in self._choices.values())

    # ---- validity -----------------------------------------------------------------------

    def validate(self, arch: Architecture, img_sizes: Sequence[int] | None = None) -> None:
        """Raise ValueError naming the stage, the choice and the broken rule if ``arch`` is not in the space.

        Mixers are checked at every resolution of ``img_sizes`` (default: proxy and target resolution).
        """
        self.choices_of(arch)
        sizes = tuple(dict.fromkeys(img_sizes if img_sizes is not None else (self.proxy_res, self.target_res)))
        for img in sizes:
            for i, grid in enumerate(_stage_grids(img, len(self.stages))):
                error = _mixer_build_error(arch.mixers[i], arch.dims[i], grid, canonical_json(arch.mixer_kwargs[i]))
                if error is not None:
                    raise ValueError(
                        f"{self.name}: stage{i + 1}.mixer={arch.mixers[i]!r} cannot be built at "
                        f"stage{i + 1}.width={arch.dims[i]} on the {grid[0]}x{grid[1]} token grid of a "
                        f"{img}px input: {error}")
        for constraint in self.constraints:
            problem = _constraint_problem(constraint, arch, self.target_res)
            if problem is not None:
                raise ValueError(f"{self.name}: constraint {constraint['type']} violated: {problem}")

    def is_valid(self, arch: Architecture) -> bool:
        try:
            self.validate(arch)
        except ValueError:
            return False
        return True

    # ---- sampling -----------------------------------------------------------------------

    def sample(self, rng: random.Random, max_tries: int = 1000) -> Architecture:
        """Uniform over valid architectures: uniform per choice, rejecting invalid combinations."""
        last_problem = "no draws"
        for _ in range(max_tries):
            arch = self.arch_from_choices({label: rng.choice(values) for label, values in self._choices.items()})
            try:
                self.validate(arch)
                return arch
            except ValueError as exc:
                last_problem = str(exc)
        raise ValueError(f"{self.name}: no valid architecture in {max_tries} random draws; "
                         f"last rejection: {last_problem}")

    def mutations(self, arch: Architecture, rng: random.Random) -> Iterator[Architecture]:
        """Every valid architecture one choice away from ``arch``, in random order.

        The order picks a label uniformly first, then a new value for it, so the first item is
        a mutation in the sense of regularised evolution.
        """
        current = self.choices_of(arch)
        labels = list(current)
        rng.shuffle(labels)
        for label in labels:
            alternatives = [v for v in self._choices[label] if v != current[label]]
            rng.shuffle(alternatives)
            for value in alternatives:
                child = self.arch_from_choices({**current, label: value})
                if self.is_valid(child):
                    yield child

    def mutate(self, arch: Architecture, rng: random.Random) -> Architecture:
        """A valid architecture differing from ``arch`` in exactly one stage choice."""
        child = next(self.mutations(arch, rng), None)
        if child is None:
            raise ValueError(f"{self.name}: {arch.label()} has no valid single-choice mutation")
        return child

    def enumerate(self) -> Iterator[Architecture]:
        """All valid architectures, lazily, stage 1 varying slowest (mixer, then depth, then width)."""
        grids = [_stage_grids(img, len(self.stages)) for img in dict.fromkeys((self.proxy_res, self.target_res))]
        per_stage = []
        for i, stage in enumerate(self.stages):
            options = [
                (mixer, depth, width)
                for mixer in stage.mixers for depth in stage.depths for width in stage.widths
                if all(_mixer_build_error(mixer, width, g[i], canonical_json(stage.kwargs_for(mixer))) is None
                       for g in grids)
            ]
            per_stage.append(options)
        for combo in itertools.product(*per_stage):
            arch = Architecture(tuple(c[0] for c in combo), tuple(c[1] for c in combo), tuple(c[2] for c in combo),
                                tuple(stage.kwargs_for(c[0]) for stage, c in zip(self.stages, combo)))
            if self.is_valid(arch):
                yield arch

    def seeds(self) -> list[tuple[str, Architecture]]:
        """The hand-designed architectures, validated; a seed outside the space is a definition error."""
        if self._validated_seeds is None:
            seeds = []
            for spec in self._seed_specs:
                try:
                    arch = self.arch_from_choices({
                        f"stage{i}.{kind}": spec[key][i - 1]
                        for i in range(1, len(self.stages) + 1)
                        for kind, key in (("mixer", "mixers"), ("depth", "depths"), ("width", "dims"))})
                    self.validate(arch)
                except ValueError as exc:
                    raise ValueError(f"{self.name}: seed {spec['name']!r} is not in the space: {exc}") from None
                seeds.append((spec["name"], arch))
            self._validated_seeds = seeds
        return list(self._validated_seeds)


# ---- mixer validity and constraints (cached: meta-device construction is not free) ------------


def _stage_grids(img_size: int, num_stages: int) -> list[tuple[int, int]]:
    return stage_input_sizes(img_size, num_stages)


@functools.lru_cache(maxsize=None)
def _mixer_build_error(mixer: str, width: int, grid: tuple[int, int], kwargs_json: str) -> str | None:
    """Why ``mixer`` cannot be built at ``width`` on ``grid`` with these kwargs, or None if it can."""
    try:
        mixers.validate_mixer(mixer, width, input_size=grid, **json.loads(kwargs_json))
    except Exception as exc:  # noqa: BLE001 - any construction failure makes the choice invalid
        return f"{type(exc).__name__}: {exc}"
    return None


def _constraint_problem(constraint: Mapping[str, Any], arch: Architecture, target_res: int) -> str | None:
    if constraint["type"] == "nondecreasing_width":
        for i in range(1, len(arch.dims)):
            if arch.dims[i] < arch.dims[i - 1]:
                return (f"stage{i + 1}.width={arch.dims[i]} is narrower than "
                        f"stage{i}.width={arch.dims[i - 1]}")
        return None
    if constraint["type"] == "max_params_m":
        params_m = _params_millions(arch.to_json(), target_res, constraint["num_classes"])
        if params_m > constraint["limit"]:
            return (f"{arch.label()} has {params_m:.2f}M parameters at {target_res}px "
                    f"({constraint['num_classes']} classes), limit {constraint['limit']}M")
        return None
    raise AssertionError(f"unhandled constraint type {constraint['type']!r}")  # parse rejects unknown types


@functools.lru_cache(maxsize=4096)
def _params_millions(arch_json: str, img_size: int, num_classes: int) -> float:
    with torch.device("meta"):
        model = HybridMetaFormer(**json.loads(arch_json), img_size=img_size, num_classes=num_classes)
    return sum(p.numel() for p in model.parameters()) / 1e6
