"""Checkers for the values a space file or an architecture may hold: each names the offending key."""
from __future__ import annotations

import numbers
import json
from collections.abc import Mapping, Sequence
from typing import Any


def list_of(where: str, key: str, value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{where}: {key!r} must be a list, got {value!r}")
    return list(value)


def unique_choices(where: str, values: Any, parse) -> tuple:
    parsed = parse(where, values)
    if not parsed or len(set(parsed)) != len(parsed):
        raise ValueError(f"{where}: expected a non-empty list of distinct choices, got {values!r}")
    return parsed


def str_tuple(where: str, values: Any) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) \
            or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{where}: expected a list of non-empty strings, got {values!r}")
    return tuple(values)


def positive_int_tuple(where: str, values: Any) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{where}: expected a list of positive ints, got {values!r}")
    return tuple(positive_int(where, v) for v in values)


def positive_int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{where}: expected a positive int, got {value!r}")
    return int(value)


def plain_json_dict(where: str, value: Any) -> dict:
    """A deep copy made of JSON types only, so hashes and timm kwargs never depend on Python objects."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where}: expected a mapping with string keys, got {value!r}")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not plain JSON ({exc}): {value!r}") from None
    return json.loads(text)
