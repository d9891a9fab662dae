"""Proxy datasets: generated tasks and scikit-learn digits (offline), CIFAR-10/100 on disk, any ImageFolder tree.

Nothing here downloads unless asked to (``download=True``): a missing dataset is a
``ValueError`` that tells the user what to pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset, TensorDataset

from nas.trial import synthetic

__all__ = ["DATASET_NAMES", "DEFAULT_DATA_DIR", "DatasetSplit", "load_dataset", "validate_dataset_spec"]

FOLDER_PREFIX = "folder:"
DATASET_NAMES: tuple[str, ...] = ("digits", "cifar10", "cifar100", f"{FOLDER_PREFIX}PATH",
                                  *(f"{name}[:OPTIONS]" for name in synthetic.TASK_NAMES))
DEFAULT_DATA_DIR = Path("~/.cache/mixer-nas/data")

_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2470, 0.2435, 0.2616)
_VAL_DIR_NAMES = ("val", "validation")


@dataclass
class DatasetSplit:
    """Train and validation sets, already transformed to normalised ``(C, H, W)`` float tensors."""

    train: Dataset
    val: Dataset
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str
    in_chans: int = 3


def validate_dataset_spec(spec: str) -> None:
    """Check the spelling of a dataset spec (not whether its files exist)."""
    if not isinstance(spec, str):
        raise ValueError(f"dataset must be a string, got {spec!r}")
    if spec in ("digits", "cifar10", "cifar100"):
        return
    if spec.startswith(FOLDER_PREFIX) and spec[len(FOLDER_PREFIX):].strip():
        return
    if synthetic.is_task_spec(spec):
        synthetic.parse_task_spec(spec)  # unknown or bad options: a one-line ValueError
        return
    raise ValueError(f"unknown dataset {spec!r}; choose one of {', '.join(DATASET_NAMES)}")


def load_dataset(spec: str, img_size: int, *, seed: int = 0, subset: int | None = None,
                 val_fraction: float = 0.2, data_dir: str | Path | None = None,
                 download: bool = False) -> DatasetSplit:
    """Load the dataset named by ``spec`` at ``img_size``; ``subset`` caps the training images."""
    validate_dataset_spec(spec)
    if synthetic.is_task_spec(spec):
        return _load_synthetic(spec, img_size, seed=seed, subset=subset, val_fraction=val_fraction)
    if spec == "digits":
        return _load_digits(img_size, seed=seed, subset=subset, val_fraction=val_fraction)
    if spec in ("cifar10", "cifar100"):
        root = Path(data_dir).expanduser() if data_dir is not None else DEFAULT_DATA_DIR.expanduser()
        split = _load_cifar(spec, root, img_size, download=download)
    else:
        split = _load_folder(Path(spec[len(FOLDER_PREFIX):]).expanduser(), img_size)
    split.train = _take_subset(split.train, subset, seed)
    return split


def _load_digits(img_size: int, *, seed: int, subset: int | None, val_fraction: float) -> DatasetSplit:
    """1797 8x8 digits, upsampled and replicated to RGB, held as tensors so batches are plain indexing."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    labels = torch.from_numpy(digits.target).long()
    train_idx, val_idx = train_test_split(np.arange(len(labels)), test_size=val_fraction,
                                          stratify=digits.target, random_state=seed)
    if subset is not None:
        train_idx = train_idx[:subset]  # train_test_split returns a seeded shuffle
    images = torch.from_numpy(digits.images).float().div_(16.0).unsqueeze(1)
    images = F.interpolate(images, size=(img_size, img_size), mode="bilinear", align_corners=False)
    train_idx, val_idx = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    mean, std = images[train_idx].mean().item(), images[train_idx].std().item()
    images = ((images - mean) / std).expand(-1, 3, -1, -1)
    return DatasetSplit(
        train=TensorDataset(images[train_idx].contiguous(), labels[train_idx]),
        val=TensorDataset(images[val_idx].contiguous(), labels[val_idx]),
        num_classes=10, mean=(mean,) * 3, std=(std,) * 3, name="digits",
    )


