"""mixer-nas: hardware-aware NAS over per-stage token-mixer choices in MetaFormer backbones.

Importing ``nas`` (or ``backbones``) registers the ``hybrid_metaformer`` timm model, so
``timm.create_model("hybrid_metaformer", ...)`` and ``timm.create_model("local-dir:DIR")``
work afterwards.  Heavier pieces (Ray driver, store, dashboard) load on demand.

Test-only exception: with ``MIXER_NAS_TABULAR`` set (trials answered from a tabular benchmark,
``nas.search.tabular``) nothing is registered, so the trial processes of a simulated pool build
no model and stay free of torch (64 of them would otherwise hold about 400 MB each).  The same holds
with ``MIXER_NAS_NO_MODELS`` set (``nas dashboard`` sets it for its Streamlit process, which only
reads stores: importing torch and timm cost its first page seconds).
"""
from __future__ import annotations

import os

__version__ = "0.1.0"

if not os.environ.get("MIXER_NAS_TABULAR") and not os.environ.get("MIXER_NAS_NO_MODELS"):
    import backbones  # noqa: F401  (registers the timm models)
