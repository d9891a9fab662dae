"""Procedural proxy tasks: images generated in memory from a seed (no download; same seed, same bytes).

``glyphs`` (the default offline task) asks a question no local statistic answers. The canvas
is a ``grid`` x ``grid`` board of cells; one cell holds a marker (a square ring with a dot),
``objects`` other cells hold handwritten digits (scikit-learn's bundled 8x8 set, rescaled to a
random size and placed at a random offset inside their cell). The label is the digit in the
cell point-symmetric to the marker (row r, column c -> row grid-1-r, column grid-1-c), so the
model has to find the marker, carry its position across the board, and read the digit there
while ignoring the others, which are drawn from the same classes. Labels are exactly balanced.

Options are given after the name, ``glyphs:grid=2,objects=3,size=12-14,noise=0,n=5000,canvas=32``:

- ``canvas``: side in pixels the task is drawn at (then resized to the proxy resolution);
- ``grid``: cells per side; ``objects``: digits on the board (the read one included);
- ``size``: digit side in pixels, ``MIN-MAX`` (uniform) or one number;
- ``noise``: standard deviation of additive Gaussian pixel noise (ink is 0..1);
- ``n``: images per dataset (the proxy recipe's ``val_fraction`` of them are the validation set).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TASK_NAMES", "GlyphsTask", "generate", "parse_task_spec", "is_task_spec"]

TASK_NAMES: tuple[str, ...] = ("glyphs",)
NUM_CLASSES = 10
_MAX_IMAGES = 1_000_000


@dataclass(frozen=True)
class GlyphsTask:
    """Settings of the ``glyphs`` task (see the module docstring)."""

    canvas: int = 32
    grid: int = 2
    objects: int = 3
    size: tuple[int, int] = (12, 14)
    noise: float = 0.0
    n: int = 5000

    def __post_init__(self) -> None:
        cell = self.canvas // self.grid if self.grid >= 1 else 0
        _require(2 <= self.grid <= 8, f"glyphs: grid must be 2..8, got {self.grid}")
        _require(1 <= self.objects <= self.max_objects,
                 f"glyphs: objects must be 1..{self.max_objects} on a {self.grid}x{self.grid} grid, got {self.objects}")
        _require(8 <= self.canvas <= 512, f"glyphs: canvas must be 8..512 pixels, got {self.canvas}")
        low, high = self.size
        _require(4 <= low <= high <= cell,
                 f"glyphs: size must satisfy 4 <= MIN <= MAX <= cell side {cell} (canvas {self.canvas} / grid "
                 f"{self.grid}), got {low if low == high else f'{low}-{high}'}")
        _require(0.0 <= self.noise <= 10.0 and np.isfinite(self.noise), f"glyphs: noise must be 0..10, got {self.noise}")
        _require(10 <= self.n <= _MAX_IMAGES, f"glyphs: n must be 10..{_MAX_IMAGES}, got {self.n}")

    @property
    def max_objects(self) -> int:
        """Cells left once the marker's cell is taken (and, on odd grids, the centre, its own mirror)."""
        return self.grid * self.grid - 1 - (self.grid % 2)

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES


_OPTION_PARSERS = {
    "canvas": lambda v: _parse_int("canvas", v),
    "grid": lambda v: _parse_int("grid", v),
    "objects": lambda v: _parse_int("objects", v),
    "size": lambda v: _parse_range("size", v),
    "noise": lambda v: _parse_float("noise", v),
    "n": lambda v: _parse_int("n", v),
}


def is_task_spec(spec: str) -> bool:
    """Whether ``spec`` names a generated task (``glyphs`` or ``glyphs:...``), valid or not."""
    return spec.split(":", 1)[0] in TASK_NAMES