def _load_synthetic(spec: str, img_size: int, *, seed: int, subset: int | None,
                    val_fraction: float) -> DatasetSplit:
    """A generated task: train and validation images drawn from independent streams of ``seed``."""
    task = synthetic.parse_task_spec(spec)
    n_val = min(max(1, round(task.n * val_fraction)), task.n - 1)
    n_train = task.n - n_val
    if subset is not None:
        n_train = min(n_train, subset)
    train_x, train_y = synthetic.generate(task, n_train, seed=(seed, 0))
    val_x, val_y = synthetic.generate(task, n_val, seed=(seed, 1))

    def prepare(images: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(images).unsqueeze(1)
        if task.canvas != img_size:
            batch = F.interpolate(batch, size=(img_size, img_size), mode="bilinear", align_corners=False)
        return batch

    train_images, val_images = prepare(train_x), prepare(val_x)
    mean, std = train_images.mean().item(), train_images.std().item()
    return DatasetSplit(
        train=TensorDataset(((train_images - mean) / std).expand(-1, 3, -1, -1).contiguous(),
                            torch.from_numpy(train_y)),
        val=TensorDataset(((val_images - mean) / std).expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(val_y)),
        num_classes=task.num_classes, mean=(mean,) * 3, std=(std,) * 3, name=spec,
    )


def _load_cifar(spec: str, root: Path, img_size: int, *, download: bool) -> DatasetSplit:
    """Unpack (or, with ``download``, fetch) through ``nas.trial.download``; torchvision only reads the files."""
    from torchvision.datasets import CIFAR10, CIFAR100

    from nas.trial.download import CIFAR_ARCHIVES, manual_layout, prepare_cifar

    prepare_cifar(spec, root, download=download)
    dataset_class, num_classes = (CIFAR10, 10) if spec == "cifar10" else (CIFAR100, 100)
    train_tf, val_tf = _image_transforms(img_size, _CIFAR_MEAN, _CIFAR_STD)
    try:
        train = dataset_class(str(root), train=True, transform=train_tf, download=False)
        val = dataset_class(str(root), train=False, transform=val_tf, download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted..."
        raise ValueError(
            f"{spec} not found or corrupted under {root}; pass --download to fetch it, "
            f"or {manual_layout(CIFAR_ARCHIVES[spec], root)}") from exc
    return DatasetSplit(train=train, val=val, num_classes=num_classes,
                        mean=_CIFAR_MEAN, std=_CIFAR_STD, name=spec)


def _load_folder(root: Path, img_size: int) -> DatasetSplit:
    """An ImageFolder tree ``root/train/<class>/*`` plus ``root/val|validation/<class>/*`` via timm."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_dataset

    val_dirs = [root / name for name in _VAL_DIR_NAMES if (root / name).is_dir()]
    if not (root / "train").is_dir() or not val_dirs:
        raise ValueError(f"folder dataset {str(root)!r} needs train/ and val/ (or validation/) "
                         f"sub-directories with one folder per class")
    train_tf, val_tf = _image_transforms(img_size, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    try:
        train = create_dataset("", root=str(root), split="train", is_training=True)
        # The val split uses the train class map so labels agree even if val lacks a class.
        val = create_dataset("", root=str(root), split=val_dirs[0].name, class_map=train.reader.class_to_idx)
    except RuntimeError as exc:  # timm: "Found 0 images in subfolders of ..."
        raise ValueError(f"folder dataset {str(root)!r}: {exc}") from exc
    classes = sorted(train.reader.class_to_idx)
    if len(classes) < 2:  # every prediction would be right: accuracy 1.0 for any architecture
        raise ValueError(f"folder dataset {str(root)!r} has {len(classes)} class ({', '.join(classes)}) in train/; "
                         f"a proxy task needs at least 2 class folders")
    train.transform, val.transform = train_tf, val_tf
    return DatasetSplit(train=train, val=val, num_classes=len(classes),
                        mean=tuple(IMAGENET_DEFAULT_MEAN), std=tuple(IMAGENET_DEFAULT_STD),
                        name=f"{FOLDER_PREFIX}{root}")


def _image_transforms(img_size: int, mean: Sequence[float], std: Sequence[float]):
    """timm transforms with light augmentation: short proxy runs at low resolution underfit anyway."""
    from timm.data import create_transform

    train = create_transform(img_size, is_training=True, scale=(0.35, 1.0), color_jitter=None,
                             interpolation="bilinear", mean=tuple(mean), std=tuple(std))
    val = create_transform(img_size, is_training=False, crop_pct=1.0, interpolation="bilinear",
                           mean=tuple(mean), std=tuple(std))
    return train, val


def _take_subset(dataset: Dataset, subset: int | None, seed: int) -> Dataset:
    if subset is None or subset >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:subset].tolist())
