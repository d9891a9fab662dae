"""Vision backbones built from the token mixers, registered with timm, and their cost accounting.

Depends only on ``mixers`` (and torch/timm/fvcore): search spaces, the search and the CLI build on
it, never the other way round.  Importing this package registers the ``hybrid_metaformer`` timm
model and the seed papers' models (one import line per file below), so ``timm.create_model(NAME, ...)``
and ``timm.create_model("local-dir:DIR")`` work afterwards (timm has no plugin entry points: the
registering module must be imported).

A process that never builds a model (the dashboard: it only reads stores) sets ``MIXER_NAS_NO_MODELS=1``;
then this package imports and registers nothing (torch and timm take seconds to import) and only its
torch-free modules (``backbones.references``) can be used.
"""
import os

NO_MODELS_ENV = "MIXER_NAS_NO_MODELS"

if not os.environ.get(NO_MODELS_ENV):
    from backbones.flops import FlopProfile, profile
    from backbones.hybrid_metaformer import DEFAULT_ARCH, HybridMetaFormer, stage_input_sizes
    import backbones.dfformer  # noqa: F401  (registers dfformer_* / cdfformer_*)
    import backbones.dmformer  # noqa: F401  (registers dmformer_*, unverified reconstruction)
    import backbones.dynamixer_net  # noqa: F401  (registers dynamixer_s/m/l)
    import backbones.litv2  # noqa: F401  (registers litv2_s/m/b)
    import backbones.dilateformer  # noqa: F401  (registers dilateformer_tiny/small/base)

__all__ = ["DEFAULT_ARCH", "FlopProfile", "HybridMetaFormer", "NO_MODELS_ENV", "profile", "stage_input_sizes"]
