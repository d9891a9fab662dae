"""The proxy trainer: a short, seeded, lean AdamW + warm-up/cosine run with per-epoch validation.

Lean on purpose, since it is the inner loop of the search: in-memory tensor datasets are
batched by indexing (no per-sample collation), step losses stay on the device and are read
once per epoch (one host sync per epoch, which is also where non-finite losses are caught),
and gradients are released with ``zero_grad(set_to_none=True)``.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from nas.trial.datasets import DatasetSplit
from nas.trial.recipe import ProxyRecipe

__all__ = ["NonFiniteLossError", "TrainResult", "train_proxy", "amp_context", "resolve_speed_settings"]

EpochCallback = Callable[[dict[str, Any]], bool | None]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (diverged run; the trial has no usable result)."""


@dataclass
class TrainResult:
    best_val_accuracy: float
    epochs_done: int
    history: list[dict[str, Any]] = field(default_factory=list)


def resolve_speed_settings(device: torch.device, channels_last: bool | None,
                           amp_dtype: torch.dtype | None) -> tuple[bool, torch.dtype | None]:
    """Defaults: bf16 autocast and channels_last on CUDA, neither on CPU; ``torch.float32`` turns autocast off."""
    cuda = device.type == "cuda"
    channels_last = cuda if channels_last is None else channels_last
    if amp_dtype is None:
        amp_dtype = torch.bfloat16 if cuda else None
    elif amp_dtype == torch.float32:
        amp_dtype = None
    return channels_last, amp_dtype


def amp_context(device: torch.device, amp_dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)


def train_proxy(model: nn.Module, split: DatasetSplit, recipe: ProxyRecipe, device: torch.device | str, *,
                on_epoch: EpochCallback | None = None, channels_last: bool | None = None,
                amp_dtype: torch.dtype | None = None) -> TrainResult:
    """Train ``model`` on ``split.train`` for ``recipe.epochs``, validating after every epoch.

    ``on_epoch(metrics)`` gets ``epoch`` (1-based), ``train_loss``, ``val_loss``,
    ``val_accuracy`` (0..1), ``lr``, ``images_per_s`` (training throughput of the epoch) and
    ``elapsed_s``; returning ``False`` stops training (an early-stopping scheduler's verdict).
    """
    device = torch.device(device)
    channels_last, amp_dtype = resolve_speed_settings(device, channels_last, amp_dtype)
    random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)

    train_batches = _BatchSource(split.train, recipe.batch_size, device, memory_format, shuffle_seed=recipe.seed)
    val_batches = _BatchSource(split.val, recipe.batch_size, device, memory_format)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = _warmup_cosine(optimizer, recipe, steps_per_epoch=len(train_batches))
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    history: list[dict[str, Any]] = []
    start = time.perf_counter()
    step = 0
    for epoch in range(1, recipe.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        step_losses = torch.empty(len(train_batches), device=device)
        batch_sizes = []
        for i, (images, targets) in enumerate(train_batches):
            with amp_context(device, amp_dtype):
                loss = criterion(model(images), targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            scheduler.step_update(step)
            step_losses[i] = loss.detach()
            batch_sizes.append(len(targets))
        losses = step_losses.cpu()  # the epoch's one host sync
        train_seconds = time.perf_counter() - epoch_start
        _raise_if_non_finite(losses, epoch, first_step=step - len(losses) + 1)
        val_loss, val_accuracy = _evaluate(model, val_batches, device, amp_dtype)
        metrics = {
            "epoch": epoch,
            "train_loss": float(losses.double().dot(torch.tensor(batch_sizes, dtype=torch.double)) / sum(batch_sizes)),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr": optimizer.param_groups[0]["lr"],
            "images_per_s": sum(batch_sizes) / train_seconds,
            "elapsed_s": time.perf_counter() - start,
        }
        history.append(metrics)
        if on_epoch is not None and on_epoch(dict(metrics)) is False:
            break
    return TrainResult(best_val_accuracy=max(m["val_accuracy"] for m in history),
                       epochs_done=len(history), history=history)


def _warmup_cosine(optimizer: torch.optim.Optimizer, recipe: ProxyRecipe, steps_per_epoch: int) -> CosineLRScheduler:
    """Per-step linear warm-up from 0 to ``lr``, then cosine decay to 0 at the last step."""
    total = recipe.epochs * steps_per_epoch
    warmup = min(round(recipe.warmup_epochs * steps_per_epoch), total - 1)
    return CosineLRScheduler(optimizer, t_initial=max(total - warmup, 1), lr_min=0.0, warmup_t=warmup,
                             warmup_lr_init=0.0, warmup_prefix=True, t_in_epochs=False)


def _raise_if_non_finite(losses: torch.Tensor, epoch: int, first_step: int) -> None:
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        index = int(bad[0])
        raise NonFiniteLossError(
            f"non-finite training loss {losses[index].item()} at epoch {epoch}, step {first_step + index} "
            f"(step {index + 1} of the epoch)")


@torch.inference_mode()
def _evaluate(model: nn.Module, batches: _BatchSource, device: torch.device,
              amp_dtype: torch.dtype | None) -> tuple[float, float]:
    """Mean cross-entropy (without label smoothing) and top-1 accuracy, one host sync at the end."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.double)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    for images, targets in batches:
        with amp_context(device, amp_dtype):
            logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), targets, reduction="sum")
        correct += (logits.argmax(dim=1) == targets).sum()
        count += len(targets)
    return loss_sum.item() / count, correct.item() / count


class _BatchSource:
    """Device batches of a dataset: direct indexing for in-memory tensors, a DataLoader otherwise.

    ``shuffle_seed`` set: a fresh seeded order every epoch (same seed, same order sequence).
    """

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device,
                 memory_format: torch.memory_format, shuffle_seed: int | None = None):
        self.batch_size = batch_size
        self.device = device
        self.memory_format = memory_format
        self.num_items = len(dataset)
        self.generator = torch.Generator().manual_seed(shuffle_seed) if shuffle_seed is not None else None
        self.tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        self.loader: DataLoader | None = None
        if isinstance(dataset, TensorDataset):
            images, targets = dataset.tensors
            self.tensors = (images.to(device).contiguous(memory_format=memory_format), targets.to(device))
        else:
            workers = _loader_workers(device)
            self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=self.generator is not None,
                                     generator=self.generator, num_workers=workers,
                                     pin_memory=device.type == "cuda", persistent_workers=workers > 0)

    def __len__(self) -> int:
        return -(-self.num_items // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is not None:
            images, targets = self.tensors
            if self.generator is None:
                order = None
            else:
                order = torch.randperm(self.num_items, generator=self.generator).to(self.device)
            for begin in range(0, self.num_items, self.batch_size):
                if order is None:
                    yield images[begin:begin + self.batch_size], targets[begin:begin + self.batch_size]
                else:
                    index = order[begin:begin + self.batch_size]
                    yield images[index], targets[index]
            return
        for images, targets in self.loader:
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            yield images, targets.to(self.device, non_blocking=True)


def _loader_workers(device: torch.device) -> int:
    """No worker processes on CPU (they would steal the trial's cores); on CUDA, the trial's CPUs, up to 8."""
    if device.type != "cuda":
        return 0
    return min(8, torch.get_num_threads(), len(os.sched_getaffinity(0)))
