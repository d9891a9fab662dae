"""The seed papers' own models that searches are compared against: which, and under what label.

One model per family by default, the smallest of each (the size a proxy search on the flagship
space competes with): LITv2-S, DilateFormer-T, DFFormer-S18, CDFFormer-S18, DynaMixer-S and
timm's own CAFormer-S18 (the MetaFormer baseline the flagship space's CAFormer-like seed is shaped
after).  DMFormer is left out: it has no official code, so ``dmformer_*`` is a reconstruction from
the paper whose parameter count nothing confirms, not a reference point.

All of them are designed for 224x224 inputs (DynaMixer's token grid is even fixed by it), so they
are measured beside searches whose speed is measured at ``REFERENCE_RESOLUTION`` only.
"""
from __future__ import annotations

__all__ = ["DEFAULT_REFERENCES", "REFERENCE_LABELS", "REFERENCE_RESOLUTION", "reference_label"]

REFERENCE_RESOLUTION = 224

DEFAULT_REFERENCES: tuple[str, ...] = (
    "litv2_s", "dilateformer_tiny", "dfformer_s18", "cdfformer_s18", "dynamixer_s", "caformer_s18",
)

# timm name -> the name the papers use (chart labels, tables)
REFERENCE_LABELS: dict[str, str] = {
    **{f"litv2_{s}": f"LITv2-{s.upper()}" for s in ("s", "m", "b")},
    **{f"dilateformer_{s}": f"DilateFormer-{s[0].upper()}" for s in ("tiny", "small", "base")},
    **{f"dfformer_{s}": f"DFFormer-{s.upper()}" for s in ("s18", "s36", "m36", "b36")},
    **{f"cdfformer_{s}": f"CDFFormer-{s.upper()}" for s in ("s18", "s36", "m36", "b36")},
    **{f"dynamixer_{s}": f"DynaMixer-{s.upper()}" for s in ("s", "m", "l")},
    **{f"caformer_{s}": f"CAFormer-{s.upper()}" for s in ("s18", "s36", "m36", "b36")},
}


def reference_label(name: str) -> str:
    """The paper's name of a reference model (its timm name when unknown)."""
    return REFERENCE_LABELS.get(name, name)
