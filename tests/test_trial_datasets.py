"""Proxy datasets: digits split, ImageFolder trees, and the errors users see for bad specs."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits

from nas.trial.datasets import DATASET_NAMES, load_dataset


@pytest.fixture(scope="module")
def digits16():
    return load_dataset("digits", 16, seed=0)


def _rows(images: torch.Tensor, mean: float, std: float) -> Counter:
    """Multiset of un-normalised single-channel images, rounded so float noise doesn't matter."""
    raw = (images[:, 0] * std + mean).mul(1e4).round().to(torch.int64)
    return Counter(row.numpy().tobytes() for row in raw)


def test_digits_shapes_classes_and_split_sizes(digits16):
    train_x, train_y = digits16.train.tensors
    val_x, val_y = digits16.val.tensors
    assert train_x.shape == (1437, 3, 16, 16) and val_x.shape == (360, 3, 16, 16)
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    assert digits16.num_classes == 10 and digits16.in_chans == 3 and digits16.name == "digits"
    assert torch.equal(train_x[:, 0], train_x[:, 2])  # grayscale replicated to RGB
    assert abs(train_x.mean().item()) < 1e-3 and abs(train_x.std().item() - 1) < 1e-3  # normalised on train
    # Stratified: every class in val with its share (~36 each).
    assert set(torch.bincount(val_y, minlength=10).tolist()) <= set(range(34, 39))


def test_digits_split_is_a_partition_of_all_images(digits16):
    mean, std = digits16.mean[0], digits16.std[0]
    split_rows = _rows(digits16.train.tensors[0], mean, std) + _rows(digits16.val.tensors[0], mean, std)
    all_images = torch.from_numpy(load_digits().images).float().div(16).unsqueeze(1)
    all_images = F.interpolate(all_images, size=(16, 16), mode="bilinear", align_corners=False)
    assert split_rows == _rows(all_images, 0.0, 1.0)


def test_digits_split_is_deterministic_per_seed(digits16):
    again = load_dataset("digits", 16, seed=0)
    other = load_dataset("digits", 16, seed=1)
    assert torch.equal(again.train.tensors[0], digits16.train.tensors[0])
    assert torch.equal(again.val.tensors[1], digits16.val.tensors[1])
    assert not torch.equal(other.val.tensors[1], digits16.val.tensors[1])


def test_digits_subset_caps_train_only():
    split = load_dataset("digits", 8, seed=0, subset=100, val_fraction=0.5)
    assert len(split.train) == 100 and len(split.val) == 899


@pytest.mark.parametrize("spec", ["mnist", "folder:", "", "CIFAR10"])
def test_unknown_spec_lists_choices(spec):
    with pytest.raises(ValueError, match="digits, cifar10, cifar100, folder:PATH"):
        load_dataset(spec, 32)
    assert "digits" in DATASET_NAMES


def test_missing_cifar_suggests_download_or_data_dir(tmp_path):
    with pytest.raises(ValueError, match="--download.*--data-dir"):
        load_dataset("cifar10", 32, data_dir=tmp_path)


def test_bad_folder_paths_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match="nowhere"):
        load_dataset(f"folder:{missing}", 32)
    (tmp_path / "only_train" / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="only_train.*val"):
        load_dataset(f"folder:{tmp_path / 'only_train'}", 32)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "val").mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_dataset(f"folder:{tmp_path / 'empty'}", 32)


def _write_pngs(folder, count: int, colour: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(colour)
    for i in range(count):
        pixels = np.clip(rng.normal(colour, 10, size=(12, 10, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def test_image_folder_tree_loads_with_train_class_map(tmp_path):
    for name, colour in (("cat", 30), ("dog", 130), ("eel", 230)):
        _write_pngs(tmp_path / "train" / name, 4, colour)
    # "validation" spelling, and a class missing from val: labels must still follow train's map.
    _write_pngs(tmp_path / "validation" / "dog", 2, 130)
    _write_pngs(tmp_path / "validation" / "eel", 2, 230)

    split = load_dataset(f"folder:{tmp_path}", 16, subset=5)
    assert split.num_classes == 3 and split.in_chans == 3
    assert len(split.train) == 5 and len(split.val) == 4
    image, label = split.val[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert sorted(split.val[i][1] for i in range(4)) == [1, 1, 2, 2]
    assert all(0 <= split.train[i][1] < 3 for i in range(5))
