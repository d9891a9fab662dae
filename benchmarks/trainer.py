"""Is ``train_proxy`` as fast as a bare PyTorch loop?  Goal: images/s ratio >= 0.9.

Demo setting: tiny hybrid_metaformer (sepconv, sepconv, mhsa, mhsa; dims 16-32-32-64; one
block per stage), digits at 32 px, batch 64.  Both sides get the same model initialisation,
in-memory data, optimizer (timm AdamW with the same parameter groups), loss and autocast /
channels_last settings; the bare loop has no scheduler, no loss bookkeeping and no
validation.  Runs alternate (which side goes first flips every repeat) so drifting machine
load hits both alike.  Throughput is that of epochs 2.. (epoch 1 carries one-off warm-up).

Run from the repository root::

    python -m benchmarks.trainer [--repeats 5] [--epochs 3] [--threads 1] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import timm
import torch
from timm.optim import create_optimizer_v2
from torch import nn

from nas.trial.datasets import DatasetSplit, load_dataset
from nas.device import device_kind
from nas.trial.recipe import ProxyRecipe
from nas.trial.train import amp_context, resolve_speed_settings, train_proxy

ARCH = dict(mixers=["sepconv", "sepconv", "mhsa", "mhsa"], depths=[1, 1, 1, 1], dims=[16, 32, 32, 64])
RESULTS = Path(__file__).parent / "results" / "trainer.json"
GOAL_RATIO = 0.9


def fresh_model(recipe: ProxyRecipe) -> nn.Module:
    torch.manual_seed(recipe.seed)
    return timm.create_model("hybrid_metaformer", **ARCH, img_size=recipe.img_size, num_classes=10)


def proxy_images_per_s(split: DatasetSplit, recipe: ProxyRecipe, device: torch.device) -> float:
    result = train_proxy(fresh_model(recipe), split, recipe, device)
    return statistics.mean(m["images_per_s"] for m in result.history[1:])


def bare_images_per_s(split: DatasetSplit, recipe: ProxyRecipe, device: torch.device) -> float:
    """The plainest loop a PyTorch user would write for the same work."""
    channels_last, amp_dtype = resolve_speed_settings(device, None, None)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = fresh_model(recipe).to(device=device, memory_format=memory_format).train()
    images, targets = (t.to(device) for t in split.train.tensors)
    images = images.contiguous(memory_format=memory_format)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=recipe.lr, weight_decay=recipe.weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    generator = torch.Generator().manual_seed(recipe.seed)
    rates = []
    for _ in range(recipe.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(targets), generator=generator).to(device)
        for begin in range(0, len(targets), recipe.batch_size):
            index = order[begin:begin + recipe.batch_size]
            with amp_context(device, amp_dtype):
                loss = criterion(model(images[index]), targets[index])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        loss.item()  # wait for the device
        rates.append(len(targets) / (time.perf_counter() - start))
    return statistics.mean(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="per run; epoch 1 is excluded (warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (epoch 1 is warm-up)")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    recipe = ProxyRecipe(dataset="digits", img_size=32, batch_size=64, epochs=args.epochs)
    split = load_dataset(recipe.dataset, recipe.img_size, seed=recipe.seed)

    runs = []
    print(f"{'repeat':>6} {'first':>6} {'train_proxy img/s':>18} {'bare loop img/s':>16} {'ratio':>6}")
    for repeat in range(args.repeats):
        proxy_first = repeat % 2 == 0
        if proxy_first:
            proxy = proxy_images_per_s(split, recipe, device)
            bare = bare_images_per_s(split, recipe, device)
        else:
            bare = bare_images_per_s(split, recipe, device)
            proxy = proxy_images_per_s(split, recipe, device)
        runs.append({"proxy_images_per_s": proxy, "bare_images_per_s": bare, "ratio": proxy / bare,
                     "first": "proxy" if proxy_first else "bare"})
        print(f"{repeat:>6} {runs[-1]['first']:>6} {proxy:>18.1f} {bare:>16.1f} {proxy / bare:>6.3f}")

    proxy_median = statistics.median(r["proxy_images_per_s"] for r in runs)
    bare_median = statistics.median(r["bare_images_per_s"] for r in runs)
    ratio = proxy_median / bare_median
    print(f"median: train_proxy {proxy_median:.1f} img/s, bare {bare_median:.1f} img/s, "
          f"ratio {ratio:.3f} (goal >= {GOAL_RATIO})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "setting": {"arch": ARCH, "recipe": recipe.to_dict(), "repeats": args.repeats,
                    "threads": torch.get_num_threads(), "measured_epochs": f"2..{args.epochs}"},
        "device_kind": device_kind(device), "torch": torch.__version__,
        "runs": runs, "proxy_median_images_per_s": proxy_median, "bare_median_images_per_s": bare_median,
        "ratio": ratio, "goal_ratio": GOAL_RATIO, "meets_goal": ratio >= GOAL_RATIO,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
