"""Built-in search spaces by name, and loading user-written spaces from YAML/JSON files."""
from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

import yaml

from search_spaces.space import SearchSpace

__all__ = ["SPACE_NAMES", "get_space"]

# name -> package-data file in search_spaces/
_BUILTIN_FILES = {
    "hybrid_metaformer": "hybrid_metaformer.yaml",
    "hybrid_metaformer_tiny": "hybrid_metaformer_tiny.yaml",
    "mixerbench": "mixerbench.yaml",
}
SPACE_NAMES: tuple[str, ...] = tuple(_BUILTIN_FILES)
_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def get_space(name_or_path: str) -> SearchSpace:
    """A registered space by name, or the space described by a .yaml/.yml/.json file."""
    if name_or_path in _BUILTIN_FILES:
        return _builtin_space(name_or_path)
    path = Path(name_or_path)
    if path.suffix.lower() in _FILE_SUFFIXES or path.exists():
        return _space_from_file(path)
    raise ValueError(f"unknown search space {name_or_path!r}; known: {', '.join(SPACE_NAMES)} "
                     f"(or a path to a {'/'.join(_FILE_SUFFIXES)} file)")


@functools.lru_cache(maxsize=None)
def _builtin_space(name: str) -> SearchSpace:
    # Cached: spaces are immutable, and sharing one instance shares its validated seeds.
    text = resources.files("search_spaces").joinpath(_BUILTIN_FILES[name]).read_text()
    return _parse(f"built-in space file {_BUILTIN_FILES[name]}", text, yaml_syntax=True)


def _space_from_file(path: Path) -> SearchSpace:
    if path.suffix.lower() not in _FILE_SUFFIXES:
        raise ValueError(f"search space file {path}: expected a {'/'.join(_FILE_SUFFIXES)} file")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"search space file {path}: cannot read it ({exc.strerror or exc})") from None
    return _parse(f"search space file {path}", text, yaml_syntax=path.suffix.lower() != ".json")


def _parse(where: str, text: str, yaml_syntax: bool) -> SearchSpace:
    try:
        description = yaml.safe_load(text) if yaml_syntax else json.loads(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not valid YAML{_yaml_problem(exc)}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON: {exc}") from None
    try:
        return SearchSpace.from_dict(description)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's several-line report (with source excerpts and carets) as one line: where and what."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return f": {' '.join(str(exc).split())}"
    line = f" at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark.line != mark.line:
        line += f" ({context} started at line {context_mark.line + 1})"
    elif context:
        line += f" ({context})"
    return line
