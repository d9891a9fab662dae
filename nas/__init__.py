"""mixer-nas: hardware-aware NAS over per-stage token-mixer choices in MetaFormer backbones.

Importing ``nas`` (or ``backbones``) registers the ``hybrid_metaformer`` timm model, so
``timm.create_model("hybrid_metaformer", ...)`` and ``timm.create_model("local-dir:DIR")``
work afterwards.  Heavier pieces (Ray driver, store, dashboard) load on demand.
"""
from __future__ import annotations

__version__ = "0.1.0"

import backbones  # noqa: E402,F401  (registers the timm models)
