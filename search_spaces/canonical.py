"""Canonical JSON and stable hashes: the identity of architectures, recipes and protocols."""
from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace: equal values give equal text on every machine."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def json_hash(value: Any) -> str:
    """16 hex digits of SHA-256 over the canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]
