"""Search spaces over per-stage token mixers, depths and widths of ``hybrid_metaformer``.

``get_space(name_or_path)`` returns a ``SearchSpace``; its points are ``Architecture`` objects
whose ``to_dict()`` are the backbone's timm kwargs.  See ``search_spaces.space`` for the format.
"""
from __future__ import annotations

from search_spaces.registry import SPACE_NAMES, get_space
from search_spaces.space import Architecture, SearchSpace

__all__ = ["Architecture", "SearchSpace", "SPACE_NAMES", "get_space"]
