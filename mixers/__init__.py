"""Token mixers for MetaFormer-style backbones, behind one interface.

Every mixer maps an NHWC tensor ``(B, H, W, C)`` to one of the same shape (the layout of
sail-sg/metaformer and most official mixer code).  Build one with::

    mixers.create_mixer(name, dim, input_size=None, **hparams)

``input_size=(H, W)`` is the build-time token grid; only mixers whose parameters depend on
the grid (``dynamic_filter``'s filter bank, ``dynamixer``'s mixing-matrix generators) use it.

Adding a mixer: write ``mixers/<name>.py`` with an ``nn.Module`` whose constructor is
``(dim, *, input_size=None, **hparams)`` and add one line to ``_MIXER_CLASSES`` below.

The backbones built from these mixers live in the sibling package ``backbones``.
"""
from __future__ import annotations

from ._registry import (
    MIXER_NAMES,
    PAPER_MIXER_NAMES,
    create_mixer,
    get_mixer_class,
    validate_mixer,
)

__all__ = [
    "MIXER_NAMES",
    "PAPER_MIXER_NAMES",
    "create_mixer",
    "get_mixer_class",
    "validate_mixer",
]
