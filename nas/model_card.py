"""The README.md model card written next to an exported model."""
from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from nas.formatting import fmt
from nas.store.records import TrialRecord


def render_model_card(trial: TrialRecord, out_dir: Path, model: nn.Module, *, with_weights: bool) -> str:
    arch, recipe = trial.arch or {}, trial.recipe or {}
    protocol = trial.protocol or {}
    rows = "\n".join(
        f"| {i + 1} | {m} | {d} | {c} | {json.dumps(k) if k else '-'} |"
        for i, (m, d, c, k) in enumerate(zip(arch.get("mixers", []), arch.get("depths", []), arch.get("dims", []),
                                            arch.get("mixer_kwargs") or [{}] * len(arch.get("mixers", [])))))
    acc = trial.accuracy
    cfg = model.pretrained_cfg
    size = cfg.get("input_size", (3, 224, 224))
    weights_line = ("`model.safetensors`: weights after proxy training (safetensors; no pickle)." if with_weights
                    else "No weights: architecture only (`pretrained=True` is not available).")
    origin = f"trial {trial.id} of search `{trial.search}`"
    if trial.seed_name:
        origin += f" (hand-designed seed: {trial.seed_name})"
    return f"""---
library_name: timm
tags: [image-classification, timm, mixer-nas, metaformer]
---
# hybrid_metaformer: {origin}

A MetaFormer backbone with one token mixer per stage, found by [mixer-nas](https://github.com/).
{weights_line}

## Architecture

| stage | token mixer | depth | width | mixer hyperparameters |
|---|---|---|---|---|
{rows}

- Parameters: {fmt(trial.params, ",")} at the target resolution ({model.num_classes} classes in this export: {sum(p.numel() for p in model.parameters()):,})
- GMACs: {fmt(trial.gmacs, ".3f")} (fvcore convention, one multiply-add = 1; counted with mixer-nas handles for SDPA, FFT, unfold and pooling; ops not counted: {", ".join(trial.uncounted_ops or []) or "none"})

## Measured speed

- Latency (batch {protocol.get("latency_batch", 1)}): {fmt(trial.latency_ms, ".2f", unit=" ms")} median (IQR {fmt(trial.latency_iqr_ms, ".2f", unit=" ms")})
- Throughput (batch {protocol.get("throughput_batch", "?")}): {fmt(trial.throughput, ",.1f", unit=" img/s")} median
- Device: `{trial.device_kind}`
- Protocol: `{json.dumps(protocol, sort_keys=True)}`

## Proxy training

- Validation accuracy: {"n/a" if acc is None else f"{100 * acc:.2f}%"} after {trial.epochs_done} epoch(s) (status `{trial.status}`)
- Recipe: `{json.dumps(recipe, sort_keys=True)}`
- Proxy accuracy ranks architectures; it is not an ImageNet result. Train the architecture with your own recipe.

## Load

```python
import timm
import nas  # registers the hybrid_metaformer architecture with timm (timm has no plugin entry points)

model = timm.create_model("local-dir:{out_dir}", pretrained={with_weights})
model = timm.create_model("local-dir:{out_dir}", pretrained={with_weights}, num_classes=1000)   # new head
features = timm.create_model("local-dir:{out_dir}", pretrained={with_weights}, features_only=True)
```

Input: {size[1]}x{size[2]}, mean {tuple(cfg.get("mean", ()))}, std {tuple(cfg.get("std", ()))}.

## Fine-tune with timm's train.py

timm's `train.py` imports only timm, so register the model first, e.g. with a two-line wrapper:

```bash
python -c "import nas, runpy, sys; sys.argv[0] = 'train.py'; runpy.run_path('train.py', run_name='__main__')" \\
    /path/to/imagenet --model local-dir:{out_dir} {"--pretrained " if with_weights else ""}--num-classes 1000 --img-size 224 \\
    --opt adamw --lr 1e-3 --weight-decay 0.05 --sched cosine --epochs 300 --warmup-epochs 20 --drop-path 0.2 \\
    --aa rand-m9-mstd0.5-inc1 --mixup 0.8 --cutmix 1.0 --smoothing 0.1 --reprob 0.25 -b 128 --amp
python -c "import nas, runpy, sys; sys.argv[0] = 'validate.py'; runpy.run_path('validate.py', run_name='__main__')" \\
    /path/to/imagenet --model local-dir:{out_dir} --num-classes 1000 --img-size 224 \\
    --checkpoint output/train/<run>/model_best.pth.tar
```

(The recipe above is DFFormer/CAFormer's ImageNet recipe. `validate.py` builds the model from this
directory's config ({model.num_classes} classes, {size[1]}x{size[2]}), so pass the fine-tuned `--num-classes` and
`--img-size` again. A `dynamixer` stage fixes the input size: build at the training resolution, in both
commands, e.g. `--model-kwargs img_size=224`. With Pillow 13, timm's RandAugment `inc1` posterize can ask
for 0 bits and raise `ValueError: bits must be between or equal to 1 and 8`; `--aa rand-m9-mstd0.5-inc1-mmax9` avoids it.)
"""
