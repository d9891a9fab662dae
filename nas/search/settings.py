"""What a search is: the user's request (CLI flags, once) and the typed settings stored with it.

``SearchRequest`` holds the flags as given (None = not given); its fields are named like the
``nas search`` flags, so the CLI maps them in one call (``SearchRequest.from_args``).  The
flags that shape the proxy recipe and the measurement are mapped onto those settings in one
place (``RECIPE_FLAGS``, ``MEASURE_FLAGS``), used both to build a new search and to check that
a resumed search is not asked to change them.

``SearchSettings`` are the settings that decide what a stored result means (space, strategy,
seed, speed objective, proxy recipe, measurement, early stopping); a resumed search keeps them.  Their stored
form is the search's ``config`` JSON, unchanged from earlier releases.
"""
from __future__ import annotations

import argparse
import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, Mapping

from nas.objectives import SpeedObjective, parse_objective
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe

# flag (SearchRequest field) -> ProxyRecipe / MeasureSettings field
RECIPE_FLAGS = {"dataset": "dataset", "epochs": "epochs", "proxy_res": "img_size", "subset": "subset",
                "batch_size": "batch_size", "lr": "lr"}
MEASURE_FLAGS = {"target_res": "target_res", "max_latency_ms": "max_latency_ms",
                 "min_throughput": "min_throughput", "warmup": "warmup", "repeats": "repeats",
                 "throughput_batch": "throughput_batch", "clock": "clock"}
DEFAULT_STRATEGY = "evolution"
DEFAULT_SEED = 0


class EarlyStopping(str, enum.Enum):
    """How the scheduler stops weak trials before their last epoch (``--early-stopping``).

    MO-ASHA ranks the trials at each rung by accuracy and measured speed (``nas.search.mo_asha``),
    ASHA by accuracy alone; NONE trains every feasible trial for all its epochs.
    """

    MO_ASHA = "mo-asha"
    ASHA = "asha"
    NONE = "none"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: "str | EarlyStopping") -> "EarlyStopping":
        """A choice by name; ValueError names the choices."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown early stopping {value!r}; choices: {', '.join(e.value for e in cls)}") \
                from None


DEFAULT_EARLY_STOPPING = EarlyStopping.MO_ASHA


@dataclass(frozen=True)
class SearchRequest:
    """What the user asked for; None means "not given" (defaults, or the stored value on resume)."""

    space: str | None = None
    budget: str | None = None
    strategy: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    download: bool = False
    epochs: int | None = None
    proxy_res: int | None = None
    batch_size: int | None = None
    subset: int | None = None
    lr: float | None = None
    seed: int | None = None
    target_res: int | None = None
    max_latency_ms: float | None = None
    min_throughput: float | None = None
    warmup: int | None = None
    repeats: int | None = None
    throughput_batch: int | None = None
    clock: str | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    max_concurrent: int | None = None
    address: str | None = None
    db: str = "sqlite:///nas.db"
    name: str | None = None
    resume: str | None = None
    artifacts: str | None = None
    early_stopping: str | None = None  # an EarlyStopping value (--asha/--no-asha set "asha"/"none")
    objective: str | None = None  # a SpeedObjective value: throughput or latency
    max_consecutive_failures: int | None = None
    references: bool = True  # measure the seed papers' models beside a 224 px search (``--no-references``)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "SearchRequest":
        """The request from parsed ``nas search`` flags (each flag's dest is a field name)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    def recipe_given(self) -> dict[str, Any]:
        """Recipe fields set by flags."""
        return _given(self, RECIPE_FLAGS)

    def measure_given(self) -> dict[str, Any]:
        """Measurement fields set by flags."""
        return _given(self, MEASURE_FLAGS)


def _plain(value: Any) -> Any:
    """An enum setting as its stored value, for messages."""
    return value.value if isinstance(value, enum.Enum) else value


def _given(request: SearchRequest, flags: Mapping[str, str]) -> dict[str, Any]:
    return {field: getattr(request, flag) for flag, field in flags.items() if getattr(request, flag) is not None}


@dataclass(frozen=True)
class SearchSettings:
    """The settings that define a search's results (kept on resume)."""

    space: str  # the space's name or the file it was loaded from
    strategy: str
    seed: int
    recipe: ProxyRecipe
    measure: MeasureSettings
    early_stopping: EarlyStopping
    objective: SpeedObjective = SpeedObjective.THROUGHPUT  # the speed half of (accuracy, speed)

    def conflicts(self, request: SearchRequest) -> list[str]:
        """The flags of ``request`` that would change these settings, as ``name (stored x, given y)``."""
        early_stopping = None if request.early_stopping is None else EarlyStopping.parse(request.early_stopping)
        objective = None if request.objective is None else parse_objective(request.objective)
        given = {"space": request.space, "strategy": request.strategy, "seed": request.seed,
                 "early_stopping": early_stopping, "objective": objective}
        changed = [(name, getattr(self, name), value) for name, value in given.items()
                   if value is not None and value != getattr(self, name)]
        for prefix, stored, values in (("recipe", self.recipe, request.recipe_given()),
                                       ("measure", self.measure, request.measure_given())):
            changed += [(f"{prefix}.{name}", getattr(stored, name), value) for name, value in values.items()
                        if value != getattr(stored, name)]
        return [f"{name} (stored {_plain(old)!r}, given {_plain(new)!r})" for name, old, new in changed]

    def to_config(self) -> dict[str, Any]:
        return {"space": self.space, "strategy": self.strategy, "seed": self.seed, "recipe": self.recipe.to_dict(),
                "measure": self.measure.to_dict(), "early_stopping": self.early_stopping.value,
                "objective": self.objective.value}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SearchSettings":
        """Read back a stored ``config``; ValueError names what is missing or malformed.

        Searches stored before the early-stopping choice existed have ``asha: true/false``, read
        as ASHA or none; searches stored before the objective choice existed optimised throughput.
        """
        try:
            early_stopping = EarlyStopping.parse(config["early_stopping"]) if "early_stopping" in config else \
                EarlyStopping.ASHA if bool(config["asha"]) else EarlyStopping.NONE
            return cls(space=str(config["space"]), strategy=str(config["strategy"]), seed=int(config["seed"]),
                       recipe=ProxyRecipe.from_dict(config["recipe"]),
                       measure=MeasureSettings.from_dict(config["measure"]), early_stopping=early_stopping,
                       objective=parse_objective(config.get("objective")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"stored search settings are incomplete or malformed ({type(exc).__name__}: {exc})") \
                from None


@dataclass(frozen=True)
class Resources:
    """How trials run (may change on resume): devices per trial, concurrency, where the data lives."""

    gpus_per_trial: float
    cpus_per_trial: float
    max_concurrent: int | None
    data_dir: str | None

    def to_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
