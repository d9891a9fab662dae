"""Generated proxy tasks (``glyphs``): determinism, balance, shapes, the label rule, option errors, no shortcuts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.cli import main
from nas.trial import synthetic
from nas.trial.datasets import DATASET_NAMES, load_dataset, validate_dataset_spec
from nas.trial.recipe import ProxyRecipe
from nas.trial.synthetic import GlyphsTask, generate, parse_task_spec

DEFAULT = GlyphsTask()


def test_same_seed_same_bytes_other_seed_other_images():
    images, labels = generate(DEFAULT, 200, seed=(3, 0))
    again_images, again_labels = generate(DEFAULT, 200, seed=(3, 0))
    other_images, _ = generate(DEFAULT, 200, seed=(4, 0))
    assert images.tobytes() == again_images.tobytes() and labels.tobytes() == again_labels.tobytes()
    assert not np.array_equal(images, other_images)


def test_load_dataset_is_deterministic_and_train_and_val_differ():
    first = load_dataset("glyphs:n=300", 32, seed=5)
    second = load_dataset("glyphs:n=300", 32, seed=5)
    for a, b in zip(first.train.tensors + first.val.tensors, second.train.tensors + second.val.tensors):
        assert a.numpy().tobytes() == b.numpy().tobytes()
    train_x, val_x = first.train.tensors[0], first.val.tensors[0]
    assert not any(torch.equal(val_x[0], image) for image in train_x)


def test_labels_are_exactly_balanced():
    _, labels = generate(DEFAULT, 1000, seed=0)
    assert np.bincount(labels, minlength=10).tolist() == [100] * 10
    _, labels = generate(DEFAULT, 1003, seed=0)
    assert set(np.bincount(labels, minlength=10).tolist()) == {100, 101}


@pytest.mark.parametrize("spec, canvas", [("glyphs", 32), ("glyphs:canvas=48,grid=3,objects=4,size=10-16", 48)])
def test_shapes_dtypes_and_value_range(spec, canvas):
    task = parse_task_spec(spec)
    images, labels = generate(task, 50, seed=1)
    assert images.shape == (50, canvas, canvas) and images.dtype == np.float32
    assert labels.shape == (50,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0  # no noise: ink in 0..1, the marker at full ink


def test_split_sizes_subset_normalisation_and_resizing():
    split = load_dataset("glyphs:n=500,canvas=48,size=20-24", 32, seed=0, val_fraction=0.2, subset=150)
    train_x, train_y = split.train.tensors
    val_x, val_y = split.val.tensors
    assert train_x.shape == (150, 3, 32, 32) and val_x.shape == (100, 3, 32, 32)  # resized from 48 to 32
    assert train_y.dtype == torch.int64 and split.num_classes == 10 and split.in_chans == 3
    assert torch.equal(train_x[:, 0], train_x[:, 2])
    assert abs(train_x.mean().item()) < 1e-4 and abs(train_x.std().item() - 1) < 1e-3
    assert split.name == "glyphs:n=500,canvas=48,size=20-24"
    assert len(load_dataset("glyphs:n=500", 32, seed=0, val_fraction=0.2).train) == 400


@pytest.fixture
def coded_glyphs(monkeypatch):
    """Replace the handwritten digits by solid squares whose ink codes the class: (class + 1) / 20."""
    images = np.repeat((np.arange(10, dtype=np.float32)[:, None, None] + 1) / 20, 20, axis=0)
    images = np.broadcast_to(images, (200, 8, 8)).copy()
    targets = np.repeat(np.arange(10), 20)
    for cached in (synthetic._glyph_index, synthetic._scaled_glyphs):
        cached.cache_clear()
    monkeypatch.setattr(synthetic, "_digit_glyphs", lambda: (images, targets))
    yield
    for cached in (synthetic._glyph_index, synthetic._scaled_glyphs):
        cached.cache_clear()


@pytest.mark.parametrize("grid, objects", [(2, 3), (3, 7), (4, 2)])
def test_label_is_the_digit_point_symmetric_to_the_marker(coded_glyphs, grid, objects):
    task = GlyphsTask(canvas=16 * grid, grid=grid, objects=objects, size=(8, 12))
    images, labels = generate(task, 300, seed=2)
    cells = images.reshape(300, grid, 16, grid, 16).transpose(0, 1, 3, 2, 4).reshape(300, grid * grid, 256)
    peak = cells.max(axis=2)
    marker = np.argmax(peak == 1.0, axis=1)
    assert ((peak == 1.0).sum(axis=1) == 1).all()  # exactly one marker, the only full-ink cell
    mirror = grid * grid - 1 - marker
    assert (mirror != marker).all()  # never the centre of an odd grid
    read = np.rint(peak[np.arange(300), mirror] * 20).astype(int) - 1
    assert np.array_equal(read, labels)
    assert ((peak > 0).sum(axis=1) == objects + 1).all()  # the digits and the marker, each in its own cell


def test_label_is_not_given_by_a_local_statistic():
    """Mean ink (whole image or per cell) predicts the label no better than chance (10 %)."""
    images, labels = generate(DEFAULT, 4000, seed=0)
    val_images, val_labels = generate(DEFAULT, 2000, seed=1)

    def nearest_class_mean_accuracy(features, val_features):
        means = np.stack([features[labels == k].mean(axis=0) for k in range(10)])
        distance = ((val_features[:, None, :] - means[None]) ** 2).sum(axis=-1)
        return (distance.argmin(axis=1) == val_labels).mean()

    def cell_ink(batch):
        return batch.reshape(len(batch), 2, 16, 2, 16).mean(axis=(2, 4)).reshape(len(batch), 4)

    whole = nearest_class_mean_accuracy(images.mean(axis=(1, 2))[:, None], val_images.mean(axis=(1, 2))[:, None])
    per_cell = nearest_class_mean_accuracy(cell_ink(images), cell_ink(val_images))
    assert whole < 0.14 and per_cell < 0.14, (whole, per_cell)


@pytest.mark.parametrize("spec, needles", [
    ("glyphs:colour=3", ["unknown option 'colour'", "canvas, grid, objects, size, noise, n"]),
    ("glyphs:grid=two", ["'grid' must be an integer", "'two'"]),
    ("glyphs:size=9-x", ["'size' must be N or MIN-MAX"]),
    ("glyphs:noise=", ["'noise' needs a value"]),
    ("glyphs:n=100,n=200", ["'n' given twice"]),
    ("glyphs:grid=2,objects=3,size=17", ["size must satisfy", "cell side 16", "got 17"]),
    ("glyphs:size=9-5", ["size must satisfy", "got 9-5"]),
    ("glyphs:grid=3,objects=8", ["objects must be 1..7 on a 3x3 grid"]),
    ("glyphs:grid=1", ["grid must be 2..8"]),
    ("glyphs:n=5", ["n must be 10.."]),
    ("glyphs:noise=nan", ["noise must be 0..10"]),
])
def test_bad_options_are_one_line_value_errors(spec, needles):
    for check in (parse_task_spec, validate_dataset_spec, lambda s: ProxyRecipe(dataset=s)):
        with pytest.raises(ValueError) as info:
            check(spec)
        message = str(info.value)
        assert "\n" not in message
        for needle in needles:
            assert needle in message, message


def test_names_and_default_recipe():
    assert "glyphs[:OPTIONS]" in DATASET_NAMES and "digits" in DATASET_NAMES
    assert ProxyRecipe().dataset == "glyphs"
    validate_dataset_spec("glyphs")
    validate_dataset_spec("glyphs:")
    validate_dataset_spec("glyphs:canvas=48, grid=3, objects=5, size=10-14, noise=0.1, n=2000")
    with pytest.raises(ValueError, match="unknown dataset 'glyph'"):
        validate_dataset_spec("glyph")


def test_cli_rejects_an_unknown_option_with_exit_2(tmp_path, capsys):
    db = tmp_path / "t.db"
    code = main(["search", "--space", "hybrid_metaformer_tiny", "--budget", "1trials",
                 "--dataset", "glyphs:colour=3", "--db", f"sqlite:///{db}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "unknown option 'colour'" in err[0] and "accepted options" in err[0]
    assert not db.exists()