def parse_task_spec(spec: str) -> GlyphsTask:
    """``glyphs[:key=value,...]`` -> settings; a one-line ``ValueError`` for anything unknown or invalid."""
    name, _, text = spec.partition(":")
    if name not in TASK_NAMES:
        raise ValueError(f"unknown generated task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if key not in _OPTION_PARSERS:
            raise ValueError(f"{name}: unknown option {key!r}; accepted options: {', '.join(_OPTION_PARSERS)}")
        if not sep or not value.strip():
            raise ValueError(f"{name}: option {key!r} needs a value ({key}=VALUE)")
        if key in values:
            raise ValueError(f"{name}: option {key!r} given twice")
        values[key] = _OPTION_PARSERS[key](value.strip())
    return GlyphsTask(**values)


def generate(task: GlyphsTask, count: int, seed: int | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images ``(count, canvas, canvas)`` float32 (ink 0..1, plus noise) and int64 labels."""
    rng = np.random.default_rng(seed)
    cells = task.grid * task.grid
    cell = task.canvas // task.grid
    labels = rng.permutation(np.arange(count) % NUM_CLASSES)

    marker = _marker_cells(rng, count, task.grid)
    target = cells - 1 - marker  # point reflection through the board's centre
    # Distractor cells: a random order of the cells with marker and target pushed to the end.
    keys = rng.random((count, cells))
    rows = np.arange(count)
    keys[rows, marker] = keys[rows, target] = 2.0
    digit_cells = np.concatenate([target[:, None], np.argsort(keys, axis=1)[:, :task.objects - 1]], axis=1)
    classes = np.concatenate([labels[:, None], rng.integers(0, NUM_CLASSES, (count, task.objects - 1))], axis=1)
    instances = _random_instances(rng, classes)
    sizes = rng.integers(task.size[0], task.size[1] + 1, (count, task.objects))
    offsets = rng.random((count, task.objects, 2))

    images = np.zeros((count, task.canvas, task.canvas), np.float32)
    for size in range(task.size[0], task.size[1] + 1):
        picked = sizes == size
        if not picked.any():
            continue
        image_idx, slot = np.nonzero(picked)
        top, left = _cell_origin(digit_cells[image_idx, slot], task.grid, cell, size, offsets[image_idx, slot])
        _paste(images, image_idx, top, left, _scaled_glyphs(size)[instances[image_idx, slot]])
    ring = _marker_patch(max(4, round(0.6 * cell)))
    top, left = _cell_origin(marker, task.grid, cell, len(ring), rng.random((count, 2)))
    _paste(images, rows, top, left, np.broadcast_to(ring, (count, *ring.shape)))
    if task.noise > 0:
        images += rng.normal(0.0, task.noise, images.shape).astype(np.float32)
    return images, labels.astype(np.int64)


def _marker_cells(rng: np.random.Generator, count: int, grid: int) -> np.ndarray:
    """Uniform over the cells whose mirror is another cell (all but an odd grid's centre)."""
    allowed = np.array([c for c in range(grid * grid) if c != grid * grid - 1 - c])
    return allowed[rng.integers(0, len(allowed), count)]


def _cell_origin(cell_index: np.ndarray, grid: int, cell: int, size: int,
                 offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-left pixel of a ``size`` patch placed at a random offset (fractions 0..1) inside its cell."""
    slack = cell - size + 1
    top = (cell_index // grid) * cell + (offsets[:, 0] * slack).astype(np.int64)
    left = (cell_index % grid) * cell + (offsets[:, 1] * slack).astype(np.int64)
    return top, left


def _paste(images: np.ndarray, image_idx: np.ndarray, top: np.ndarray, left: np.ndarray,
           patches: np.ndarray) -> None:
    side = patches.shape[-1]
    r = top[:, None, None] + np.arange(side)[None, :, None]
    c = left[:, None, None] + np.arange(side)[None, None, :]
    i = image_idx[:, None, None]
    images[i, r, c] = np.maximum(images[i, r, c], patches)


def _random_instances(rng: np.random.Generator, classes: np.ndarray) -> np.ndarray:
    """For each class label, the index of a random glyph of that class."""
    order, starts, counts = _glyph_index()
    pick = (rng.random(classes.shape) * counts[classes]).astype(np.int64)
    return order[starts[classes] + pick]


@functools.lru_cache(maxsize=1)
def _digit_glyphs() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _glyph_index() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Glyph indices grouped by class, each group's start, and its size."""
    _, targets = _digit_glyphs()
    order = np.argsort(targets, kind="stable")
    counts = np.bincount(targets, minlength=NUM_CLASSES)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


@functools.lru_cache(maxsize=32)
def _scaled_glyphs(size: int) -> np.ndarray:
    glyphs, _ = _digit_glyphs()
    scaled = F.interpolate(torch.from_numpy(glyphs)[:, None], size=(size, size), mode="bilinear",
                           align_corners=False)[:, 0].clamp_(0.0, 1.0).numpy()
    scaled.setflags(write=False)
    return scaled


@functools.lru_cache(maxsize=32)
def _marker_patch(side: int) -> np.ndarray:
    """A square ring with a centre dot: unlike any digit, and the same at every place."""
    patch = np.zeros((side, side), np.float32)
    patch[[0, -1], :] = 1.0
    patch[:, [0, -1]] = 1.0
    middle = slice((side - 1) // 2, side // 2 + 1)
    patch[middle, middle] = 1.0
    patch.setflags(write=False)
    return patch


def _parse_int(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"glyphs: option {key!r} must be an integer, got {text!r}") from None


def _parse_float(key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"glyphs: option {key!r} must be a number, got {text!r}") from None


def _parse_range(key: str, text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        return (int(low), int(high)) if sep else (int(text), int(text))
    except ValueError:
        raise ValueError(f"glyphs: option {key!r} must be N or MIN-MAX (integers), got {text!r}") from None


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
